//! The runtime's command line as one type: what the emperor (or a user, or the runtime's own
//! fallback re-exec) asks a vassal runtime to run, encoded by [`VassalArgs::to_argv`] and
//! decoded by the CLI's `vassal` subcommand (`crate::cli::decode_vassal_args`); a round-trip
//! test keeps the two in step.

use crate::config::LoadOptions;
use crate::policy::JailContext;
use std::path::PathBuf;

/// What the emperor (or a user on the command line) asks the runtime to run.
#[derive(Debug, Clone, PartialEq)]
pub struct VassalArgs {
    pub config: PathBuf,
    /// A sealed memfd with the config's text (a config from a monitor); `config` is its name.
    pub config_fd: Option<i32>,
    pub load: LoadOptions,
    pub jail: JailContext,
    /// Configs that failed before this one, when this one is a fallback (oldest first).
    pub fallback_tried: Vec<PathBuf>,
    /// Fallback levels to go down at once (`--fall-back`): the payloads of the configs above
    /// failed to start in earlier runtimes, whose jails could not be set up again.
    pub fall_back: u32,
    /// The uWSGI binary a config without a binary patch runs (`--binary-path`; None: `uwsgi`
    /// on the payload's PATH).
    pub uwsgi_binary: Option<PathBuf>,
    /// The vassal's name as the emperor knows it (the config's file name when not given):
    /// the VASSAL field of its runtime's log records under journald.
    pub name: Option<String>,
    /// Its tenant as the emperor counts it: the TENANT field of those records.
    pub tenant: Option<String>,
    /// Hibernate after this long with nothing to do (`--hibernate-after`, milliseconds; None:
    /// never): see src/vassal/hibernate.rs.
    pub hibernate_after: Option<std::time::Duration>,
    /// The state a hibernated runtime left in a sealed memfd (`--resume-fd`): this process is
    /// that runtime, woken by its keeper.
    pub resume_fd: Option<i32>,
    /// `emperor-keeper`'s image in a sealed memfd the emperor shares with all its runtimes
    /// (`--keeper-fd`; without it a runtime seals its own).
    pub keeper_fd: Option<i32>,
}

impl VassalArgs {
    /// The runtime's arguments after its program name: `vassal FLAGS... CONFIG` (the config
    /// always last). `load.environment` is not on a command line: the runtime reads its own.
    pub fn to_argv(&self) -> Vec<String> {
        let mut argv = vec!["vassal".to_string()];
        let mut flag = |name: &str, value: Option<String>| {
            argv.push(name.to_string());
            argv.extend(value);
        };
        for (key, value) in &self.load.sets {
            flag("--set", Some(format!("{key}={value}")));
        }
        for include in &self.load.includes {
            flag("--include", Some(include.display().to_string()));
        }
        let jail = &self.jail;
        if !jail.emperor_namespaces.is_empty() {
            flag(
                "--jail-namespaces",
                Some(jail.emperor_namespaces.to_string()),
            );
        }
        if !jail.cloned.is_empty() {
            flag("--jail-cloned", Some(jail.cloned.to_string()));
        }
        if jail.tyrant {
            flag("--tyrant", None);
        }
        if !jail.tyrant_ports.0.is_empty() {
            flag("--tyrant-ports", Some(jail.tyrant_ports.to_string()));
        }
        for (name, value) in [
            ("--ceiling-as", jail.ceilings.address_space),
            ("--ceiling-nproc", jail.ceilings.processes),
            ("--ceiling-nofile", jail.ceilings.open_files),
        ] {
            if let Some(value) = value {
                flag(name, Some(value.to_string()));
            }
        }
        if let Some(uwsgi) = &self.uwsgi_binary {
            flag("--binary-path", Some(uwsgi.display().to_string()));
        }
        if self.fall_back > 0 {
            flag("--fall-back", Some(self.fall_back.to_string()));
        }
        if let Some(name) = &self.name {
            flag("--name", Some(name.clone()));
        }
        if let Some(tenant) = &self.tenant {
            flag("--tenant", Some(tenant.clone()));
        }
        if let Some(after) = self.hibernate_after {
            flag("--hibernate-after", Some(after.as_millis().to_string()));
        }
        for tried in &self.fallback_tried {
            flag("--fallback-tried", Some(tried.display().to_string()));
        }
        // The fds handed down (the config's memfd last), then the config (always last).
        for (name, fd) in [
            ("--cgroup-fd", jail.cgroup_fd),
            ("--held-fd", jail.held_fd),
            ("--keeper-fd", self.keeper_fd),
            ("--resume-fd", self.resume_fd),
            ("--config-fd", self.config_fd),
        ] {
            if let Some(fd) = fd {
                flag(name, Some(fd.to_string()));
            }
        }
        argv.push(self.config.display().to_string());
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Ceilings, PortList};
    use jail::ns::Namespaces;

    fn every_field_set() -> VassalArgs {
        VassalArgs {
            config: "/etc/vassals/app.ini".into(),
            config_fd: Some(6),
            load: LoadOptions {
                sets: vec![
                    ("greeting".into(), "a=b c".into()),
                    ("x".into(), String::new()),
                ],
                includes: vec!["/etc/emperor/common.ini".into()],
                environment: None,
            },
            jail: JailContext {
                emperor_namespaces: "fs,net,pid".parse().unwrap(),
                cloned: Namespaces::USER,
                tyrant: true,
                ceilings: Ceilings {
                    address_space: Some(1 << 30),
                    processes: Some(64),
                    open_files: Some(1024),
                },
                cgroup_fd: Some(4),
                tyrant_ports: PortList(vec![(8000, 8999), (9090, 9090)]),
                held_fd: Some(5),
            },
            fallback_tried: vec!["/etc/vassals/a.ini".into(), "/etc/vassals/b.ini".into()],
            fall_back: 2,
            uwsgi_binary: Some("/usr/bin/uwsgi".into()),
            name: Some("app.ini".into()),
            tenant: Some("uid 2001".into()),
            hibernate_after: Some(std::time::Duration::from_millis(500)),
            resume_fd: Some(9),
            keeper_fd: Some(7),
        }
    }

    #[test]
    fn every_field_survives_the_command_line() {
        let args = every_field_set();
        assert_eq!(
            crate::cli::decode_vassal_args(&args.to_argv()).unwrap(),
            args
        );
    }

    #[test]
    fn a_plain_vassal_is_just_its_config() {
        let args = VassalArgs {
            config: "app.ini".into(),
            config_fd: None,
            load: LoadOptions::default(),
            jail: JailContext::default(),
            fallback_tried: Vec::new(),
            fall_back: 0,
            uwsgi_binary: None,
            name: None,
            tenant: None,
            hibernate_after: None,
            resume_fd: None,
            keeper_fd: None,
        };
        assert_eq!(args.to_argv(), ["vassal", "app.ini"]);
        assert_eq!(
            crate::cli::decode_vassal_args(&args.to_argv()).unwrap(),
            args
        );
    }
}
