//! The uWSGI configuration language: a config file (ini, json, yaml, xml) becomes an ordered
//! multimap of options, each remembering where it came from.
//!
//! CONTRACT (used by the rest of the crate; keep these names and signatures):
//! - `load(path, &LoadOptions) -> Result<Config, ConfigError>`; `load_text(name, text, ..)` for
//!   a config that came as text from a monitor
//! - `is_config_name(name) -> bool`: the extension is one we load (.ini .json .js .yml .yaml .xml)
//! - `vassal_env_sets(env) -> Vec<(String, String)>`: `UWSGI_VASSAL_FOO_BAR=v` -> ("foo-bar", v)
//! - `Config::{get, get_all, get_bool, get_parsed, entries}` as below.
//!
//! Layout: one reader per format (`ini`, `json`, `yaml`, `xml`) turns text into raw
//! `(key, value, line)` pairs (`source` picks the reader); `loader` runs the expansion passes
//! (`magic`, then `expand`: `$()`, `@()`, `%()` with `math`) and handles `set`/`include`.
//! The user-facing description is docs/config-language.md.

mod error;
mod expand;
mod file;
#[doc(hidden)]
pub mod fuzzing;
mod ini;
mod json;
pub mod limits;
mod loader;
mod magic;
mod math;
mod source;
mod xml;
mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

pub use error::ConfigError;
use loader::Loader;
use source::ConfigName;

/// Where an option came from: the file and, for formats that have lines, the line.
/// `vassal-set` / `UWSGI_VASSAL_*` entries carry the vassal's file and no line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    /// `file:line`, or just `file`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// One `key = value` after expansion. The key is stored as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// A loaded, fully expanded config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file that was loaded, as given but without a `:section` suffix.
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// What the emperor adds around a vassal's own file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// `vassal-set` / `--set K=V` pairs, applied before the file (the file's own scalar
    /// options override them).
    pub sets: Vec<(String, String)>,
    /// `vassals-include` files, loaded after the file.
    pub includes: Vec<PathBuf>,
    /// The environment `$(VAR)` sees; None: this process's own. The emperor reading a
    /// vassal's config gives the runtime's clean environment, so `$(VAR)` means the same
    /// there as in the runtime and never reveals the emperor's own variables.
    pub environment: Option<Vec<(String, String)>>,
}

/// Loads `path` (`app.ini`, or `app.ini:section` to read another section) with the emperor's
/// additions: `opts.sets` first, then the file (includes inlined), then `opts.includes`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Config, ConfigError> {
    let name = ConfigName::parse(path);
    let loader = Loader::new(&name)?;
    assemble(loader, name, opts, |loader, name| loader.read_file(name))
}

/// As [`load`], for a config that came as text (from a monitor, through a sealed memfd):
/// `name` (`pg://db/app.ini`) picks the format by its extension and names it in errors.
pub fn load_text(name: &Path, text: &str, opts: &LoadOptions) -> Result<Config, ConfigError> {
    let name = ConfigName::parse(name);
    let loader = Loader::for_text(&name);
    assemble(loader, name, opts, |loader, name| {
        loader.read_text(name, text)
    })
}

/// `opts.sets`, then the vassal's own config (`own`), then `opts.includes`.
fn assemble(
    mut loader: Loader,
    name: ConfigName,
    opts: &LoadOptions,
    own: impl FnOnce(&mut Loader, &ConfigName) -> Result<(), ConfigError>,
) -> Result<Config, ConfigError> {
    loader.environment = opts.environment.clone();
    loader.apply_sets(&opts.sets)?;
    own(&mut loader, &name)?;
    for include in &opts.includes {
        loader.read_vassals_include(&ConfigName::parse(include))?;
    }
    Ok(Config {
        path: name.path,
        entries: loader.into_entries(),
    })
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

const VASSAL_ENV_PREFIX: &str = "UWSGI_VASSAL_";

/// The emperor's `UWSGI_VASSAL_FOO_BAR=v` variables as `("foo-bar", "v")` sets, in env order.
/// Values are passed as they are; magic variables in them expand when they are loaded as sets.
pub fn vassal_env_sets<I: IntoIterator<Item = (String, String)>>(env: I) -> Vec<(String, String)> {
    env.into_iter()
        .filter_map(|(name, value)| {
            let option = name.strip_prefix(VASSAL_ENV_PREFIX)?;
            (!option.is_empty()).then(|| (option.to_lowercase().replace('_', "-"), value))
        })
        .collect()
}

/// The form keys are compared in: `_` and `-` are the same character.
pub fn normalize_key(key: &str) -> String {
    key.replace('_', "-")
}

fn same_key(a: &str, b: &str) -> bool {
    let unify = |byte: u8| if byte == b'_' { b'-' } else { byte };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| unify(x) == unify(y))
}

/// uWSGI's flag rule: true unless the value is `false`, `off`, `no` (any case) or exactly `0`;
/// an empty value is true.
pub fn parse_flag(value: &str) -> bool {
    let value = value.trim();
    !(value == "0"
        || ["false", "off", "no"]
            .iter()
            .any(|no| value.eq_ignore_ascii_case(no)))
}

