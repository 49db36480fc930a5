//! The uWSGI configuration language: a config file (ini, json, yaml, xml) becomes an ordered
//! multimap of options, each remembering where it came from.
//!
//! CONTRACT (used by the rest of the crate; keep these names and signatures):
//! - `load(path, &LoadOptions) -> Result<Config, ConfigError>`
//! - `is_config_name(name) -> bool`: the extension is one we load (.ini .json .js .yml .yaml .xml)
//! - `vassal_env_sets(env) -> Vec<(String, String)>`: `UWSGI_VASSAL_FOO_BAR=v` -> ("foo-bar", v)
//! - `Config::{get, get_all, get_bool, get_parsed, entries}` as below.

use std::path::{Path, PathBuf};

/// Where an option came from: the file and, for formats that have lines, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: Option<usize>,
}

/// One `key = value` after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// A loaded, fully expanded config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file that was loaded (as given).
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// What the emperor adds around a vassal's own file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `vassal-set` / `--set K=V` pairs, applied before the file (the file's own scalar
    /// options override them).
    pub sets: Vec<(String, String)>,
    /// `vassals-include` files, loaded after the file.
    pub includes: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("todo")]
    Todo,
}

pub fn load(_path: &Path, _opts: &LoadOptions) -> Result<Config, ConfigError> {
    todo!()
}

/// Extensions the emperor loads; anything else (`.skel`, `.swp`, `.ini.socket`) is ignored.
pub const CONFIG_EXTENSIONS: &[&str] = &["ini", "json", "js", "yml", "yaml", "xml"];

/// Whether a file name has an extension we load (and fits uWSGI's 255-byte name limit).
pub fn is_config_name(name: &str) -> bool {
    if name.len() >= 255 {
        return false;
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) => !stem.is_empty() && CONFIG_EXTENSIONS.contains(&ext),
        None => false,
    }
}

pub fn vassal_env_sets<I: IntoIterator<Item = (String, String)>>(_env: I) -> Vec<(String, String)> {
    todo!()
}

impl Config {
    /// The last value of `key` (scalar options: last wins). `_` and `-` are the same in keys.
    pub fn get(&self, _key: &str) -> Option<&Entry> {
        todo!()
    }
    /// Every value of `key`, in order (list options).
    pub fn get_all<'a>(&'a self, _key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        std::iter::empty()
    }
    /// A boolean flag: absent = false; present = true unless false/off/no/0.
    pub fn get_bool(&self, _key: &str) -> bool {
        todo!()
    }
    /// The last value of `key` parsed as T; an error names file, line and option.
    pub fn get_parsed<T: std::str::FromStr>(&self, _key: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        todo!()
    }
}
