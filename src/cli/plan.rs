//! `rehearse plan`: the shards of a suite (scenario × strategy × major),
//! listed for a person or printed as a CI matrix: GitHub Actions'
//! `strategy.matrix` (`{"include": [...]}`), or a GitLab child pipeline
//! whose job runs them with `parallel:matrix`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::EXIT_PASS;
use crate::rehearsal::UsageError;
use crate::scenario::LoadOptions;
use crate::soak::{load_all, plan, scenario_files};

/// GitHub's limit of jobs in one matrix (GitLab's is lower, see below).
const GITHUB_MAX_JOBS: usize = 256;
/// GitLab's limit of jobs one `parallel:matrix` makes.
const GITLAB_MAX_JOBS: usize = 200;

/// Which CI reads the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatrixKind {
    /// `strategy: matrix: ${{ fromJSON(...) }}` of GitHub Actions.
    Github,
    /// A GitLab child pipeline (JSON is YAML) whose job extends
    /// `.rehearse-shard` with one `parallel:matrix` entry per shard.
    Gitlab,
}

/// `rehearse plan`
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Scenario files, or directories whose `*.toml` files are each one.
    #[arg(required = true, value_name = "DIR_OR_FILES")]
    pub paths: Vec<PathBuf>,
    /// Print the shards as a CI matrix (github, the default, or gitlab)
    /// instead of a list.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "github", require_equals = true)]
    pub matrix: Option<MatrixKind>,
    /// PostgreSQL majors, comma-separated: a shard per scenario ×
    /// strategy × major (default: each scenario's own version or image,
    /// else one shard on the default server).
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub majors: Vec<u16>,
    /// The image of a major, `{major}` replaced (the tag
    /// scripts/build-postgres-image gives; `postgres:{major}` for the
    /// official ones).
    #[arg(long, default_value = "rehearse/postgres:{major}", value_name = "TEMPLATE")]
    pub image: String,
    /// With --matrix=gitlab: the file that defines the job `.rehearse-shard`
    /// each shard extends (included by the child pipeline).
    #[arg(long, default_value = ".gitlab/rehearse-shard.yml", value_name = "PATH")]
    pub gitlab_template: String,
}

/// One shard: what a CI job passes to `rehearse run`.
struct Shard {
    name: String,
    scenario: String,
    strategy: Option<String>,
    major: Option<String>,
    image: Option<String>,
}

/// The keys of a shard in GitHub's matrix: `matrix.shard`, ….
const GITHUB_KEYS: [&str; 5] = ["shard", "scenario", "strategy", "major", "image"];
/// The same as GitLab's variables.
const GITLAB_KEYS: [&str; 5] = ["SHARD", "SCENARIO", "STRATEGY", "PG_MAJOR", "PG_IMAGE"];

impl Shard {
    /// The shard as a matrix entry under `keys` (name, scenario, strategy,
    /// major, image); what it lacks (a load-only scenario's strategy, the
    /// major of a default server) is left out, so that it reads empty.
    fn entry(&self, keys: [&str; 5]) -> serde_json::Value {
        let values =
            [Some(&self.name), Some(&self.scenario), self.strategy.as_ref(), self.major.as_ref(), self.image.as_ref()];
        let pairs =
            keys.iter().zip(values).filter_map(|(k, v)| Some((k.to_string(), serde_json::Value::from(v?.clone()))));
        serde_json::Value::Object(pairs.collect())
    }

    /// The arguments of `rehearse run` for this shard, quoted for a shell.
    fn args(&self) -> String {
        let mut a = vec![quote(&self.scenario)];
        if let Some(s) = &self.strategy {
            a.extend(["--strategy".into(), quote(s)]);
        }
        if let Some(i) = &self.image {
            a.extend(["--pg-image".into(), quote(i)]);
        }
        a.join(" ")
    }
}

/// `s`, single-quoted when a shell would split or expand it.
fn quote(s: &str) -> String {
    let plain = s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain && !s.is_empty() { s.to_string() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}

/// A name fit for a file and a job: letters, digits and dashes.
fn slug(parts: &[&str]) -> String {
    let joined = parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("-");
    let s: String =
        joined.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// The shards of the scenarios: scenario × strategy × server.
fn shards(args: &PlanArgs) -> anyhow::Result<Vec<Shard>> {
    let files = scenario_files(&args.paths)?;
    let scenarios = load_all(&files, &LoadOptions::default())?;
    let summary = plan(&scenarios, std::time::Duration::ZERO);
    let mut out = Vec::new();
    for p in &summary.planned {
        let own = &scenarios.iter().find(|(f, _)| *f == p.file).expect("planned from these").1.postgres.images;
        let servers: Vec<(Option<String>, Option<String>)> = if !args.majors.is_empty() {
            let image = |m: &u16| args.image.replace("{major}", &m.to_string());
            args.majors.iter().map(|m| (Some(m.to_string()), Some(image(m)))).collect()
        } else if !own.is_empty() {
            own.iter().map(|i| (i.rsplit_once(':').map(|(_, t)| t.to_string()), Some(i.clone()))).collect()
        } else {
            vec![(None, None)]
        };
        for (major, image) in servers {
            let pg = major.as_deref().map(|m| format!("pg{m}")).unwrap_or_default();
            let stem = std::path::Path::new(&p.file).file_stem().map(|s| s.to_string_lossy().to_string());
            let name = slug(&[&stem.unwrap_or_default(), p.strategy.as_deref().unwrap_or(""), &pg]);
            out.push(Shard { name, scenario: p.file.clone(), strategy: p.strategy.clone(), major, image });
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|s| !seen.insert(s.name.clone())) {
        return Err(UsageError(format!("two shards would share the name {}; rename a scenario file", dup.name)).into());
    }
    Ok(out)
}

/// Runs `rehearse plan`.
pub(super) fn run(args: PlanArgs) -> anyhow::Result<i32> {
    let shards = shards(&args)?;
    let Some(kind) = args.matrix else {
        for s in &shards {
            println!("{:<48} rehearse run {}", s.name, s.args());
        }
        eprintln!("rehearse: {} shards", shards.len());
        return Ok(EXIT_PASS);
    };
    let limit = if kind == MatrixKind::Github { GITHUB_MAX_JOBS } else { GITLAB_MAX_JOBS };
    if shards.len() > limit {
        return Err(UsageError(format!(
            "{} shards, more than the {limit} jobs one {kind:?} matrix may hold; plan fewer scenarios or majors per matrix",
            shards.len()
        ))
        .into());
    }
    let doc = match kind {
        MatrixKind::Github => json!({ "include": shards.iter().map(|s| s.entry(GITHUB_KEYS)).collect::<Vec<_>>() }),
        MatrixKind::Gitlab => json!({
            "include": [{ "local": args.gitlab_template }],
            "rehearse-shard": {
                "extends": ".rehearse-shard",
                "parallel": { "matrix": shards.iter().map(|s| s.entry(GITLAB_KEYS)).collect::<Vec<_>>() }
            }
        }),
    };
    println!("{}", serde_json::to_string(&doc).expect("the matrix serializes"));
    Ok(EXIT_PASS)
}
