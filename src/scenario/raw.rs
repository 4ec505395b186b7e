//! The scenario file as written: serde structs that mirror the TOML, strict
//! about unknown keys, with spans kept wherever validation may need to point
//! at a value. Nothing here checks meaning; `validate` does that once.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::duration::Dur;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    pub description: Option<String>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub postgres: RawPostgres,
    pub schema: Option<Spanned<String>>,
    pub rows: Option<Spanned<BTreeMap<String, Spanned<i64>>>>,
    #[serde(default, rename = "table")]
    pub tables: Vec<Spanned<RawTable>>,
    pub workload: Spanned<RawWorkload>,
    #[serde(default)]
    pub interference: Vec<Spanned<RawInterference>>,
    pub timeline: Spanned<RawTimeline>,
    #[serde(default, rename = "strategy")]
    pub strategies: Vec<Spanned<RawStrategy>>,
    #[serde(default)]
    pub thresholds: RawThresholds,
    pub replica: Option<Spanned<RawReplica>>,
    pub cdc: Option<Spanned<RawCdc>>,
    pub pooler: Option<Spanned<RawPooler>>,
}

/// `[pooler]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPooler {
    pub kind: Spanned<String>,
    pub mode: Option<Spanned<String>>,
    pub pool_size: Option<Spanned<i64>>,
}

/// `[cdc]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCdc {
    pub slot: Spanned<String>,
    pub rate: Option<Spanned<f64>>,
}

/// `[replica]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplica {
    pub count: Spanned<i64>,
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<toml::Value>>,
}

/// `[postgres]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<toml::Value>>,
    pub image: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub versions: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[table]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub name: Spanned<String>,
    pub rows: Spanned<i64>,
    /// None: the table comes from the schema (`schema = …`, or a
    /// strategy's migrations).
    pub ddl: Option<Spanned<String>>,
    #[serde(default)]
    pub columns: BTreeMap<String, Spanned<RawGen>>,
    pub bloat: Option<Spanned<f64>>,
}

/// `[workload]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub pool_size: Spanned<i64>,
    pub pool_timeout: Spanned<Dur>,
    /// A CSV export of pg_stat_statements to replay.
    pub from: Option<Spanned<String>>,
    pub top: Option<Spanned<i64>>,
    pub load_scale: Option<Spanned<f64>>,
    #[serde(default)]
    pub query: Vec<Spanned<RawQuery>>,
    #[serde(default)]
    pub check: Vec<Spanned<RawCheck>>,
}

/// `[[workload.check]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Spanned<String>,
    pub sql: Spanned<String>,
    #[serde(default)]
    pub params: Vec<Spanned<RawGen>>,
}

/// `[[workload.query]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub name: Spanned<String>,
    pub sql: Option<Spanned<String>>,
    pub transaction: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub params: Vec<Spanned<RawGen>>,
    pub rate: Option<Spanned<f64>>,
    pub ramp: Option<Spanned<Vec<Spanned<RawRampPoint>>>>,
    pub arrival: Option<Spanned<String>>,
    pub clients: Option<Spanned<i64>>,
    pub think_time: Option<Spanned<Dur>>,
    pub statement_timeout: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub target: Option<Spanned<String>>,
}

/// One point of a `ramp`: `{ at = "30s", rate = 400 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRampPoint {
    pub at: Spanned<Dur>,
    pub rate: Spanned<f64>,
}

/// `[[interference]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInterference {
    pub name: Spanned<String>,
    pub at: Spanned<Dur>,
    pub sql: Spanned<String>,
    #[serde(default)]
    pub optional: bool,
}

/// `[timeline]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeline {
    pub migrate_at: Option<Spanned<Dur>>,
    pub cooldown: Option<Spanned<Dur>>,
    pub max_duration: Option<Spanned<Dur>>,
    pub duration: Option<Spanned<Dur>>,
}

/// `[[strategy]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStrategy {
    pub name: Spanned<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub steps: Vec<Spanned<RawStep>>,
    pub migrations: Option<Spanned<RawMigrations>>,
    /// Steps that undo `steps`, rehearsed after them with `--rollback`.
    pub rollback: Option<Spanned<Vec<Spanned<RawStep>>>>,
}

/// `migrations = { dir = "…", format = "auto", from = "…" }` of a strategy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigrations {
    pub dir: Option<Spanned<String>>,
    pub files: Option<Spanned<Vec<String>>>,
    pub format: Option<Spanned<String>>,
    pub from: Option<String>,
}

/// One step of a strategy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<String>,
    pub sql: Spanned<String>,
    pub lock_timeout: Option<Spanned<Dur>>,
    pub statement_timeout: Option<Spanned<Dur>>,
    pub retries: Option<u32>,
    pub backoff: Option<Spanned<Dur>>,
    #[serde(default)]
    pub repeat: bool,
    pub pause: Option<Spanned<Dur>>,
    pub transaction: Option<Spanned<bool>>,
}

/// `[thresholds]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    pub max_lock_wait: Option<Dur>,
    pub max_p99: Option<Dur>,
    pub max_p99_ratio: Option<Spanned<f64>>,
    pub max_error_rate: Option<Spanned<f64>>,
    pub max_broken_queries: Option<Spanned<i64>>,
    pub max_lost_writes: Option<Spanned<i64>>,
    pub max_replica_lag: Option<Dur>,
    pub max_replica_lag_bytes: Option<Spanned<i64>>,
    pub max_regression: Option<Spanned<f64>>,
}

/// A value generator as written: a bare name such as `"email"`, or an
/// inline table such as `{ int = [1, 100] }` or
/// `{ one_of = ["a", "b"], nulls = 0.1 }`.
#[derive(Debug)]
pub enum RawGen {
    /// `"email"`, `"city"`, ...
    Named(String),
    /// `{ ... }`
    Table(Box<RawGenTable>),
}

/// The keys a generator table may hold. Exactly one of the kinds must be
/// set; `nulls` and `weights` modify it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGenTable {
    pub int: Option<[i64; 2]>,
    pub float: Option<[f64; 2]>,
    pub key_of: Option<String>,
    pub one_of: Option<Vec<toml::Value>>,
    pub weights: Option<Vec<f64>>,
    pub words: Option<[u32; 2]>,
    pub timestamp: Option<[String; 2]>,
    pub date: Option<[String; 2]>,
    pub sequence: Option<i64>,
    pub fake: Option<String>,
    pub value: Option<toml::Value>,
    pub zipf: Option<[i64; 2]>,
    pub json: Option<BTreeMap<String, Spanned<RawGen>>>,
    pub array: Option<Box<Spanned<RawGen>>>,
    pub nulls: Option<f64>,
    pub skew: Option<f64>,
    pub increasing: Option<bool>,
    pub len: Option<[u32; 2]>,
}

impl<'de> Deserialize<'de> for RawGen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GenVisitor;
        impl<'de> Visitor<'de> for GenVisitor {
            type Value = RawGen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a generator name such as \"email\", or a table such as { int = [1, 100] }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawGen, E> {
                Ok(RawGen::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawGen, A::Error> {
                RawGenTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| RawGen::Table(Box::new(t)))
            }
        }
        deserializer.deserialize_any(GenVisitor)
    }
}
