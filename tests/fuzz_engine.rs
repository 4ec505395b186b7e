//! Structured fuzzing of scenario files, on stable Rust: valid scenarios
//! mutated (keys, values, types, nesting, then bytes) and fed through the
//! parser and validator, and, when they validate, through the first rows
//! of every generator they name, each value written in every wire format.
//! Whatever the input, the harness must answer with a value or an error,
//! never a panic. A short run is part of `cargo test` (`fuzz.rs`);
//! `cargo bench --bench fuzz` runs a million cases (`REHEARSE_FUZZ_CASES`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rehearse::datagen::{PgKind, ValueGen, rng_for};
use rehearse::scenario::{LoadOptions, Scenario, ValueSpec, parse, sql_split};
use toml::Value;

/// What a run found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Cases run.
    pub cases: u64,
    /// Cases the validator accepted (their generators were run).
    pub accepted: u64,
    /// Panics: (message, input), the first few kept whole.
    pub panics: Vec<(String, String)>,
    /// Panics in all.
    pub panic_count: u64,
    /// The slowest case: (time, input).
    pub slowest: (Duration, String),
}

/// Every scenario the repository ships and the test fixtures (one of
/// which names every kind of generator), as the seeds of mutation.
pub fn seeds(repo: &Path) -> Vec<String> {
    let mut seeds = Vec::new();
    for dir in ["scenarios", "benches", "tests/fixtures"] {
        for e in std::fs::read_dir(repo.join(dir)).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "toml") {
                seeds.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    seeds
}

/// Keys the file format knows, to rename keys into.
const KEYS: &[&str] = &[
    "name",
    "rows",
    "ddl",
    "columns",
    "bloat",
    "pool_size",
    "pool_timeout",
    "sql",
    "transaction",
    "params",
    "rate",
    "ramp",
    "arrival",
    "clients",
    "think_time",
    "statement_timeout",
    "timeout",
    "target",
    "at",
    "migrate_at",
    "cooldown",
    "max_duration",
    "duration",
    "steps",
    "lock_timeout",
    "retries",
    "backoff",
    "repeat",
    "pause",
    "max_lock_wait",
    "max_p99",
    "max_error_rate",
    "int",
    "float",
    "key_of",
    "one_of",
    "weights",
    "words",
    "timestamp",
    "date",
    "sequence",
    "fake",
    "value",
    "zipf",
    "json",
    "array",
    "nulls",
    "skew",
    "increasing",
    "len",
    "schema",
    "settings",
    "image",
    "version",
    "versions",
    "optional",
    "seed",
    "description",
];

/// Strings worth trying: durations, dates, paths, SQL, names.
const STRINGS: &[&str] = &[
    "",
    " ",
    "0s",
    "1ms",
    "270000h",
    "1e9s",
    "-1s",
    "1.5.5s",
    "9999999999999999999999s",
    "nan s",
    "2023-02-30",
    "99999999-01-01",
    "0000-00-00",
    "2024-01-01 24:00",
    "2024-13-01",
    "/dev/zero",
    "/dev/stdin",
    "/proc/self/mem",
    "../../../etc/passwd",
    "email",
    "words",
    "uuid",
    "sequence",
    "nosuch",
    "poisson",
    "uniform",
    "replica",
    "SELECT 1; SELECT 2",
    "SELECT $1",
    "SELECT $99999",
    "CREATE INDEX CONCURRENTLY i ON t (a)",
    "VACUUM",
    "' OR 1=1 --",
    "$$",
    "$a$ unterminated",
    "/* unterminated",
    "\\restrict x",
    "é\u{301}",
    "\u{0}",
    "\u{feff}",
    "postgres:16",
    "postgres@sha256:x",
    "items",
    "orders",
];

fn pick<'a, T>(rng: &mut Xoshiro256PlusPlus, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn number(rng: &mut Xoshiro256PlusPlus) -> Value {
    const INTS: &[i64] = &[0, -1, 1, 2, 7, 1 << 31, 1 << 53, i64::MAX, i64::MIN, -4_000_000_000, 10_000, 10_001];
    const FLOATS: &[f64] = &[0.0, -0.0, 1e308, -1e308, 1e-308, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5, 1.0];
    if rng.random_bool(0.5) { Value::Integer(*pick(rng, INTS)) } else { Value::Float(*pick(rng, FLOATS)) }
}

