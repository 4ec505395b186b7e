//! The Docker daemon, as the container backend needs it: does it answer,
//! is an image there (or can it be pulled), and which containers did the
//! harness leave behind.
//!
//! Every container the harness starts carries labels: [`MANAGED_LABEL`],
//! the run's tag ([`RUN_LABEL`]), the harness's process id
//! ([`PID_LABEL`]) and a slot unique to that start ([`SLOT_LABEL`]).
//! `rehearse clean` removes those whose process is gone; a run removes
//! its own by slot, even when it was interrupted half-way through a start.

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use testcontainers::{ImageExt, runners::AsyncRunner};
use testcontainers_modules::postgres::Postgres;

/// The image used when nothing names one: the official image of the
/// newest major this release of the harness knows.
pub const DEFAULT_IMAGE: &str = "postgres:18";

/// Set on every container the harness starts.
pub const MANAGED_LABEL: &str = "dev.rehearse.managed";
/// The tag of the run that started the container.
pub const RUN_LABEL: &str = "dev.rehearse.run";
/// The process id of the harness that started the container.
pub const PID_LABEL: &str = "dev.rehearse.pid";
/// Unique to one start of one container.
pub const SLOT_LABEL: &str = "dev.rehearse.slot";

/// How long a call to the daemon may take when the harness only asks.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// The official image of a major or minor version: `postgres:<version>`.
pub fn official_image(version: &str) -> String {
    format!("postgres:{version}")
}

