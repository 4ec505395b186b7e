//! Integration tests. They drive the `rehearse` binary (or the library
//! entry points it calls) against real Postgres servers the harness starts
//! itself; nothing here mocks the database.

mod common;

mod access;
mod autovacuum;
mod batch_progress;
mod broken_queries;
mod cdc;
mod ci_examples;
mod cleanup;
mod compare;
mod containers;
mod datagen;
mod faults;
mod fuzz;
mod fuzz_engine;
mod generate;
mod html_report;
mod ledger;
mod load_engine;
mod lock_waits;
mod majors;
mod migration_folders;
mod migration_steps;
mod pgss;
mod pool;
mod pooler;
mod predict;
mod preflight;
mod real_schemas;
mod replicas;
mod report_formats;
mod report_render;
mod rollback;
mod scenario_errors;
mod scenario_files;
mod schema_import;
mod schema_keys;
mod soak;
mod strategies;
mod suggest;
mod url_backend;
mod wire_auth;
mod zero_config;
