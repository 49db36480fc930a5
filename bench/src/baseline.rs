//! What the kernel itself charges for a jailed spawn, measured in the same run: the bare
//! `unshare` and `bwrap` commands, against the emperor's own spawn of a vassal in the same
//! namespaces (config appears -> payload exec'd). Each command is timed twice over: as the
//! issue names it, fork+exec until its `true` has exited (waitpid, exact); and like for like
//! with the emperor, with `sleep 100000` instead of `true`, fork+exec until the same /proc
//! probe, polled as often, sees that `sleep` exec'd inside.

use crate::interrupt;
use crate::measure::{new_config_samples, Options, PROC_POLL, WAIT_LIMIT};
use crate::procfs::{self, Pid};
use crate::samples::{poll_until, Samples};
use crate::session::BenchResult;
use crate::target::{Target, PAYLOAD_COMM};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid as NixPid;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a baseline's time ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The command (`true`) has exited: waitpid, exact.
    Exited,
    /// The /proc probe (every `PROC_POLL`) sees `sleep` exec'd under the command: the
    /// emperor's end event, seen the same way.
    PayloadExeced,
}

/// One baseline command, as the report shows it.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The program (`unshare`, `bwrap`).
    pub tool: String,
    pub command: String,
    pub until: Until,
    /// None: the tool is not installed (or failed; see `error`).
    pub samples: Option<Samples>,
    pub error: Option<String>,
}

/// The commands: util-linux's unshare (the bare namespaces) and bubblewrap (a whole sandbox).
pub const COMMANDS: [&[&str]; 2] = [
    &[
        "unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "true",
    ],
    &[
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "true",
    ],
];

/// What replaces `true` in the like-for-like variants: a payload that stays, so that its
/// exec can be seen in /proc as the emperor's is.
const PROBED_PAYLOAD: [&str; 2] = ["sleep", "100000"];

/// How long a probed command may take to go once its `sleep` is killed.
const EXIT_PATIENCE: Duration = Duration::from_secs(5);

/// Each baseline command `runs` times, one after the other: first as the issue times them
/// (until `true` exited), then like for like (until `sleep` exec'd).
pub fn measure_commands(runs: usize) -> BenchResult<Vec<Baseline>> {
    let mut out = Vec::new();
    for argv in COMMANDS {
        out.push(measure_command(argv, Until::Exited, runs)?);
    }
    for argv in COMMANDS {
        out.push(measure_command(
            &with_probed_payload(argv),
            Until::PayloadExeced,
            runs,
        )?);
    }
    Ok(out)
}

/// The same command with `sleep 100000` in place of its final `true`.
fn with_probed_payload<'a>(argv: &[&'a str]) -> Vec<&'a str> {
    let (_true, command) = argv.split_last().expect("a baseline command is not empty");
    command.iter().copied().chain(PROBED_PAYLOAD).collect()
}

fn measure_command(argv: &[&str], until: Until, runs: usize) -> BenchResult<Baseline> {
    let mut baseline = Baseline {
        tool: argv[0].to_string(),
        command: argv.join(" "),
        until,
        samples: None,
        error: None,
    };
    let timed = match until {
        Until::Exited => time_runs(argv, runs),
        Until::PayloadExeced => time_probed_runs(argv, runs),
    };
    match timed {
        Ok(samples) => baseline.samples = Some(samples),
        Err(e) => baseline.error = Some(e),
    }
    interrupt::check()?;
    Ok(baseline)
}

fn command(argv: &[&str]) -> Command {
    let mut command = Command::new(argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Wall time of fork+exec+wait for `argv`, `runs` times; an error if it does not succeed.
fn time_runs(argv: &[&str], runs: usize) -> Result<Samples, String> {
    let mut samples = Samples::default();
    for _ in 0..runs {
        interrupt::check()?;
        let started = Instant::now();
        let status = command(argv)
            .status()
            .map_err(|e| format!("{}: {e}", argv[0]))?;
        let elapsed = started.elapsed();
        if !status.success() {
            return Err(format!("{}: {status}", argv.join(" ")));
        }
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Wall time from fork+exec of `argv` until its `sleep` is seen exec'd, `runs` times; each
/// run is stopped and reaped before the next.
fn time_probed_runs(argv: &[&str], runs: usize) -> Result<Samples, String> {
    let mut samples = Samples::default();
    for _ in 0..runs {
        interrupt::check()?;
        samples.push(time_probed_spawn(argv)?);
    }
    Ok(samples)
}

fn time_probed_spawn(argv: &[&str]) -> Result<Duration, String> {
    let started = Instant::now();
    let child = command(argv)
        .spawn()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    let mut spawned = Probed::new(child, argv.join(" "));
    let what = format!("`sleep` exec'd under {}", argv[0]);
    let ((), at) = poll_until(&what, PROC_POLL, WAIT_LIMIT, || spawned.payload_seen())?;
    spawned.stop()?;
    Ok(at - started)
}

/// A probed baseline command: stopped by pid, its `sleep` included, and reaped, on every
/// path (nothing on this machine reaps orphans).
struct Probed {
    child: Option<Child>,
    command: String,
    /// Every descendant seen, for the cleanup.
    seen: BTreeSet<Pid>,
}

impl Probed {
    fn new(child: Child, command: String) -> Self {
        Probed {
            child: Some(child),
            command,
            seen: BTreeSet::new(),
        }
    }

    fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| c.id() as Pid)
    }

    /// The probe: the same /proc reads as the emperor's (children, then their comm), one
    /// level deeper for bwrap. An error if the command ended before its `sleep` ran.
    fn payload_seen(&mut self) -> BenchResult<Option<()>> {
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

    /// SIGKILL the `sleep` first, so that each process above it (unshare; bwrap's init, then
    /// bwrap) collects its child and exits, and reap the command; SIGKILL anything left. An
    /// error if any process of it is still there after.
    fn stop(&mut self) -> Result<(), String> {
        let Some(pid) = self.pid() else {
            return self.check_gone();
        };
        self.seen.extend(procfs::descendants(pid));
        for &payload in &self.seen {
            if procfs::comm(payload).as_deref() == Some(PAYLOAD_COMM) {
                sigkill(payload);
            }
        }
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

/// The emperor's spawn under `target`'s jail: new config -> payload exec'd, with one vassal
/// already running.
pub fn measure_spawn(target: &dyn Target, options: &Options) -> BenchResult<Samples> {
    new_config_samples(target, 1, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_variants_are_the_same_commands_with_sleep() {
        assert_eq!(
            with_probed_payload(COMMANDS[0]).join(" "),
            "unshare --fork --pid --mount --uts --ipc --net sleep 100000"
        );
        assert_eq!(
            with_probed_payload(COMMANDS[1]).join(" "),
            "bwrap --unshare-all --die-with-parent --ro-bind / / sleep 100000"
        );
    }
}
