//! `rehearse generate`: the data of a scenario and nothing else. The tables
//! are created and filled as for a rehearsal, then the harness prints how
//! to connect. On a throwaway server (local or docker) the server keeps
//! running until Ctrl-C, so that the data can be explored; on a server the
//! user names the tables stay there and the harness exits.

use anyhow::Context;

use crate::datagen::{self, LoadOptions, LoadedTable};
use crate::postgres::{self, BackendArg, Cleanup, Role};
use crate::rehearsal::UsageError;
use crate::scenario::Scenario;

/// What `generate` loaded, and where.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    /// `local`, `docker` or `url`.
    pub backend: postgres::BackendKind,
    /// Why that backend.
    pub chosen: String,
    /// How to connect. A throwaway container's password is in it (it is
    /// the harness's own, gone with the container); a named server's never.
    pub connect: String,
    /// `SELECT version()`.
    pub version: String,
    /// The tables.
    pub tables: Vec<LoadedTable>,
}

/// Loads the scenario's data, calls `loaded` with the result, and on a
/// throwaway server waits (until the future is dropped by Ctrl-C).
pub async fn generate(
    scenario: &Scenario,
    backend: &BackendArg,
    images: &[String],
    opts: &LoadOptions,
    loaded: impl FnOnce(&Generated) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let plan = postgres::plan(backend, images, &scenario.postgres.images).await?;
    let [choice] = plan.runs.as_slice() else {
        return Err(UsageError(format!(
            "generate fills one server; this asks for {} ({}): pass one --pg-image",
            plan.runs.len(),
            scenario.postgres.images.join(", ")
        ))
        .into());
    };
    eprintln!("rehearse: backend {}", plan.why);
    let (mut server, bulk) = crate::setup::provision(scenario, choice).await?;
    let config = server.config().clone();
    // Generated tables are the point: they stay on a server the user named.
    let cleanup = Cleanup::new((!server.is_throwaway()).then(|| config.clone()), true);
    let admin = postgres::connect(&config, &Role::Harness).await.context("connecting to the server")?;
    let version = postgres::server_version(&admin).await.context("reading the server version")?;
    let opts = LoadOptions { data_dir: server.data_dir(), throwaway: server.is_throwaway(), ..opts.clone() };
    let tables = datagen::load(&config, &server.target(), &admin, scenario, &opts, &cleanup).await?;
    drop(admin);
    if bulk {
        // Explored afterwards as the scenario configures it, not as loaded.
        crate::setup::restart(server.as_mut(), scenario, opts.progress).await?;
    }
    let _ = cleanup.finish().await;
    let generated = Generated {
        backend: server.backend(),
        chosen: plan.why.clone(),
        connect: server.connect_url(),
        version: version.version,
        tables,
    };
    loaded(&generated)?;
    if server.is_throwaway() {
        eprintln!("rehearse: the server runs until Ctrl-C, which stops and removes it");
        std::future::pending::<()>().await;
    }
    Ok(())
}