/// Checks that `image` is a reference the harness can start:
/// `[registry/]name[:tag]`, without a digest.
pub fn check_image_ref(image: &str) -> Result<(), String> {
    if image.trim().is_empty() {
        return Err("the image name is empty".into());
    }
    if image.contains('@') {
        return Err(format!("`{image}`: image digests are not supported; name the image by tag"));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{image}` is not an image name: it contains white space"));
    }
    let (name, tag) = split_image(image);
    if name.is_empty() || name.ends_with('/') || tag.is_empty() {
        return Err(format!("`{image}` is not an image name such as postgres:16 or registry.example/pg:15"));
    }
    Ok(())
}

/// `name[:tag]` → (name, tag); the tag is `latest` when absent. A colon
/// before the last `/` belongs to a registry's port, not to the tag.
pub fn split_image(image: &str) -> (&str, &str) {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// A client of the daemon named by `DOCKER_HOST`, or the local socket.
pub fn client() -> Result<Docker, String> {
    Docker::connect_with_defaults().map_err(|e| e.to_string())
}

/// Whether a daemon answers, and if not why.
pub async fn daemon() -> Result<Docker, String> {
    let docker = client()?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(format!("no Docker daemon answers ({e})")),
        Err(_) => Err(format!("the Docker daemon did not answer within {}s", PING_TIMEOUT.as_secs())),
    }
}

/// The engine's root directory (`docker info`'s Docker Root Dir), where a
/// container's files live.
pub async fn root_dir() -> Option<std::path::PathBuf> {
    let docker = client().ok()?;
    let info = tokio::time::timeout(PING_TIMEOUT, docker.info()).await.ok()?.ok()?;
    info.docker_root_dir.map(std::path::PathBuf::from)
}

/// The address another container reaches container `id` at: its address
/// on the first network it is on (Docker's bridge, by default).
pub async fn container_address(id: &str) -> Result<String, String> {
    let docker = client()?;
    let inspected = docker.inspect_container(id, None).await.map_err(|e| e.to_string())?;
    let networks = inspected.network_settings.and_then(|n| n.networks).unwrap_or_default();
    let mut addresses: Vec<(String, String)> =
        networks.into_iter().filter_map(|(name, e)| Some((name, e.ip_address.filter(|a| !a.is_empty())?))).collect();
    addresses.sort();
    addresses.into_iter().next().map(|(_, a)| a).ok_or_else(|| format!("container {id} has no network address"))
}

/// Where an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    /// It was on the machine already.
    Present,
    /// It was pulled just now.
    Pulled,
}

/// How long a pull may take before the harness gives up on it.
const PULL_TIMEOUT: Duration = Duration::from_secs(120);

/// The first line of an error, at most 120 characters: a registry's DNS
/// error runs to several lines.
fn short(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(119).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Whether `image` is on the machine.
pub async fn is_present(docker: &Docker, image: &str) -> Result<bool, String> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
        Err(e) => Err(format!("cannot inspect image {image}: {}", short(e))),
    }
}

/// Makes sure `image` is on the machine: present, or pulled now.
pub async fn ensure_image(docker: &Docker, image: &str) -> Result<ImageSource, String> {
    if is_present(docker, image).await? {
        return Ok(ImageSource::Present);
    }
    let (name, tag) = split_image(image);
    let pull = Postgres::default().with_name(name).with_tag(tag).pull_image();
    match tokio::time::timeout(PULL_TIMEOUT, pull).await {
        Ok(Ok(_)) => Ok(ImageSource::Pulled),
        Ok(Err(e)) => Err(format!("{image} is not on this machine and cannot be pulled ({})", short(e))),
        Err(_) => Err(format!("{image} is not on this machine and did not pull within {}s", PULL_TIMEOUT.as_secs())),
    }
}

/// The images `scripts/build-postgres-image` builds that are on the
/// machine (`rehearse/postgres:<major>`), highest major first.
pub async fn built_images(docker: &Docker) -> Vec<String> {
    use testcontainers::bollard::query_parameters::ListImagesOptions;
    let filters = HashMap::from([("reference".to_string(), vec!["rehearse/postgres".to_string()])]);
    let options = ListImagesOptions { filters: Some(filters), ..Default::default() };
    let Ok(list) = docker.list_images(Some(options)).await else { return Vec::new() };
    let mut tags: Vec<(u32, String)> = list
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .filter_map(|t| {
            let major = t.strip_prefix("rehearse/postgres:")?.split('.').next()?.parse().ok()?;
            Some((major, t))
        })
        .collect();
    tags.sort_by(|a, b| b.cmp(a));
    tags.into_iter().map(|(_, t)| t).collect()
}

/// Labels for a container started by this process in `slot`.
pub fn labels(slot: &str) -> Vec<(String, String)> {
    vec![
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (RUN_LABEL.to_string(), super::run_tag().to_string()),
        (PID_LABEL.to_string(), std::process::id().to_string()),
        (SLOT_LABEL.to_string(), slot.to_string()),
    ]
}

/// A container of the harness, as `rehearse clean` sees it.
#[derive(Debug, Clone)]
pub struct Leftover {
    /// The container's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// The process that started it, if the label says.
    pub pid: Option<i32>,
    /// Its state: running, exited, ...
    pub state: String,
}

/// Every container carrying `label` (`key` or `key=value`), in any state.
pub async fn containers(docker: &Docker, label: &str) -> Result<Vec<Leftover>, String> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let list = docker.list_containers(Some(options)).await.map_err(|e| format!("cannot list containers: {e}"))?;
    Ok(list
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            Leftover {
                id: c.id.unwrap_or_default(),
                name: c.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').into(),
                image: c.image.unwrap_or_default(),
                pid: labels.get(PID_LABEL).and_then(|p| p.parse().ok()),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            }
        })
        .collect())
}

/// Removes a container and its anonymous volumes, whatever its state.
/// A container already gone counts as removed.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), String> {
    let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(format!("cannot remove container {id}: {e}")),
    }
}

/// Removes every container labelled with `slot`, blocking; callable from a
/// `Drop` anywhere (see [`super::block_on_own_thread`]).
pub fn sweep_slot_blocking(slot: &str) {
    let label = format!("{SLOT_LABEL}={slot}");
    super::block_on_own_thread(async move {
        let Ok(docker) = client() else { return };
        let sweep = async {
            for c in containers(&docker, &label).await.unwrap_or_default() {
                let _ = remove(&docker, &c.id).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), sweep).await;
    });
}

/// Whether a process with this id runs on this machine.
pub fn process_alive(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_name_and_tag() {
        assert_eq!(split_image("postgres:16"), ("postgres", "16"));
        assert_eq!(split_image("postgres"), ("postgres", "latest"));
        assert_eq!(split_image("rehearse/postgres:15"), ("rehearse/postgres", "15"));
        assert_eq!(split_image("localhost:5000/pg"), ("localhost:5000/pg", "latest"));
        assert_eq!(split_image("localhost:5000/team/pg:12.11"), ("localhost:5000/team/pg", "12.11"));
    }

    #[test]
    fn bad_image_references_are_refused() {
        assert!(check_image_ref("postgres:16").is_ok());
        assert!(check_image_ref("").is_err());
        assert!(check_image_ref("postgres@sha256:abc").unwrap_err().contains("digest"));
        assert!(check_image_ref("postgres 16").is_err());
        assert!(check_image_ref("postgres:").is_err());
        assert!(check_image_ref("registry/").is_err());
    }

    #[test]
    fn the_process_itself_is_alive() {
        assert!(process_alive(std::process::id() as i32));
    }
}
