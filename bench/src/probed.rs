//! A bare command that runs `sleep 100000` inside (`unshare ... sleep`, `bwrap ... sleep`),
//! started by the benchmark itself: seen exec'd through /proc, then stopped by pid (its
//! `sleep` included) and reaped, on every path (nothing on this machine reaps orphans).

use crate::measure::PROC_POLL;
use crate::procfs::{self, Pid};
use crate::samples::poll_until;
use crate::session::BenchResult;
use crate::target::PAYLOAD_COMM;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid as NixPid;
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What replaces `true` in the like-for-like commands: a payload that stays, so that its
/// exec can be seen in /proc as the emperor's is.
pub const PROBED_PAYLOAD: [&str; 2] = ["sleep", "100000"];

/// How long a probed command may take to go once its `sleep` is killed.
const EXIT_PATIENCE: Duration = Duration::from_secs(5);

/// `argv` with no stdin and its output thrown away.
pub fn command(argv: &[&str]) -> Command {
    let mut command = Command::new(argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// How the report names a tool that is not there.
pub fn not_installed(tool: &str) -> String {
    format!("{tool}: not installed")
}

/// A started probed command.
pub struct Probed {
    child: Option<Child>,
    command: String,
    /// Every descendant seen, for the cleanup.
    seen: BTreeSet<Pid>,
    /// Its `sleep` was sent SIGKILL already: never again by pid, which may be reused once
    /// the `sleep` is collected.
    payloads_killed: bool,
}

impl Probed {
    /// Fork+exec `argv`; a missing program is named as such.
    pub fn spawn(argv: &[&str]) -> Result<Probed, String> {
        let child = command(argv).spawn().map_err(|e| match e.kind() {
            ErrorKind::NotFound => not_installed(argv[0]),
            _ => format!("{}: {e}", argv[0]),
        })?;
        Ok(Probed {
            child: Some(child),
            command: argv.join(" "),
            seen: BTreeSet::new(),
            payloads_killed: false,
        })
    }

    fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| c.id() as Pid)
    }

    /// The probe: the same /proc reads as the emperor's (children, then their comm), one
    /// level deeper for bwrap. An error if the command ended before its `sleep` ran.
    pub fn payload_seen(&mut self) -> BenchResult<Option<()>> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{}: already stopped", self.command));
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            return Err(format!(
                "{} ended ({status}) before `sleep` ran",
                self.command
            ));
        }
        let root = child.id() as Pid;
        Ok(procfs::descendant_named(root, PAYLOAD_COMM).map(|payload| {
            self.seen.insert(payload);
        }))
    }

    /// The command and every process seen under it.
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.pid().into_iter().chain(self.seen.iter().copied())
    }

    /// SIGKILL its `sleep`, so that each process above it (unshare; bwrap's init, then
    /// bwrap) collects its child and exits. Once only: a mass stop kills every `sleep`
    /// first, then reaps.
    pub fn kill_payloads(&mut self) {
        let Some(pid) = self.pid() else {
            return;
        };
        if self.payloads_killed {
            return;
        }
        self.seen.extend(procfs::descendants(pid));
        for &payload in &self.seen {
            if procfs::comm(payload).as_deref() == Some(PAYLOAD_COMM) {
                sigkill(payload);
            }
        }
        self.payloads_killed = true;
    }

    /// Kill the `sleep` (unless done already) and reap the command; SIGKILL anything left.
    /// An error if any process of it is still there after.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(pid) = self.pid() else {
            return self.check_gone();
        };
        self.kill_payloads();
        if !self.reaped_within(EXIT_PATIENCE) {
            self.seen.extend(procfs::descendants(pid));
            for &p in self.seen.iter().chain([&pid]) {
                sigkill(p);
            }
            if !self.reaped_within(EXIT_PATIENCE) {
                return Err(format!("{} (pid {pid}) survived SIGKILL", self.command));
            }
        }
        self.check_gone()
    }

    /// Poll for the command's exit (1 ms steps); true once it is reaped.
    fn reaped_within(&mut self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while let Some(child) = self.child.as_mut() {
            if !matches!(child.try_wait(), Ok(None)) {
                self.child = None;
            } else if Instant::now() >= deadline {
                return false;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        true
    }

    /// Every descendant seen is gone from /proc (each was reaped by its own parent).
    fn check_gone(&self) -> Result<(), String> {
        let what = format!("every process of {} gone", self.command);
        poll_until(&what, PROC_POLL, EXIT_PATIENCE, || {
            Ok(self.seen.iter().all(|&p| !procfs::exists(p)).then_some(()))
        })
        .map(|_| ())
        .map_err(|e| format!("{e}: left {:?}", self.left()))
    }

    fn left(&self) -> Vec<Pid> {
        self.seen
            .iter()
            .copied()
            .filter(|&p| procfs::exists(p))
            .collect()
    }
}

impl Drop for Probed {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

fn sigkill(pid: Pid) {
    let _ = kill(NixPid::from_raw(pid), Signal::SIGKILL);
}
