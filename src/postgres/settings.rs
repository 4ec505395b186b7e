//! The scenario's `[postgres] settings` as the server takes them. Postgres
//! checks every `-c` setting's name, type and range when it starts and
//! refuses to start on a bad one, naming it; that refusal is turned into
//! the scenario's error at the setting's place in the file (exit 2), not an
//! environment failure. On a server the user names, the harness checks
//! that the server has room for the sessions the rehearsal opens.

use tokio_postgres::Client;

use super::ProvisionError;
use crate::scenario::{ScenarioError, Setting};

/// The `FATAL` lines of a server's log.
fn fatal_lines(log: &str) -> impl Iterator<Item = &str> {
    log.lines().filter_map(|l| l.split_once("FATAL:").map(|(_, rest)| rest.trim()))
}

/// The setting a line names: `… parameter "shared_buffers" …`.
fn named(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("parameter \"")?;
    rest.split_once('"').map(|(name, _)| name)
}

/// When a server the harness started refused to start because of one of
/// `settings`, the scenario's error at that setting; `None` when the
/// failure is something else.
pub fn settings_fault(e: &ProvisionError, settings: &[Setting]) -> Option<ScenarioError> {
    let log = match e {
        ProvisionError::Start { log, .. } | ProvisionError::Container { log, .. } => log,
        _ => return None,
    };
    for line in fatal_lines(log) {
        if let Some(s) = named(line).and_then(|n| settings.iter().find(|s| s.name == n)) {
            let hint = log.lines().find_map(|l| l.split_once("HINT:").map(|(_, h)| h.trim())).unwrap_or("");
            let hint = if hint.is_empty() { String::new() } else { format!(" ({hint})") };
            return Some(ScenarioError::Invalid {
                at: s.at.clone(),
                message: format!("setting `{}` = \"{}\": the server refused it: {line}{hint}", s.name, s.value),
            });
        }
        // Memory the machine cannot give: the settings that size it.
        if line.contains("shared memory") {
            let sizing = ["shared_buffers", "max_connections", "huge_pages"];
            if let Some(s) = settings.iter().find(|s| sizing.contains(&s.name.as_str())) {
                return Some(ScenarioError::Invalid {
                    at: s.at.clone(),
                    message: format!(
                        "setting `{}` = \"{}\": the server could not get its shared memory: {line}",
                        s.name, s.value
                    ),
                });
            }
        }
    }
    None
}

/// Checks that a server the user named has room for `needed` more
/// sessions of the harness's user.
pub async fn check_room(client: &Client, needed: usize, target: &str) -> Result<(), ProvisionError> {
    let row = client
        .query_one(
            "SELECT current_setting('max_connections')::int, \
                    current_setting('superuser_reserved_connections')::int, \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int, \
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(|e| ProvisionError::Connect { target: target.to_string(), reason: super::describe(&e) })?;
    let (max, reserved, used, superuser): (i32, i32, i32, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let room = max - used - if superuser { 0 } else { reserved };
    if (room.max(0) as usize) < needed {
        return Err(ProvisionError::NoRoom(format!(
            "{target} has room for {room} more sessions (max_connections {max}, {used} in use{}), and the rehearsal opens {needed}: lower [workload] pool_size, or raise the server's max_connections",
            if superuser { String::new() } else { format!(", {reserved} reserved for superusers") }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Location;

    fn setting(name: &str, value: &str) -> Setting {
        Setting { name: name.into(), value: value.into(), at: Location { path: "s.toml".into(), line: 4, column: 30 } }
    }

    fn start(log: &str) -> ProvisionError {
        ProvisionError::Start { reason: "postgres exited".into(), log: log.into(), port_in_use: false }
    }

    #[test]
    fn a_refused_setting_is_the_scenarios_error_at_its_place() {
        let settings = [setting("max_connections", "200"), setting("shared_buffers", "1")];
        let log = "2026-12-01 21:44:13.433 GMT [10856] FATAL:  1 8kB is outside the valid range for parameter \"shared_buffers\" (16 .. 1073741823)";
        let e = settings_fault(&start(log), &settings).unwrap().to_string();
        assert!(e.starts_with("s.toml:4:30: setting `shared_buffers` = \"1\""), "{e}");
        assert!(e.contains("outside the valid range"), "{e}");
        let log = "FATAL:  invalid value for parameter \"wal_level\": \"foo\"\nHINT:  Available values: minimal, replica, logical.";
        let e = settings_fault(&start(log), &[setting("wal_level", "foo")]).unwrap().to_string();
        assert!(e.contains("Available values: minimal, replica, logical."), "{e}");
    }

    #[test]
    fn other_failures_stay_the_environments() {
        let log = "FATAL:  could not create lock file \"/run/x\": Permission denied";
        assert!(settings_fault(&start(log), &[setting("work_mem", "1GB")]).is_none());
        let log = "FATAL:  unrecognized configuration parameter \"other\"";
        assert!(settings_fault(&start(log), &[setting("work_mem", "1GB")]).is_none());
    }
}