/// A value of a random type, small.
fn any_value(rng: &mut Xoshiro256PlusPlus, depth: u32) -> Value {
    match rng.random_range(0..8) {
        0 | 1 => number(rng),
        2 | 3 => Value::String(pick(rng, STRINGS).to_string()),
        4 => Value::Boolean(rng.random_bool(0.5)),
        5 => Value::String("x".repeat(rng.random_range(0..5000))),
        6 if depth < 3 => Value::Array((0..rng.random_range(0..4)).map(|_| any_value(rng, depth + 1)).collect()),
        _ if depth < 3 => {
            let mut t = toml::Table::new();
            for _ in 0..rng.random_range(0..3) {
                t.insert(pick(rng, KEYS).to_string(), any_value(rng, depth + 1));
            }
            Value::Table(t)
        }
        _ => Value::Integer(rng.random_range(-3..3)),
    }
}

/// Changes one leaf somewhere in `v` to another value of its own type, so
/// that the file still has its shape and the value reaches validation.
fn mutate_leaf(v: &mut Value, rng: &mut Xoshiro256PlusPlus) {
    match v {
        Value::Table(t) if !t.is_empty() => {
            let key = t.keys().nth(rng.random_range(0..t.len())).unwrap().clone();
            mutate_leaf(t.get_mut(&key).unwrap(), rng);
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.random_range(0..a.len());
            mutate_leaf(&mut a[i], rng);
        }
        Value::Integer(i) => {
            *i = match rng.random_range(0..3) {
                0 => i.wrapping_mul(*pick(rng, &[-1, 10, 1000, 1 << 32])),
                1 => i.wrapping_add(rng.random_range(-3..4)),
                _ => match number(rng) {
                    Value::Integer(n) => n,
                    _ => 0,
                },
            }
        }
        Value::Float(f) => {
            *f = if rng.random_bool(0.5) { -*f * 1e10 } else { *pick(rng, &[0.0, 1e308, f64::NAN, 1e-300]) }
        }
        Value::Boolean(b) => *b = !*b,
        Value::String(s) => {
            *s = match rng.random_range(0..3) {
                0 => pick(rng, STRINGS).to_string(),
                1 => s.chars().rev().collect(),
                _ => format!("{s}{}", pick(rng, STRINGS)),
            }
        }
        _ => {}
    }
}