impl Config {
    /// The directory holding the config file: None for a config that came as text from a
    /// monitor (named `scheme://store/name`), which has no directory of its own.
    pub fn dir(&self) -> Option<&Path> {
        let from_store = self
            .path
            .to_str()
            .and_then(|p| p.split_once("://"))
            .is_some_and(|(scheme, _)| scheme.chars().all(|c| c.is_ascii_alphanumeric()));
        self.path
            .parent()
            .filter(|p| !from_store && !p.as_os_str().is_empty())
    }

    /// The last value of `key` (scalar options: last wins). `_` and `-` are the same in keys.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|entry| same_key(&entry.key, key))
    }

    /// Every value of `key`, in order (list options).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |entry| same_key(&entry.key, key))
    }

    /// A boolean flag: absent = false; present = true unless false/off/no/0.
    pub fn get_bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(|entry| parse_flag(&entry.value))
    }

    /// The last value of `key` parsed as T; an error names file, line and option.
    pub fn get_parsed<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(entry) = self.get(key) else {
            return Ok(None);
        };
        entry
            .value
            .parse()
            .map(Some)
            .map_err(|error| ConfigError::BadOption {
                path: entry.origin.file.clone(),
                line: entry.origin.line,
                key: entry.key.clone(),
                message: format!("invalid value \"{}\": {error}", entry.value),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_config_takes_its_format_and_name_from_the_monitor_name() {
        let opts = LoadOptions::default();
        let name = Path::new("pg://db/app.json");
        let config = load_text(name, r#"{"uwsgi": {"procname": "%n", "x": "1"}}"#, &opts).unwrap();
        assert_eq!(config.get("procname").unwrap().value, "app");
        assert_eq!(config.get("x").unwrap().origin.file, name);
        let err =
            load_text(Path::new("zmq://h/app.ini"), "[uwsgi]\nx = %(nope)", &opts).unwrap_err();
        assert!(err.to_string().starts_with("zmq://h/app.ini:2"), "{err}");
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let entries = pairs
            .iter()
            .enumerate()
            .map(|(index, (key, value))| Entry {
                key: key.to_string(),
                value: value.to_string(),
                origin: Origin {
                    file: "app.ini".into(),
                    line: Some(index + 2),
                },
            })
            .collect();
        Config {
            path: "app.ini".into(),
            entries,
        }
    }

    #[test]
    fn get_is_last_wins_and_get_all_keeps_order() {
        let cfg = config(&[
            ("socket", "a"),
            ("env", "A=1"),
            ("socket", "b"),
            ("env", "B=2"),
        ]);
        assert_eq!(cfg.get("socket").unwrap().value, "b");
        let envs: Vec<&str> = cfg.get_all("env").map(|e| e.value.as_str()).collect();
        assert_eq!(envs, ["A=1", "B=2"]);
        assert!(cfg.get("nope").is_none());
    }

    #[test]
    fn underscore_and_dash_are_the_same_in_lookups() {
        let cfg = config(&[("harakiri_verbose", "1"), ("chmod-socket", "660")]);
        assert!(cfg.get_bool("harakiri-verbose"));
        assert_eq!(cfg.get("chmod_socket").unwrap().key, "chmod-socket");
        assert_eq!(cfg.get_all("chmod_socket").count(), 1);
    }

    #[test]
    fn booleans_follow_uwsgi() {
        for (value, expected) in [
            ("", true),
            ("1", true),
            ("true", true),
            ("yes", true),
            ("00", true),
            ("0", false),
            ("false", false),
            ("FALSE", false),
            ("Off", false),
            ("no", false),
        ] {
            let cfg = config(&[("master", value)]);
            assert_eq!(cfg.get_bool("master"), expected, "value {value:?}");
        }
        assert!(!config(&[]).get_bool("master"));
    }

    #[test]
    fn get_parsed_names_file_line_option_and_value() {
        let cfg = config(&[("processes", "4"), ("harakiri", "soon")]);
        assert_eq!(cfg.get_parsed::<u32>("processes").unwrap(), Some(4));
        assert_eq!(cfg.get_parsed::<u32>("absent").unwrap(), None);
        let err = cfg.get_parsed::<u32>("harakiri").unwrap_err().to_string();
        assert!(
            err.starts_with("app.ini:3: option \"harakiri\": invalid value \"soon\""),
            "{err}"
        );
    }

    #[test]
    fn vassal_env_sets_rewrite_names() {
        let env = [
            ("PATH", "/bin"),
            ("UWSGI_VASSAL_SOCKET", "/tmp/%n.sock"),
            ("UWSGI_VASSAL_CHMOD_SOCKET", "660"),
            ("UWSGI_VASSAL_", "ignored"),
            ("UWSGI_SOCKET", "ignored"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            vassal_env_sets(env),
            [
                ("socket".to_string(), "/tmp/%n.sock".to_string()),
                ("chmod-socket".to_string(), "660".to_string()),
            ]
        );
    }

    #[test]
    fn config_names() {
        assert!(is_config_name("app.ini"));
        assert!(is_config_name("app.yaml"));
        assert!(!is_config_name("app.skel"));
        assert!(!is_config_name(".ini"));
        assert!(!is_config_name("app.ini.socket"));
    }

    #[test]
    fn origin_display() {
        let origin = Origin {
            file: "a.ini".into(),
            line: Some(3),
        };
        assert_eq!(origin.to_string(), "a.ini:3");
        let origin = Origin {
            file: "a.ini".into(),
            line: None,
        };
        assert_eq!(origin.to_string(), "a.ini");
    }
}
