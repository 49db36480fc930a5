//! Upgrading the emperor in place (SIGUSR2, `emperor upgrade`): the running emperor executes
//! the binary now installed at the path it was started as, in its own pid, and hands it
//! everything it holds (snapshot.rs). The vassals' runtimes notice nothing: their links and
//! held sockets stay open across the execve, and they keep their parent.
//!
//! The new binary is first run as a probe on the snapshot (a child that reads it and says it
//! can take over): a binary that does not execute, does not understand the snapshot or exits
//! at start is refused there, and this emperor goes on. Once executed, a new binary that
//! fails to take over (restore.rs) executes the old one again, which takes the same snapshot
//! back. Either way no vassal is stopped.

mod capture;
mod restore;
pub mod snapshot;

use super::Emperor;
use snapshot::Snapshot;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tracing::{error, info, warn};

/// The environment variable naming the snapshot's fd for a takeover.
pub const TAKEOVER_VARIABLE: &str = "EMPEROR_TAKEOVER_FD";
/// Set when the old binary takes its snapshot back: why the upgrade failed.
const ROLLBACK_VARIABLE: &str = "EMPEROR_ROLLBACK";
/// The environment variable naming the snapshot's fd for a probe.
const PROBE_VARIABLE: &str = "EMPEROR_UPGRADE_PROBE_FD";
/// What a probe prints when it can take over.
const PROBE_READY: &str = "ready to take over";
/// How long a probe may take.
const PROBE_PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("the emperor is stopping")]
    Stopping,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Sys(#[from] jail::SysError),
    #[error("the new binary {binary}: {reason}")]
    Probe { binary: PathBuf, reason: String },
    #[error("the snapshot: {0}")]
    Snapshot(String),
}

/// The emperor's own life across upgrades, shown in its stats.
#[derive(Debug, Clone)]
pub struct Life {
    /// When the first emperor of this pid started.
    pub started: SystemTime,
    pub upgrades: u32,
    pub upgraded: Option<SystemTime>,
    /// The path it was started as: where an upgrade finds the new binary.
    pub binary_path: PathBuf,
    /// Its command line, given to the new binary as it is.
    pub argv: Vec<OsString>,
    /// The last upgrade that failed, and why.
    pub last_failure: Option<(SystemTime, String)>,
}

impl Life {
    /// The life of an emperor started now.
    pub fn begin() -> Self {
        Life {
            started: SystemTime::now(),
            upgrades: 0,
            upgraded: None,
            binary_path: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("emperor")),
            argv: std::env::args_os().collect(),
            last_failure: None,
        }
    }
}

impl Emperor {
    /// SIGUSR2 or `emperor upgrade`: execute the binary installed at our path in our place.
    /// Returns only when the upgrade did not happen (the reason is logged and kept for
    /// `emperor upgrade` to report).
    pub(super) fn upgrade(&mut self) {
        info!(binary = %self.life.binary_path.display(), "upgrading the emperor in place");
        self.notify.reloading();
        let Err(e) = self.try_upgrade();
        error!("upgrade failed: {e}; this emperor goes on, every vassal untouched");
        self.life.last_failure = Some((SystemTime::now(), e.to_string()));
    }

