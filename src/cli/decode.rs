//! The subcommands' arguments decoded into the project's types: a runtime's command line
//! (`vassal`, `check`), `top`'s and the helpers' own.

use clap::Parser;
use jail::caps::CapSet;
use jail::ns::Namespaces;
use std::time::Duration;

use super::{Cli, CliError, CloneServerCommand, Command, TopCommand, VassalCommand};
use crate::config::LoadOptions;
use crate::helper_identity::EmperorIdentity;
use crate::policy::{Ceilings, JailContext};

impl TopCommand {
    pub fn into_top_args(self) -> Result<crate::top::TopArgs, String> {
        let interval = Duration::try_from_secs_f64(self.interval)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "--interval: {} is not a positive number of seconds",
                    self.interval
                )
            })?;
        Ok(crate::top::TopArgs {
            addr: self.addr,
            interval,
            tenant: self.tenant,
            sort: self.sort,
        })
    }
}

impl CloneServerCommand {
    pub fn identity(&self) -> Option<EmperorIdentity> {
        Some(EmperorIdentity {
            uid: self.uid?,
            gid: self.gid?,
            keep: CapSet(self.keep_caps?),
        })
    }
}

impl VassalCommand {
    pub fn jail_context(&self) -> Result<JailContext, CliError> {
        let namespaces = |option: &'static str, value: &str| {
            value.parse::<Namespaces>().map_err(|e| CliError::BadValue {
                option,
                value: value.to_string(),
                reason: e.to_string(),
            })
        };
        Ok(JailContext {
            emperor_namespaces: namespaces("--jail-namespaces", &self.jail_namespaces)?,
            cloned: namespaces("--jail-cloned", &self.jail_cloned)?,
            tyrant: self.tyrant,
            cgroup_fd: self.cgroup_fd,
            held_fd: self.held_fd,
            tyrant_ports: self
                .tyrant_ports
                .parse()
                .map_err(|reason| CliError::BadValue {
                    option: "--tyrant-ports",
                    value: self.tyrant_ports.clone(),
                    reason,
                })?,
            ceilings: Ceilings {
                address_space: self.ceiling_as,
                processes: self.ceiling_nproc,
                open_files: self.ceiling_nofile,
            },
        })
    }

    /// What `emperor vassal` (or `emperor-vassal vassal`) runs.
    pub fn into_vassal_args(self) -> Result<crate::runtime_args::VassalArgs, CliError> {
        let load = self.load_options()?;
        let jail = self.jail_context()?;
        Ok(crate::runtime_args::VassalArgs {
            config: self.config,
            config_fd: self.config_fd,
            load,
            jail,
            fallback_tried: self.fallback_tried,
            fall_back: self.fall_back,
            uwsgi_binary: self.binary_path,
            name: self.name,
            tenant: self.tenant,
            hibernate_after: self.hibernate_after.map(Duration::from_millis),
            resume_fd: self.resume_fd,
            keeper_fd: self.keeper_fd,
        })
    }

    pub fn load_options(&self) -> Result<LoadOptions, CliError> {
        let sets = self
            .sets
            .iter()
            .map(|s| key_value("--set", s))
            .collect::<Result<_, _>>()?;
        Ok(LoadOptions {
            sets,
            includes: self.includes.clone(),
            environment: None,
        })
    }
}

/// Decode a runtime's command line as [`crate::runtime_args::VassalArgs::to_argv`] made it
/// (without the program name).
pub fn decode_vassal_args(argv: &[String]) -> Result<crate::runtime_args::VassalArgs, CliError> {
    let program = std::iter::once("emperor".to_string());
    let cli = Cli::try_parse_from(program.chain(argv.iter().cloned()))
        .map_err(|e| CliError::Parse(e.to_string()))?;
    match cli.command {
        Some(Command::Vassal(command)) => command.into_vassal_args(),
        _ => Err(CliError::Parse("not a vassal command line".to_string())),
    }
}

/// A runtime's whole command line (`PROGRAM vassal ...`), parsed by a parser that knows only
/// `vassal`: a runtime the clone server runs in a copy of itself builds no more than that.
pub fn decode_runtime_argv(argv: &[String]) -> Result<crate::runtime_args::VassalArgs, CliError> {
    #[derive(clap::Parser)]
    struct RuntimeOnly {
        #[command(subcommand)]
        command: RuntimeCommand,
    }
    #[derive(clap::Subcommand)]
    // Parsed once per runtime: the size of the one variant does not matter.
    #[allow(clippy::large_enum_variant)]
    enum RuntimeCommand {
        Vassal(VassalCommand),
    }
    let parsed = <RuntimeOnly as clap::Parser>::try_parse_from(argv)
        .map_err(|e| CliError::Parse(e.to_string()))?;
    let RuntimeCommand::Vassal(command) = parsed.command;
    command.into_vassal_args()
}

/// `KEY=VALUE` (a `--set` or `--vassal-set`) as its two halves, or the error naming `what`.
pub(super) fn key_value(what: &'static str, value: &str) -> Result<(String, String), CliError> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| CliError::NotKeyValue {
            what,
            value: value.to_string(),
        })
}
