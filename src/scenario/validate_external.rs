//! Validation of what a scenario names outside itself: the server images
//! of `[postgres]`, and the schema file of `schema = "…"`.

use toml::Spanned;

use super::raw::{RawPooler, RawPostgres};
use super::source::{SourceFile, SqlText};
use super::validate::Validator;
use super::{PoolerSpec, ScenarioError, SchemaFile, sql_split};
use crate::postgres::{self, PoolMode};

impl Validator {
    /// Reads `schema = "…"` (relative to the scenario's directory) and cuts
    /// it into statements.
    pub(super) fn schema_file(&self, path: Spanned<String>) -> Result<SchemaFile, ScenarioError> {
        let span = path.span();
        let named = std::path::PathBuf::from(path.into_inner());
        let resolved = match self.src.path.parent() {
            Some(dir) if named.is_relative() => dir.join(&named),
            _ => named.clone(),
        };
        let text = match super::read_text(&resolved, super::limits::MAX_SCHEMA_BYTES, "schema file") {
            Ok(t) => t,
            Err(super::ScenarioError::Read { source, .. }) => {
                return self.err(span, format!("cannot read schema {}: {source}", resolved.display()));
            }
            Err(e) => return Err(e),
        };
        let source = SourceFile::new(&resolved, text);
        let mut statements = Vec::new();
        let mut meta_commands = Vec::new();
        for piece in sql_split::split(&source.text) {
            if piece.meta {
                meta_commands.push(source.text[piece.range].to_string());
            } else {
                statements.push(SqlText::verbatim(&source, piece.range));
            }
        }
        if statements.is_empty() {
            return self.err(span, format!("schema {} holds no SQL statement", resolved.display()));
        }
        Ok(SchemaFile { path: resolved, statements, meta_commands })
    }

    /// `image`, `version` or `versions` of `[postgres]`, as image references.
    pub(super) fn images(&self, pg: &RawPostgres) -> Result<Vec<String>, ScenarioError> {
        if let (Some(_), Some(v)) = (&pg.version, &pg.versions) {
            return self.err(v.span(), "give `version` or `versions`, not both");
        }
        if let (Some(_), Some(v)) = (&pg.image, &pg.versions) {
            return self.err(v.span(), "give `image` or `versions`, not both: each version is an image of its own");
        }
        if let Some(image) = &pg.image {
            if let Err(e) = postgres::check_image_ref(image.get_ref()) {
                return self.err(image.span(), e);
            }
            return Ok(vec![image.get_ref().clone()]);
        }
        let versions: Vec<&Spanned<String>> = match (&pg.version, &pg.versions) {
            (Some(v), _) => vec![v],
            (None, Some(list)) if list.get_ref().is_empty() => {
                return self.err(list.span(), "`versions` is empty");
            }
            (None, Some(list)) => list.get_ref().iter().collect(),
            (None, None) => return Ok(Vec::new()),
        };
        let mut images: Vec<String> = Vec::new();
        for v in versions {
            let text = v.get_ref();
            let valid = text.len() <= 128
                && text.starts_with(|c: char| c.is_ascii_alphanumeric())
                && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !valid {
                return self.err(v.span(), format!("`{text}` is not a version such as \"12\" or \"16.4\""));
            }
            let image = postgres::official_image(text);
            if images.contains(&image) {
                return self.err(v.span(), format!("version `{text}` is listed twice"));
            }
            images.push(image);
        }
        Ok(images)
    }

    /// `[pooler]`: `kind = "pgbouncer"`, its mode and server pool size.
    pub(super) fn pooler(&self, raw: Option<Spanned<RawPooler>>) -> Result<Option<PoolerSpec>, ScenarioError> {
        let Some(raw) = raw else { return Ok(None) };
        let RawPooler { kind, mode, pool_size } = raw.into_inner();
        if kind.get_ref() != "pgbouncer" {
            return self.err(kind.span(), format!("[pooler] kind is \"pgbouncer\", not `{}`", kind.get_ref()));
        }
        let mode = match mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("transaction") => PoolMode::Transaction,
            Some("session") => PoolMode::Session,
            Some(other) => {
                let span = mode.as_ref().map(Spanned::span).unwrap_or_default();
                return self.err(span, format!("[pooler] mode is \"transaction\" or \"session\", not `{other}`"));
            }
        };
        let pool_size = match &pool_size {
            Some(n) if !(1..=10_000).contains(n.get_ref()) => {
                return self.err(n.span(), "[pooler] pool_size is server connections, from 1 to 10000");
            }
            n => n.as_ref().map_or(20, |n| *n.get_ref() as u32),
        };
        Ok(Some(PoolerSpec { mode, pool_size }))
    }
}
