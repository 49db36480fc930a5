//! The command line: uWSGI-compatible long options for the emperor, plus the `vassal`,
//! `check` and `stats` subcommands. `--ini FILE` reads the emperor's own options from a file.
//!
//! `commands.rs` and `emperor_args.rs` are the clap definitions; `settings.rs` and
//! `decode.rs` turn them into the project's types; `ini.rs` expands `--ini FILE`.

mod commands;
mod decode;
mod emperor_args;
mod ini;
mod settings;

use crate::config;
use clap::{CommandFactory, Parser};
use std::ffi::OsString;

pub use commands::{
    Cli, CloneServerArgs, CloneServerCommand, Command, ConfigReaderCommand, ReloadCommand,
    TopCommand, UpgradeCommand, VassalCommand,
};
use decode::key_value;
pub use decode::{decode_runtime_argv, decode_vassal_args};
pub use emperor_args::EmperorArgs;

/// `emperor --version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("EMPEROR_GIT_REVISION"),
    ")"
);

/// The `emperor` command as clap sees it (for completions and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{origin}: option \"{key}\": not an emperor option")]
    UnknownOption { origin: String, key: String },
    #[error("{what} {value:?}: expected KEY=VALUE")]
    NotKeyValue { what: &'static str, value: String },
    #[error("{option} {value:?}: {reason}")]
    BadValue {
        option: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Parse(String),
}

/// Parse the process's arguments, expanding `--ini FILE` into the options it holds (placed
/// before the command line's own, so the command line wins).
pub fn parse() -> Result<Cli, CliError> {
    let args: Vec<OsString> = std::env::args_os().collect();
    Ok(Cli::parse_from(ini::expand_ini(args)?))
}
