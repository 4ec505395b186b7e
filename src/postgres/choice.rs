//! Which backend runs the rehearsal, on which images, and why.
//!
//! The image comes from the first of: `--pg-image` (repeatable), the
//! scenario's `image`, its `version`/`versions` (`postgres:<version>`),
//! and [`DEFAULT_IMAGE`]. Each image is a rehearsal of its own.
//!
//! `auto`, the default, uses Docker when a daemon answers and every image
//! is present or can be pulled, and the local backend otherwise; the plan
//! says why in one line. When nothing names an image and the default is
//! not on the machine, an image `scripts/build-postgres-image` built
//! (`rehearse/postgres:<major>`) is used rather than a pull. Images the
//! user named on the command line, or several versions, need Docker:
//! without it that is an error, not a silent run on whatever the machine
//! has.

use super::docker::{self, DEFAULT_IMAGE, ImageSource};
use super::{BackendChoice, ProvisionError};

/// The backend the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendArg {
    /// Docker if it can, else the local backend.
    Auto,
    /// This machine's binaries.
    Local,
    /// A container.
    Docker,
    /// The server at this URL.
    Url(String),
}

/// What will run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One rehearsal per entry, in order.
    pub runs: Vec<BackendChoice>,
    /// One line: which backend, and why.
    pub why: String,
    /// What the user asked for but will not get, for every report.
    pub warnings: Vec<String>,
}

fn source(s: ImageSource) -> &'static str {
    match s {
        ImageSource::Present => "is present",
        ImageSource::Pulled => "was pulled",
    }
}

fn list(images: &[String]) -> String {
    images.join(", ")
}

/// Decides the backend and images. `cli_images` are the `--pg-image`
/// flags, `scenario_images` what the scenario's `[postgres]` names.
pub async fn plan(
    requested: &BackendArg,
    cli_images: &[String],
    scenario_images: &[String],
) -> Result<Plan, ProvisionError> {
    if !cli_images.is_empty() && matches!(requested, BackendArg::Local | BackendArg::Url(_)) {
        return Err(ProvisionError::Usage("--pg-image goes with --backend docker or auto".into()));
    }
    for image in cli_images {
        docker::check_image_ref(image).map_err(|e| ProvisionError::Usage(format!("--pg-image {e}")))?;
    }
    let named = if cli_images.is_empty() { scenario_images } else { cli_images };
    let images: Vec<String> = if named.is_empty() { vec![DEFAULT_IMAGE.to_string()] } else { named.to_vec() };
    let not_used = |backend: &str| {
        (!scenario_images.is_empty()).then(|| {
            format!(
                "the scenario asks for {}, but {backend} runs whatever PostgreSQL it has: see postgres.version",
                list(scenario_images)
            )
        })
    };
    match requested {
        BackendArg::Url(url) => Ok(Plan {
            runs: vec![BackendChoice::Url(url.clone())],
            why: "url: the server --url names".into(),
            warnings: not_used("the server at --url").into_iter().collect(),
        }),
        BackendArg::Local => {
            if scenario_images.len() > 1 {
                return Err(ProvisionError::Usage(format!(
                    "the scenario lists {} versions ({}); the local backend has one: use --backend docker",
                    scenario_images.len(),
                    list(scenario_images)
                )));
            }
            Ok(Plan {
                runs: vec![BackendChoice::Local],
                why: "local, as --backend local asks".into(),
                warnings: not_used("the local backend").into_iter().collect(),
            })
        }
        BackendArg::Docker => {
            let client = docker::daemon().await.map_err(ProvisionError::Docker)?;
            if named.is_empty()
                && let Some((built, why)) = built_instead(&client).await
            {
                let why = format!("docker, as --backend docker asks: {why}");
                return Ok(Plan { runs: vec![BackendChoice::Docker(built)], why, warnings: Vec::new() });
            }
            let mut sources = Vec::new();
            for image in &images {
                let s = docker::ensure_image(&client, image)
                    .await
                    .map_err(|reason| ProvisionError::ImageUnavailable { image: image.clone(), reason })?;
                sources.push(format!("{image} {}", source(s)));
            }
            Ok(Plan {
                runs: images.into_iter().map(BackendChoice::Docker).collect(),
                why: format!("docker, as --backend docker asks: {}", sources.join(", ")),
                warnings: Vec::new(),
            })
        }
        BackendArg::Auto => {
            // Images named on the command line, or several versions, are
            // a request for containers: without them, fail.
            let must = !cli_images.is_empty() || images.len() > 1;
            let client = match docker::daemon().await {
                Ok(c) => c,
                Err(reason) if must => return Err(ProvisionError::Docker(reason)),
                Err(reason) => return Ok(local_instead(reason, not_used("the local backend"))),
            };
            if named.is_empty()
                && let Some((built, why)) = built_instead(&client).await
            {
                let why = format!("docker: a Docker daemon answers, and {why}");
                return Ok(Plan { runs: vec![BackendChoice::Docker(built)], why, warnings: Vec::new() });
            }
            let mut sources = Vec::new();
            for image in &images {
                match docker::ensure_image(&client, image).await {
                    Ok(s) => sources.push(format!("{image} {}", source(s))),
                    Err(reason) if must => {
                        return Err(ProvisionError::ImageUnavailable { image: image.clone(), reason });
                    }
                    Err(reason) => return Ok(local_instead(reason, not_used("the local backend"))),
                }
            }
            Ok(Plan {
                runs: images.into_iter().map(BackendChoice::Docker).collect(),
                why: format!("docker: a Docker daemon answers and {}", sources.join(", ")),
                warnings: Vec::new(),
            })
        }
    }
}

/// When nothing names an image and the default is not on the machine: an
/// image `scripts/build-postgres-image` built, rather than a pull, and why.
async fn built_instead(client: &testcontainers::bollard::Docker) -> Option<(String, String)> {
    if docker::is_present(client, DEFAULT_IMAGE).await.unwrap_or(false) {
        return None;
    }
    let built = docker::built_images(client).await.into_iter().next()?;
    let why = format!("{built} (built by scripts/build-postgres-image) is present, {DEFAULT_IMAGE} is not");
    Some((built, why))
}

fn local_instead(reason: String, warning: Option<String>) -> Plan {
    Plan { runs: vec![BackendChoice::Local], why: format!("local: {reason}"), warnings: warning.into_iter().collect() }
}
