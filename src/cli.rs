//! The command line: uWSGI-compatible long options for the emperor, plus the `vassal`,
//! `check` and `stats` subcommands. `--ini FILE` reads the emperor's own options from a file.

use crate::config::{self, LoadOptions};
use crate::emperor::Settings;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "emperor",
    version,
    about = "A sandboxing supervisor in the spirit of the uWSGI Emperor"
)]
#[command(args_conflicts_with_subcommands = true, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub emperor: EmperorArgs,
}

/// Options of the emperor itself (uWSGI's names).
#[derive(Debug, Args)]
pub struct EmperorArgs {
    /// Where vassal configs live: dir://PATH, glob://PATTERN, a directory or a pattern. Repeatable.
    #[arg(long = "emperor", value_name = "SPEC")]
    pub monitors: Vec<String>,
    /// Use a symlink's own mtime (touch --no-dereference reloads one vassal).
    #[arg(long)]
    pub emperor_nofollow: bool,
    /// Seconds between safety-net rescans (events come from inotify at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    pub emperor_freq: u64,
    /// Throttle delta in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub emperor_throttle: u64,
    /// Maximum throttle in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 180_000)]
    pub emperor_max_throttle: u64,
    /// Seconds a vassal that sends heartbeats may stay silent before it is reloaded.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub emperor_required_heartbeat: u64,
    /// Seconds a vassal asked to stop may take before its runtime is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub emperor_curse_tolerance: u64,
    /// Stats server address: host:port (TCP) or a UNIX socket path.
    #[arg(long, visible_alias = "emperor-stats-server", value_name = "ADDR")]
    pub emperor_stats: Option<String>,
    /// Option given to every vassal, before its own (KEY=VALUE). Repeatable.
    #[arg(long, value_name = "KEY=VALUE", alias = "vassals-set")]
    pub vassal_set: Vec<String>,
    /// File included after every vassal's config. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub vassals_include: Vec<PathBuf>,
    /// The binary that runs vassals (default: this one).
    #[arg(long, value_name = "PATH")]
    pub binary_path: Option<PathBuf>,
    /// Read the emperor's options from this config file (section [uwsgi]).
    #[arg(long, value_name = "FILE")]
    pub ini: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one vassal in the foreground (what the emperor runs for each config).
    Vassal(VassalCommand),
    /// Parse and expand a config, print the resolved options or the errors.
    Check(VassalCommand),
    /// Print an emperor's stats JSON.
    Stats {
        /// host:port or a UNIX socket path.
        addr: String,
    },
}

#[derive(Debug, Args)]
pub struct VassalCommand {
    /// An option placed before the config's own (KEY=VALUE). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// A file loaded after the config. Repeatable.
    #[arg(long = "include", value_name = "FILE")]
    pub includes: Vec<PathBuf>,
    /// The vassal's config file.
    pub config: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{origin}: option \"{key}\": not an emperor option")]
    UnknownOption { origin: String, key: String },
    #[error("{what} {value:?}: expected KEY=VALUE")]
    NotKeyValue { what: &'static str, value: String },
}

/// Parse the process's arguments, expanding `--ini FILE` into the options it holds (placed
/// before the command line's own, so the command line wins).
pub fn parse() -> Result<Cli, CliError> {
    let args: Vec<OsString> = std::env::args_os().collect();
    Ok(Cli::parse_from(expand_ini(args)?))
}

fn expand_ini(args: Vec<OsString>) -> Result<Vec<OsString>, CliError> {
    let is_subcommand = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| ["vassal", "check", "stats", "help"].contains(&a));
    let position = args.iter().position(|a| a == "--ini");
    let (Some(i), false) = (position, is_subcommand) else {
        return Ok(args);
    };
    let Some(file) = args.get(i + 1) else {
        return Ok(args);
    };
    let config = config::load(std::path::Path::new(file), &LoadOptions::default())?;
    let command = Cli::command();
    let mut from_file = Vec::new();
    for entry in &config.entries {
        let key = config::normalize_key(&entry.key);
        let arg = command
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(key.as_str())
                    || a.get_all_aliases()
                        .is_some_and(|al| al.contains(&key.as_str()))
            })
            .filter(|a| a.get_long() != Some("ini"))
            .ok_or_else(|| CliError::UnknownOption {
                origin: entry.origin.to_string(),
                key: entry.key.clone(),
            })?;
        let long = format!("--{}", arg.get_long().expect("long option"));
        if arg.get_action().takes_values() {
            from_file.push(OsString::from(long));
            from_file.push(OsString::from(&entry.value));
        } else if config::parse_flag(&entry.value) {
            from_file.push(OsString::from(long));
        }
    }
    let mut expanded = vec![args[0].clone()];
    expanded.extend(from_file);
    expanded.extend(args.into_iter().skip(1));
    Ok(expanded)
}

fn key_value(what: &'static str, value: &str) -> Result<(String, String), CliError> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| CliError::NotKeyValue {
            what,
            value: value.to_string(),
        })
}

impl EmperorArgs {
    /// The emperor's settings; `UWSGI_VASSAL_*` variables become vassal-set options.
    pub fn settings(&self) -> Result<Settings, CliError> {
        let mut vassal_sets = config::vassal_env_sets(std::env::vars());
        for set in &self.vassal_set {
            vassal_sets.push(key_value("--vassal-set", set)?);
        }
        let monitors = self.monitors.iter().map(|m| monitor_spec(m)).collect();
        Ok(Settings {
            monitors,
            nofollow: self.emperor_nofollow,
            freq: Duration::from_secs(self.emperor_freq.max(1)),
            throttle: Duration::from_millis(self.emperor_throttle),
            max_throttle: Duration::from_millis(self.emperor_max_throttle),
            required_heartbeat: Duration::from_secs(self.emperor_required_heartbeat),
            curse_tolerance: Duration::from_secs(self.emperor_curse_tolerance),
            stats: self.emperor_stats.clone(),
            vassal_sets,
            vassals_include: self.vassals_include.iter().map(|p| absolute(p)).collect(),
            binary_path: self.binary_path.clone(),
        })
    }
}

/// Relative monitor paths are resolved now: the runtimes do not share our working directory.
fn monitor_spec(spec: &str) -> String {
    if spec.contains("://") || spec.starts_with('/') {
        return spec.to_string();
    }
    absolute(std::path::Path::new(spec)).display().to_string()
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl VassalCommand {
    pub fn load_options(&self) -> Result<LoadOptions, CliError> {
        let sets = self
            .sets
            .iter()
            .map(|s| key_value("--set", s))
            .collect::<Result<_, _>>()?;
        Ok(LoadOptions {
            sets,
            includes: self.includes.clone(),
        })
    }
}
