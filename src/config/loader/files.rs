//! The files a config is read from: the vassal's own (or its text), its `include`s and the
//! `vassals-include` files; each included file counted against the config's budget before
//! it is read, nesting bounded, and include loops caught.

use std::path::PathBuf;

use super::{bad_option, limit_error, FileScope, Loader};
use crate::config::limits::{Overrun, MAX_INCLUDE_NESTING};
use crate::config::magic::FileFacts;
use crate::config::source::{parse_raw, read_config, ConfigName, RawEntry};
use crate::config::ConfigError;

/// A file being read, remembered to catch include loops.
pub(super) struct OpenFile {
    path: PathBuf,
    /// `path` with every symlink resolved; None for the vassal's own file until it includes
    /// another: most configs include nothing, and resolving walks each component of the path
    /// (a runtime reads its config at every start).
    canonical: Option<PathBuf>,
    section: String,
    shown: String,
}

impl Loader {
    /// Adds the entries of the vassal's own config, given as text. Its includes are read
    /// from files as usual.
    pub fn read_text(&mut self, name: &ConfigName, text: &str) -> Result<(), ConfigError> {
        let facts = self.vassal.clone();
        self.open_files.push(OpenFile {
            path: name.path.clone(),
            canonical: Some(name.path.clone()),
            section: name.section_name().to_string(),
            shown: name.display(),
        });
        self.add_all(name, &facts, parse_raw(name, text)?)
    }

    /// Reads the vassal's own file and adds its entries.
    pub fn read_file(&mut self, name: &ConfigName) -> Result<(), ConfigError> {
        self.read(name, None)
    }

    /// Reads a `vassals-include` file and adds its entries; it counts as an included file.
    pub fn read_vassals_include(&mut self, name: &ConfigName) -> Result<(), ConfigError> {
        let over = |limit| ConfigError::Limit {
            path: name.path.clone(),
            line: None,
            key: None,
            limit,
        };
        self.read(name, Some(&over))
    }

    /// Reads a file and adds its entries. An included file (`over` says how to report its
    /// overrun) is counted before it is opened, and its size before it is parsed.
    fn read(
        &mut self,
        name: &ConfigName,
        over: Option<&dyn Fn(Overrun) -> ConfigError>,
    ) -> Result<(), ConfigError> {
        if let Some(over) = over {
            self.budget.open_file().map_err(over)?;
        }
        let facts = FileFacts::of(name)?;
        self.enter(name)?;
        let text = read_config(name)?;
        if let Some(over) = over {
            self.budget.read(text.len()).map_err(over)?;
        }
        self.add_all(name, &facts, parse_raw(name, &text)?)
    }

    /// The entries of the file on top of `open_files`, which is then closed.
    fn add_all(
        &mut self,
        name: &ConfigName,
        facts: &FileFacts,
        raws: Vec<RawEntry>,
    ) -> Result<(), ConfigError> {
        let scope = FileScope {
            path: &name.path,
            facts,
        };
        for raw in raws {
            self.add(raw, &scope)?;
        }
        self.open_files.pop();
        Ok(())
    }

    /// Marks `name` as being read; an error if it already is (an include loop).
    fn enter(&mut self, name: &ConfigName) -> Result<(), ConfigError> {
        let file = OpenFile {
            path: name.path.clone(),
            canonical: None,
            section: name.section_name().to_string(),
            shown: name.display(),
        };
        if self.open_files.is_empty() {
            self.open_files.push(file);
            return Ok(());
        }
        let canonical = std::fs::canonicalize(&name.path).map_err(|source| ConfigError::Read {
            path: name.path.clone(),
            source,
        })?;
        let file = OpenFile {
            canonical: Some(canonical),
            ..file
        };
        for open in &mut self.open_files {
            if open.canonical.is_none() {
                // Being read, so there; should it have gone meanwhile, its path stands in.
                let resolved =
                    std::fs::canonicalize(&open.path).unwrap_or_else(|_| open.path.clone());
                open.canonical = Some(resolved);
            }
        }
        let is_same =
            |open: &OpenFile| open.canonical == file.canonical && open.section == file.section;
        if self.open_files.iter().any(is_same) {
            let mut chain: Vec<String> = self
                .open_files
                .iter()
                .map(|open| open.shown.clone())
                .collect();
            chain.push(file.shown);
            return Err(ConfigError::IncludeLoop { chain });
        }
        self.open_files.push(file);
        Ok(())
    }

    /// Inlines another file here. Problems opening it are reported at the `include` line.
    pub(super) fn include(
        &mut self,
        target: &str,
        raw: &RawEntry,
        scope: &FileScope,
    ) -> Result<(), ConfigError> {
        // open_files holds the vassal's own file and the includes around this one.
        if self.open_files.len() > MAX_INCLUDE_NESTING {
            return Err(limit_error(scope, raw, Overrun::IncludeNesting));
        }
        let name = ConfigName::parse(&scope.facts.dir().join(target));
        let over = |limit| limit_error(scope, raw, limit);
        self.read(&name, Some(&over)).map_err(|error| match error {
            ConfigError::Read { .. }
            | ConfigError::UnknownFormat { .. }
            | ConfigError::MissingSection { .. } => bad_option(scope, raw, error.to_string()),
            other => other,
        })
    }
}
