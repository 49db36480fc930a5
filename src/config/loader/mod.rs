//! Turns raw entries into the final, expanded entry list: expansion passes, `set`/`set-ph`,
//! inline `include`, loop detection and the placeholder table.
//!
//! `files.rs` reads the files a config is made of (its own, its includes, the
//! `vassals-include` files) and catches include loops; `passes.rs` expands one value; here,
//! each entry becomes options, and the placeholder table grows.

mod files;
mod passes;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::limits::{Budget, Overrun};
use super::magic::{FileFacts, Startup};
use super::source::{ConfigName, RawEntry};
use super::{normalize_key, ConfigError, Entry, Origin};
use files::OpenFile;

/// One file being read: where its entries say they come from and what `%n` etc. mean in it.
struct FileScope<'a> {
    path: &'a Path,
    facts: &'a FileFacts,
}

pub(crate) struct Loader {
    startup: Startup,
    vassal_path: PathBuf,
    vassal: FileFacts,
    entries: Vec<Entry>,
    /// First value of every option so far, by normalized key: what `%(name)` sees.
    placeholders: HashMap<String, String>,
    open_files: Vec<OpenFile>,
    /// What the config has read and expanded so far, against `limits`.
    budget: Budget,
    /// What `$(VAR)` sees (see `LoadOptions::environment`).
    pub environment: Option<Vec<(String, String)>>,
}

impl Loader {
    pub fn new(vassal: &ConfigName) -> Result<Loader, ConfigError> {
        Ok(Loader::with_facts(vassal, FileFacts::of(vassal)?))
    }

    /// A loader for a config that came as text (see [`FileFacts::of_text`]).
    pub fn for_text(vassal: &ConfigName) -> Loader {
        Loader::with_facts(vassal, FileFacts::of_text(vassal))
    }

    fn with_facts(vassal: &ConfigName, facts: FileFacts) -> Loader {
        Loader {
            startup: Startup::now(),
            vassal_path: vassal.path.clone(),
            vassal: facts,
            entries: Vec::new(),
            placeholders: HashMap::new(),
            open_files: Vec::new(),
            budget: Budget::default(),
            environment: None,
        }
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// `vassal-set` pairs: read as if they were lines (without numbers) of the vassal's file.
    pub fn apply_sets(&mut self, sets: &[(String, String)]) -> Result<(), ConfigError> {
        let (path, facts) = (self.vassal_path.clone(), self.vassal.clone());
        let scope = FileScope {
            path: &path,
            facts: &facts,
        };
        for (key, value) in sets {
            self.add(RawEntry::new(key, value, None), &scope)?;
        }
        Ok(())
    }

    fn add(&mut self, raw: RawEntry, scope: &FileScope) -> Result<(), ConfigError> {
        let value = self.expand(&raw, scope)?;
        let origin = Origin {
            file: scope.path.to_path_buf(),
            line: raw.line,
        };
        match normalize_key(&raw.key).as_str() {
            "include" => self.include(&value, &raw, scope),
            "set" | "set-placeholder" | "set-ph" => {
                let (key, value) = split_assignment(&value).ok_or_else(|| {
                    bad_option(scope, &raw, format!("expected KEY=VALUE, got \"{value}\""))
                })?;
                self.push(key, value, origin)
                    .map_err(|limit| limit_error(scope, &raw, limit))
            }
            _ => self
                .push(&raw.key, &value, origin)
                .map_err(|limit| limit_error(scope, &raw, limit)),
        }
    }

    /// Keeps one expanded option, if the config's expanded size allows it.
    fn push(&mut self, key: &str, value: &str, origin: Origin) -> Result<(), Overrun> {
        self.budget.keep(key.len() + value.len())?;
        self.placeholders
            .entry(normalize_key(key))
            .or_insert_with(|| value.to_string());
        self.entries.push(Entry {
            key: key.to_string(),
            value: value.to_string(),
            origin,
        });
        Ok(())
    }
}

/// `K=V` -> (`K`, `V`); `K` alone -> (`K`, ""). `None` when the key is empty.
fn split_assignment(text: &str) -> Option<(&str, &str)> {
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    let key = key.trim();
    (!key.is_empty()).then_some((key, value))
}

/// An entry over one of the config's limits, at its file and line.
fn limit_error(scope: &FileScope, raw: &RawEntry, limit: Overrun) -> ConfigError {
    ConfigError::Limit {
        path: scope.path.to_path_buf(),
        line: raw.line,
        key: Some(raw.key.clone()),
        limit,
    }
}

/// An entry whose option is wrong, at its file and line.
fn bad_option(scope: &FileScope, raw: &RawEntry, message: String) -> ConfigError {
    ConfigError::BadOption {
        path: scope.path.to_path_buf(),
        line: raw.line,
        key: raw.key.clone(),
        message,
    }
}