    fn try_upgrade(&mut self) -> Result<std::convert::Infallible, UpgradeError> {
        if self.ragnarok.is_some() {
            return Err(UpgradeError::Stopping);
        }
        let new_binary = self.life.binary_path.clone();
        // The binary running now, even if replaced on disk: what a failed takeover executes.
        let old_binary: OwnedFd = std::fs::File::open("/proc/self/exe")
            .map_err(|source| UpgradeError::Io {
                what: "open /proc/self/exe".into(),
                source,
            })?
            .into();
        let snapshot = self.snapshot(old_binary.as_raw_fd());
        let bytes =
            serde_json::to_vec(&snapshot).map_err(|e| UpgradeError::Snapshot(e.to_string()))?;
        let sealed = jail::memfd::sealed("emperor-upgrade", &bytes)?;
        probe(&new_binary, &self.life.argv, sealed.as_fd())?;
        let mut kept = snapshot.fds();
        kept.push(sealed.as_raw_fd());
        keep_open(&kept)?;
        if let Some(identity) = self.settings.identity {
            jail::reexec::carry_caps(identity.keep)?;
        }
        let env = takeover_env(&snapshot, sealed.as_raw_fd(), None);
        let failed = jail::reexec::execute(&new_binary, &self.life.argv, &env);
        // Still the old binary: nothing was handed over.
        close_on_exec(&kept);
        if let Some(identity) = self.settings.identity {
            jail::reexec::settle_caps(identity.uid, identity.gid, identity.keep)?;
        }
        Err(failed.into())
    }
}

/// The environment of the binary that takes over: ours, systemd's variables back, the
/// snapshot's fd, and why a rollback happens when it is one.
fn takeover_env(snapshot: &Snapshot, sealed: RawFd, rollback: Option<&str>) -> Vec<OsString> {
    let ours = [TAKEOVER_VARIABLE, PROBE_VARIABLE, ROLLBACK_VARIABLE];
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(key, _)| !ours.iter().any(|o| key == o))
        .map(jail::reexec::env_entry)
        .collect();
    env.extend(
        snapshot
            .notify
            .iter()
            .map(|(k, v)| format!("{k}={v}").into()),
    );
    env.push(format!("{TAKEOVER_VARIABLE}={sealed}").into());
    if let Some(reason) = rollback {
        env.push(format!("{ROLLBACK_VARIABLE}={reason}").into());
    }
    env
}

fn keep_open(fds: &[RawFd]) -> Result<(), UpgradeError> {
    for &fd in fds {
        jail::reexec::keep_raw(fd)?;
    }
    Ok(())
}

fn close_on_exec(fds: &[RawFd]) {
    for &fd in fds {
        let _ = jail::reexec::close_raw_on_exec(fd);
    }
}

/// Run the new binary on the snapshot as a child, with our command line: it must read the
/// snapshot and say it can take over.
fn probe(binary: &PathBuf, argv: &[OsString], sealed: BorrowedFd<'_>) -> Result<(), UpgradeError> {
    let fail = |reason: String| UpgradeError::Probe {
        binary: binary.clone(),
        reason,
    };
    jail::reexec::keep_raw(sealed.as_raw_fd())?;
    let child = std::process::Command::new(binary)
        .args(argv.iter().skip(1))
        .env(PROBE_VARIABLE, sealed.as_raw_fd().to_string())
        .env_remove(TAKEOVER_VARIABLE)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let _ = jail::reexec::close_raw_on_exec(sealed.as_raw_fd());
    let mut child = child.map_err(|e| fail(format!("cannot execute it: {e}")))?;
    let deadline = Instant::now() + PROBE_PATIENCE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("no answer within {PROBE_PATIENCE:?}")));
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    if status.success() && out.trim_end() == PROBE_READY {
        return Ok(());
    }
    let said = err.lines().last().unwrap_or("").trim();
    Err(fail(format!(
        "it cannot take over ({status}){}",
        match said {
            "" => String::new(),
            said => format!(": {said}"),
        }
    )))
}

/// This process was started to probe a snapshot (see [`answer_probe`]).
pub fn is_probe() -> bool {
    std::env::var_os(PROBE_VARIABLE).is_some()
}

