//! What the kernel itself charges for a jailed spawn, measured in the same run: the bare
//! `unshare` and `bwrap` commands, against the emperor's own spawn of a vassal in the same
//! namespaces (config appears -> payload exec'd). Each command is timed twice over: as the
//! issue names it, fork+exec until its `true` has exited (waitpid, exact); and like for like
//! with the emperor, with `sleep 100000` instead of `true`, fork+exec until the same /proc
//! probe, polled as often, sees that `sleep` exec'd inside.

use crate::interrupt;
use crate::measure::{new_config_samples, Options, PROC_POLL, WAIT_LIMIT};
use crate::probed::{command, Probed, PROBED_PAYLOAD};
use crate::samples::{poll_until, Samples};
use crate::session::BenchResult;
use crate::target::Target;
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
    let mut spawned = Probed::spawn(argv)?;
    let what = format!("`sleep` exec'd under {}", argv[0]);
    let ((), at) = poll_until(&what, PROC_POLL, WAIT_LIMIT, || spawned.payload_seen())?;
    spawned.stop()?;
    Ok(at - started)
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