/// Applies one structural mutation somewhere in `v`.
fn mutate(v: &mut Value, rng: &mut Xoshiro256PlusPlus, depth: u32) {
    // The root stays a table: TOML has no other kind of document.
    let descend = depth == 0 || rng.random_bool(0.75);
    match v {
        Value::Table(t) if !t.is_empty() && descend => {
            let key = t.keys().nth(rng.random_range(0..t.len())).unwrap().clone();
            match rng.random_range(0..20) {
                0 => {
                    t.remove(&key);
                }
                1 => {
                    let moved = t.remove(&key).unwrap();
                    t.insert(pick(rng, KEYS).to_string(), moved);
                }
                2 => {
                    t.insert(pick(rng, KEYS).to_string(), any_value(rng, depth));
                }
                _ => mutate(t.get_mut(&key).unwrap(), rng, depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && descend => {
            let i = rng.random_range(0..a.len());
            match rng.random_range(0..8) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let copy = a[i].clone();
                    a.insert(i, copy);
                }
                2 => a.clear(),
                _ => mutate(&mut a[i], rng, depth + 1),
            }
        }
        _ => {
            *v = match rng.random_range(0..6) {
                0 => Value::Array(vec![v.clone()]),
                1 => number(rng),
                2 => Value::String(pick(rng, STRINGS).to_string()),
                3 => match v {
                    Value::String(s) if !s.is_empty() => {
                        let cut = rng.random_range(0..s.len());
                        Value::String(s.chars().take(cut).collect())
                    }
                    _ => any_value(rng, depth),
                },
                _ => any_value(rng, depth),
            };
        }
    }
}

/// Mutates the text's bytes: a byte flipped, a non-UTF-8 byte, a cut, a
/// line repeated.
fn mutate_bytes(text: String, rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
    let mut b = text.into_bytes();
    if b.is_empty() {
        return b;
    }
    let at = rng.random_range(0..b.len());
    match rng.random_range(0..5) {
        0 => b[at] ^= 1 << rng.random_range(0..8),
        1 => b.insert(at, 0xff),
        2 => b.truncate(at),
        3 => {
            let line: Vec<u8> = b[at..].iter().take_while(|c| **c != b'\n').copied().collect();
            b.splice(at..at, line);
        }
        _ => b.insert(at, *pick(rng, b"\"'[]{}=\\#\n,.$;")),
    }
    b
}

/// Runs the generators of an accepted scenario for a few rows, writing
/// each value in every wire format.
fn generate(s: &Scenario) {
    let mut specs: Vec<(&ValueSpec, u64)> = Vec::new();
    for t in &s.tables {
        specs.extend(t.columns.iter().map(|c| (&c.spec, t.rows)));
    }
    for q in &s.workload.queries {
        specs.extend(q.params.iter().map(|p| (&p.spec, 0)));
    }
    const KINDS: &[PgKind] = &[
        PgKind::Bool,
        PgKind::Int2,
        PgKind::Int4,
        PgKind::Int8,
        PgKind::Float4,
        PgKind::Float8,
        PgKind::Numeric,
        PgKind::Text,
        PgKind::Json,
        PgKind::Jsonb,
        PgKind::Timestamp,
        PgKind::Timestamptz,
        PgKind::Date,
        PgKind::Uuid,
        PgKind::Bytea,
        PgKind::Array { elem: &PgKind::Int8, oid: 20 },
        PgKind::Array { elem: &PgKind::Text, oid: 25 },
    ];
    let mut out = BytesMut::new();
    for (spec, rows) in specs {
        let g = ValueGen::from_spec(spec).with_rows(rows).with_max_len(Some(8));
        let mut rng = rng_for(s.seed, 1, 0);
        for row in [0, 1, 2, rows.saturating_sub(1), rows / 2] {
            let v = g.generate(row, &mut rng);
            if v == rehearse::datagen::Value::Null {
                continue;
            }
            for kind in KINDS {
                out.clear();
                let _ = v.encode(*kind, &mut out);
            }
            let _ = v.to_json();
        }
    }
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Runs `cases` mutated cases from `seeds` (deterministic for `seed`).
/// `dir` is where relative schema paths resolve. `quiet` silences the
/// panic hook meanwhile (a process of its own only: the hook is global).
pub fn run(seeds: &[String], cases: u64, seed: u64, dir: &Path, quiet: bool) -> Findings {
    let parsed: Vec<Value> = seeds.iter().map(|s| toml::from_str::<Value>(s).unwrap()).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let path: PathBuf = dir.join("fuzz.toml");
    let mut found = Findings::default();
    let previous = quiet.then(std::panic::take_hook);
    if quiet {
        std::panic::set_hook(Box::new(|_| {}));
    }
    for _ in 0..cases {
        let mut v = pick(&mut rng, &parsed).clone();
        let mutations = if rng.random_bool(0.6) { 1 } else { rng.random_range(2..5) };
        for _ in 0..mutations {
            if rng.random_bool(0.4) {
                mutate_leaf(&mut v, &mut rng);
            } else {
                mutate(&mut v, &mut rng, 0);
            }
        }
        let text = toml::to_string(&v).unwrap_or_default();
        let bytes = if rng.random_bool(0.15) { mutate_bytes(text, &mut rng) } else { text.into_bytes() };
        let scale = *pick(&mut rng, &[1.0, 1.0, 1.0, 0.01, 1e-9, 1e12, 1e300, 0.0]);
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let _ = sql_split::split(&shown);
            let text = String::from_utf8(bytes).ok()?;
            let s = parse(&path, text, &LoadOptions { scale }).ok()?;
            generate(&s);
            Some(())
        }));
        let took = started.elapsed();
        if took > found.slowest.0 {
            found.slowest = (took, shown.clone());
        }
        found.cases += 1;
        match outcome {
            Ok(Some(())) => found.accepted += 1,
            Ok(None) => {}
            Err(payload) => {
                found.panic_count += 1;
                if found.panics.len() < 5 {
                    found.panics.push((message(payload.as_ref()), shown));
                }
            }
        }
    }
    if let Some(hook) = previous {
        std::panic::set_hook(hook);
    }
    found
}
