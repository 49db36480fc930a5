//! The vassal runtime: `emperor vassal CONFIG`. The first process of a vassal: it reads the
//! config, starts the payload and stays as its supervisor (reaps, forwards signals, turns the
//! emperor's stop and reload bytes into signals for the payload, takes the payload's whole
//! process tree with it when it goes).

mod channel;
mod emperor_link;
mod error;
mod fallback;
mod fifo;
mod hibernate;
mod hooks;
mod line_budget;
mod output;
mod ready;
mod serve;
mod start;
mod supervise;

use emperor_link::EmperorLink;
use jail::signals::{Sig, SignalEvents};
use serve::{ConfigSource, Serve};
use std::os::fd::{AsFd, OwnedFd};
use supervise::Supervisor;
use tracing::{error, warn};

pub use crate::runtime_args::VassalArgs;
pub use error::RuntimeError;

/// argv[0] of a runtime the clone server runs in a copy of itself, whose own argv now holds
/// its title (see [`crate::clone_server`]).
static PROGRAM: std::sync::OnceLock<std::ffi::OsString> = std::sync::OnceLock::new();

/// Set this runtime's argv[0] (before [`run`]), for a process whose argv is not its own.
pub fn set_program(program: std::ffi::OsString) {
    let _ = PROGRAM.set(program);
}

/// This runtime's argv[0]: what it names itself when it executes itself again (a fallback
/// config, a wake from hibernation).
fn program() -> std::ffi::OsString {
    PROGRAM
        .get()
        .cloned()
        .or_else(|| std::env::args_os().next())
        .unwrap_or_else(|| crate::protocol::RUNTIME_BINARY.into())
}

/// Run the vassal until it is stopped; returns the process exit status.
pub fn run(args: VassalArgs) -> i32 {
    if args.resume_fd.is_some() {
        // Woken from hibernation: the execve made this process dumpable again.
        if let Err(e) = jail::keeper::not_dumpable() {
            error!("{e}");
            return crate::protocol::EXIT_CONFIG_ERROR;
        }
    }
    let name = args.config.display().to_string();
    let vassal = args.name.clone().unwrap_or_else(|| {
        args.config
            .file_name()
            .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned())
    });
    crate::logging::journal::set_process_vassal(vassal, args.tenant.clone());
    let span = tracing::info_span!("vassal", config = %name);
    let _enter = span.enter();
    match run_inner(&args) {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            e.exit_code()
        }
    }
}

/// An fd the emperor handed down on the command line (`flag`), taken over by this process.
fn inherited(fd: Option<i32>, flag: &'static str) -> Result<Option<OwnedFd>, RuntimeError> {
    fd.map(jail::fd::adopt_inherited)
        .transpose()
        .map_err(|source| RuntimeError::InheritedFd { flag, source })
}

fn run_inner(args: &VassalArgs) -> Result<i32, RuntimeError> {
    let mut link = EmperorLink::from_env()?;
    jail::process::become_subreaper().map_err(RuntimeError::Init)?;
    let signals = SignalEvents::new(&[
        Sig::SIGTERM,
        Sig::SIGINT,
        Sig::SIGQUIT,
        Sig::SIGHUP,
        Sig::SIGCHLD,
        Sig::SIGUSR1,
        Sig::SIGUSR2,
        Sig::SIGWINCH,
    ])
    .map_err(RuntimeError::Init)?;
    let cgroup = inherited(args.jail.cgroup_fd, "--cgroup-fd")?;
    let held = inherited(args.jail.held_fd, "--held-fd")?;
    let held_fd = held.as_ref().map(AsFd::as_fd);
    let source = ConfigSource {
        memfd: inherited(args.config_fd, "--config-fd")?,
    };
    if let Some(fd) = args.resume_fd {
        // Woken by the keeper: the payload runs, the jail is set up; no fallback from here.
        let (asleep, hibernator) = hibernate::wake(fd, args)?;
        let mut supervisor = Supervisor::woken(signals, cgroup, &asleep.supervisor, hibernator)
            .map_err(|source| RuntimeError::InheritedFd {
                flag: "--resume-fd",
                source,
            })?;
        let mut serve = Serve::new(args, held_fd, source, &mut link, &mut supervisor);
        return serve.run_woken(asleep.serve);
    }
    let keeper = inherited(args.keeper_fd, "--keeper-fd")?;
    let mut supervisor = Supervisor::new(signals, cgroup);
    // Opened before the jail, where /proc/self/exe still names this binary.
    supervisor.hibernator = hibernate::Hibernator::new(args, keeper);
    let mut serve = Serve::new(args, held_fd, source, &mut link, &mut supervisor);
    let error = match serve.run() {
        Ok(code) => return Ok(code),
        Err(error) => error,
    };
    // uWSGI's fallback-config, for a failure the config itself caused before the jail.
    let fallback = serve.fallback.take();
    let Some(file) = fallback.clone().filter(|_| error.may_fall_back()) else {
        if fallback.is_some() {
            warn!("fallback-config ignored: the jail is already set up");
        }
        return Err(error);
    };
    error!("{error}");
    let mut keep = Vec::new();
    keep.extend(link.as_fd());
    keep.extend(supervisor.cgroup_fd());
    keep.extend(held_fd);
    Err(fallback::fall_back(args, &file, &keep))
}
