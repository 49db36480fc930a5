//! `--ini FILE`: the emperor's options read from a config file, turned into command-line
//! arguments placed before the command line's own.

use std::ffi::OsString;

use clap::CommandFactory;

use super::{Cli, CliError};
use crate::config::{self, LoadOptions};

/// `args` with the options of `--ini FILE` inserted after the program name (none for a
/// subcommand, whose `--ini` is not the emperor's).
pub(super) fn expand_ini(args: Vec<OsString>) -> Result<Vec<OsString>, CliError> {
    let is_subcommand = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| ["vassal", "check", "stats", "reload", "help"].contains(&a));
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
