//! Why a vassal runtime stops before its payload runs (or cannot start the next one): one
//! variant per kind of failure, each naming the file, the option, the syscall and the path as
//! the layer below said them. The exit status and whether `fallback-config` is tried follow
//! from the variant, never from the message.

use super::emperor_link::LinkError;
use super::fifo::{FifoError, MAX_SLOTS};
use super::hooks::HookError;
use super::output::OutputError;
use super::supervise::StartError;
use crate::config::ConfigError;
use crate::policy::payload::PayloadError;
use crate::policy::uwsgi::UwsgiError;
use crate::policy::PolicyError;
use crate::protocol::EXIT_CONFIG_ERROR;
use crate::sockets::BindError;
use jail::launch::LaunchError;
use jail::plan::StepError;
use jail::SysError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    // The runtime's own start, before it reads the config: the emperor's doing, not the
    // config's.
    /// `UWSGI_EMPEROR_FD` names no usable socket.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A call the runtime makes for itself: becoming the subreaper, its signalfd.
    #[error(transparent)]
    Init(SysError),
    /// A runtime woken from hibernation cannot take its state up (`--resume-fd`).
    #[error(transparent)]
    Wake(#[from] super::hibernate::WakeError),
    /// A file descriptor the emperor handed down on the command line.
    #[error("{flag}: {source}")]
    InheritedFd {
        flag: &'static str,
        source: SysError,
    },

    // The config, judged before anything is done: another config may do better.
    /// The config does not load or parse, or an option the runtime reads has a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The sealed memfd holding a monitor's config cannot be read.
    #[error("{}: the config from the emperor: {source}", file.display())]
    ConfigFromEmperor { file: PathBuf, source: SysError },
    /// The config from the emperor is not text.
    #[error("{}: not UTF-8 text", file.display())]
    NotText { file: PathBuf },
    /// The policy refuses an option (a tyrant's limits, a bad value for the jail).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The payload the config names cannot be run (no binary patch program, no uWSGI).
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A socket of the config cannot be bound (still in the host's network namespace).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// `--fall-back N`: this config's payload already failed to start in a jail of its own.
    #[error("{}: its payload failed to start in the runtime before this one", file.display())]
    FailedBefore { file: PathBuf },

    // The jail and the payload: these change the runtime, which cannot take them back.
    /// A jail step the runtime runs itself (namespace, hostname, mount, pivot_root).
    #[error("{}: option \"{option}\": {source}", file.display())]
    Jail {
        file: PathBuf,
        option: &'static str,
        source: Box<StepError>,
    },
    /// An `exec-as-root` or `exec-as-user` hook could not run or failed.
    #[error("{}: {source}", file.display())]
    Hook { file: PathBuf, source: HookError },
    /// The config uWSGI would get cannot be handed over its channel.
    #[error(transparent)]
    UwsgiConfig(UwsgiError),
    /// More `master-fifo` slots than the FIFO's one-digit commands can switch between.
    #[error("{}: master-fifo: at most {MAX_SLOTS} slots (0-9), {given} given", file.display())]
    FifoSlots { file: PathBuf, given: usize },
    /// The master FIFO cannot be made in the jail.
    #[error("{}: {source}", file.display())]
    Fifo { file: PathBuf, source: FifoError },
    /// The payload's output: its pipe, or its `logto` file.
    #[error("{}: {source}", file.display())]
    Output { file: PathBuf, source: OutputError },
    /// The payload could not be started (exec, its cgroup, its user namespace, its channels).
    #[error("{}: option \"{option}\": {source}", file.display())]
    Start {
        file: PathBuf,
        option: String,
        source: StartError,
    },
    /// Any of the above once the jail is being set up: the jail cannot be built again in this
    /// runtime, so no fallback runs here (a payload failing to start asks the emperor instead).
    #[error(transparent)]
    AfterJail(Box<RuntimeError>),

    // The fallback itself.
    /// A fallback names a config already tried.
    #[error("fallback loop: {}", chain_text(chain))]
    FallbackLoop { chain: Vec<PathBuf> },
    /// A descriptor the fallback must keep cannot be kept across the exec.
    #[error("fallback config {}: {source}", file.display())]
    FallbackFd { file: PathBuf, source: SysError },
    /// The runtime cannot exec itself on the fallback.
    #[error("fallback config {}: {source}", file.display())]
    FallbackExec { file: PathBuf, source: LaunchError },
}

fn chain_text(chain: &[PathBuf]) -> String {
    let shown: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
    shown.join(" -> ")
}

impl RuntimeError {
    /// The runtime's exit status. Every failure is uWSGI's status 1: the emperor reads it as a
    /// vassal that could not run (throttled, blacklisted), as uWSGI's emperor does.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::AfterJail(inner) => inner.exit_code(),
            _ => EXIT_CONFIG_ERROR,
        }
    }

    /// Whether the config's `fallback-config` is tried: only for a failure of the config itself
    /// (it does not load, the policy refuses it, its socket or its program is unusable), found
    /// before the jail is touched, as uWSGI does on status 1 before its jail. Not for the
    /// emperor's doing, a hook, or anything once the jail is set up.
    pub fn may_fall_back(&self) -> bool {
        matches!(
            self,
            RuntimeError::Config(_)
                | RuntimeError::ConfigFromEmperor { .. }
                | RuntimeError::NotText { .. }
                | RuntimeError::Policy(_)
                | RuntimeError::Payload(_)
                | RuntimeError::Bind(_)
                | RuntimeError::FailedBefore { .. }
        )
    }

    /// Mark a failure as one that happened once the jail was being set up.
    pub fn after_jail(self) -> RuntimeError {
        match self {
            already @ RuntimeError::AfterJail(_) => already,
            other => RuntimeError::AfterJail(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    fn config_error() -> RuntimeError {
        RuntimeError::Config(ConfigError::UnknownFormat {
            path: "app.conf".into(),
        })
    }

    fn bind_error() -> RuntimeError {
        RuntimeError::Bind(BindError {
            place: "app.ini:3".into(),
            option: "http-socket".into(),
            value: "127.0.0.1:80".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        })
    }

    #[test]
    fn a_config_error_before_the_jail_may_fall_back_and_after_it_may_not() {
        for error in [config_error(), bind_error()] {
            assert!(error.may_fall_back(), "{error}");
            let text = error.to_string();
            let after = error.after_jail();
            assert!(!after.may_fall_back(), "{after}");
            assert_eq!(after.to_string(), text, "the message is kept");
            assert!(!after.after_jail().may_fall_back());
        }
    }

    #[test]
    fn the_emperors_doing_and_the_jails_failures_do_not_fall_back() {
        let refused = [
            RuntimeError::InheritedFd {
                flag: "--cgroup-fd",
                source: SysError::new("fcntl(F_SETFD) on inherited fd", Errno::EBADF),
            },
            RuntimeError::Init(SysError::new("prctl(PR_SET_CHILD_SUBREAPER)", Errno::EPERM)),
            RuntimeError::FifoSlots {
                file: "app.ini".into(),
                given: 11,
            },
            RuntimeError::FallbackLoop {
                chain: vec!["a.ini".into(), "b.ini".into(), "a.ini".into()],
            },
        ];
        for error in refused {
            assert!(!error.may_fall_back(), "{error}");
        }
    }

    #[test]
    fn every_failure_exits_with_uwsgis_status_1() {
        for error in [config_error(), bind_error(), config_error().after_jail()] {
            assert_eq!(error.exit_code(), EXIT_CONFIG_ERROR, "{error}");
        }
    }

    #[test]
    fn messages_name_the_file_the_option_and_the_syscall() {
        assert_eq!(
            bind_error().to_string(),
            format!(
                "app.ini:3: option \"http-socket\": bind 127.0.0.1:80: {}",
                std::io::Error::from_raw_os_error(libc::EACCES)
            )
        );
        let loop_ = RuntimeError::FallbackLoop {
            chain: vec!["a.ini".into(), "b.ini".into(), "a.ini".into()],
        };
        assert_eq!(loop_.to_string(), "fallback loop: a.ini -> b.ini -> a.ini");
        let slots = RuntimeError::FifoSlots {
            file: "app.ini".into(),
            given: 11,
        };
        assert_eq!(
            slots.to_string(),
            "app.ini: master-fifo: at most 10 slots (0-9), 11 given"
        );
        let fd = RuntimeError::InheritedFd {
            flag: "--held-fd",
            source: SysError::new("fcntl(F_SETFD) on inherited fd", Errno::EBADF),
        };
        assert!(
            fd.to_string().starts_with("--held-fd: fcntl(F_SETFD)"),
            "{fd}"
        );
    }
}