/// Run as a probe (the command line was parsed as the emperor's): read the snapshot named
/// by the probe variable and say whether this binary can take over from it.
pub fn answer_probe() -> std::process::ExitCode {
    let fd = std::env::var(PROBE_VARIABLE).unwrap_or_default();
    let answer = fd
        .parse::<RawFd>()
        .map_err(|_| format!("{PROBE_VARIABLE}={fd}: not an fd"))
        .and_then(|fd| read_snapshot(fd).map(drop));
    match answer {
        Ok(()) => {
            println!("{PROBE_READY}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The snapshot in the sealed memfd `fd` (inherited), checked to be one this binary knows.
fn read_snapshot(fd: RawFd) -> Result<(Snapshot, OwnedFd), String> {
    let sealed = jail::fd::adopt_inherited(fd).map_err(|e| e.to_string())?;
    let bytes = jail::memfd::read_sealed(sealed.as_fd()).map_err(|e| e.to_string())?;
    let snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|e| format!("the snapshot does not read: {e}"))?;
    if snapshot.format != snapshot::FORMAT {
        return Err(format!(
            "snapshot format {} (this binary knows {})",
            snapshot.format,
            snapshot::FORMAT
        ));
    }
    if snapshot.protocol != crate::protocol::PROTOCOL_VERSION {
        return Err(format!(
            "the running vassals speak protocol {}, this binary {}: restart the emperor to \
             change protocols",
            snapshot.protocol,
            crate::protocol::PROTOCOL_VERSION
        ));
    }
    Ok((snapshot, sealed))
}

/// When this process was executed to take over (an upgrade, or the rollback of one): the
/// emperor made from the snapshot. A takeover that fails executes the old binary again with
/// the same snapshot; only if that fails too does this return an error.
pub fn take_over_if_asked(
    settings: &super::Settings,
) -> Option<Result<Emperor, super::EmperorError>> {
    let fd = std::env::var(TAKEOVER_VARIABLE).ok()?;
    std::env::remove_var(TAKEOVER_VARIABLE);
    let rollback = std::env::var(ROLLBACK_VARIABLE).ok();
    std::env::remove_var(ROLLBACK_VARIABLE);
    let Ok(fd) = fd.parse::<RawFd>() else {
        return Some(Err(super::EmperorError::Takeover(format!(
            "{TAKEOVER_VARIABLE}={fd}: not an fd"
        ))));
    };
    let (snapshot, sealed) = match read_snapshot(fd) {
        Ok(read) => read,
        // Nothing to go back to: the snapshot itself is what a rollback would need.
        Err(e) => return Some(Err(super::EmperorError::Takeover(e))),
    };
    let fds = snapshot.fds();
    match Emperor::take_over(settings.clone(), &snapshot, rollback.clone()) {
        Ok(emperor) => Some(Ok(emperor)),
        Err(e) if rollback.is_none() => {
            error!("taking over failed: {e}; executing the previous binary again");
            let identity = settings.identity;
            Some(Err(roll_back(
                &snapshot,
                &fds,
                sealed,
                &e.to_string(),
                identity,
            )))
        }
        Err(e) => Some(Err(e)),
    }
}

/// Execute the binary that wrote `snapshot` again, with the snapshot, telling it why.
fn roll_back(
    snapshot: &Snapshot,
    fds: &[RawFd],
    sealed: OwnedFd,
    reason: &str,
    identity: Option<crate::helper_identity::EmperorIdentity>,
) -> super::EmperorError {
    let mut kept = fds.to_vec();
    kept.push(sealed.as_raw_fd());
    if let Err(e) = keep_open(&kept) {
        return super::EmperorError::Takeover(format!("rolling back: {e}"));
    }
    let env = takeover_env(snapshot, sealed.as_raw_fd(), Some(reason));
    // The command line the emperor was started with, not this binary's (a wrapper may have
    // changed it).
    let argv = snapshot.argv();
    if let Some(identity) = identity {
        // Carried again: a takeover that got far enough took them out of the ambient set.
        if let Err(e) = jail::reexec::carry_caps(identity.keep) {
            return super::EmperorError::Takeover(format!("rolling back: {e}"));
        }
    }
    let failed = jail::reexec::execute_fd(snapshot.old_binary, &argv, &env);
    warn!("rolling back failed: {failed}");
    super::EmperorError::Takeover(format!("rolling back: {failed}"))
}
