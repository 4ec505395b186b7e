//! The settings a throwaway server loads its data under, and when the
//! harness may use them.
//!
//! With `wal_level = minimal` a table created or truncated in the
//! transaction that fills it, and every index built, skips the WAL: the
//! server writes each byte once instead of twice. The loader's single COPY
//! stream runs in the transaction of its `TRUNCATE`, so the load's heap and
//! its index builds write almost no WAL. Such a relation is instead synced
//! to disk when its transaction commits; `fsync = off` skips that wait,
//! since a throwaway server's data need not outlive a crash of the machine.
//! Measured here on 40M rows of `scenarios/add-column-default.toml`: 46.5 s
//! on the defaults, 39.1–43.2 s with minimal WAL (the COPY 19–24 s instead
//! of 28 s), 37.2–40.4 s with `fsync = off` as well.
//!
//! Production runs with `wal_level = replica` (or `logical`), and the WAL a
//! migration writes is part of what a rehearsal shows, so the server is
//! restarted with its settings proper once the data is in, before any
//! workload, migration or observer starts. A scenario that sets any of the
//! settings below itself is left exactly as written: the load then runs
//! under them.

/// The load's own settings, on top of the scenario's (later `-c` options
/// win, so these hold during the load even where the scenario sets
/// `fsync`; its own value returns with the restart).
pub const LOAD_SETTINGS: &[(&str, &str)] = &[("wal_level", "minimal"), ("max_wal_senders", "0"), ("fsync", "off")];

/// Settings whose value a user may have chosen on purpose, or that
/// `wal_level = minimal` cannot run beside (archiving, WAL senders and
/// summaries all need `replica`).
const HANDS_OFF: &[&str] = &["wal_level", "max_wal_senders", "archive_mode", "summarize_wal", "hot_standby"];

/// The settings to load under: `settings` plus [`LOAD_SETTINGS`], or
/// `None` when the scenario sets one of the settings the load would change
/// (then it loads under `settings` as they are).
pub fn for_load(settings: &[(String, String)]) -> Option<Vec<(String, String)>> {
    if settings.iter().any(|(name, _)| HANDS_OFF.contains(&name.to_ascii_lowercase().as_str())) {
        return None;
    }
    let mut load = settings.to_vec();
    load.extend(LOAD_SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Some(load)
}

/// What the load's settings were, for a line on stderr.
pub fn describe() -> String {
    LOAD_SETTINGS.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_load_adds_minimal_wal_to_the_scenarios_settings() {
        let load = for_load(&pairs(&[("max_connections", "200")])).expect("nothing the load changes is set");
        let want = [("max_connections", "200"), ("wal_level", "minimal"), ("max_wal_senders", "0"), ("fsync", "off")];
        assert_eq!(load, pairs(&want));
    }

    #[test]
    fn a_scenario_that_sets_the_wal_itself_loads_under_its_own_settings() {
        for name in ["wal_level", "WAL_LEVEL", "max_wal_senders", "archive_mode", "summarize_wal"] {
            assert_eq!(for_load(&pairs(&[(name, "on")])), None, "{name}");
        }
    }
}
