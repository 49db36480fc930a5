//! What the kernel itself charges for a jailed spawn, measured in the same run: the bare
//! `unshare` and `bwrap` commands, fork+exec until their `true` has exited, against the
//! emperor's own spawn of a vassal in the same namespaces (config appears -> payload exec'd).

use crate::interrupt;
use crate::measure::{new_config_samples, Options};
use crate::samples::Samples;
use crate::session::BenchResult;
use crate::target::Target;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One baseline command, as the report shows it.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub command: String,
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

/// Each baseline command `runs` times, one after the other.
pub fn measure_commands(runs: usize) -> BenchResult<Vec<Baseline>> {
    let mut out = Vec::new();
    for argv in COMMANDS {
        let mut baseline = Baseline {
            command: argv.join(" "),
            samples: None,
            error: None,
        };
        match time_runs(argv, runs) {
            Ok(samples) => baseline.samples = Some(samples),
            Err(e) => baseline.error = Some(e),
        }
        interrupt::check()?;
        out.push(baseline);
    }
    Ok(out)
}

/// Wall time of fork+exec+wait for `argv`, `runs` times; an error if it does not succeed.
fn time_runs(argv: &[&str], runs: usize) -> Result<Samples, String> {
    let mut samples = Samples::default();
    for _ in 0..runs {
        interrupt::check()?;
        let started = Instant::now();
        let status = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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

/// The emperor's spawn under `target`'s jail: new config -> payload exec'd, with one vassal
/// already running.
pub fn measure_spawn(target: &dyn Target, options: &Options) -> BenchResult<Samples> {
    new_config_samples(target, 1, options)
}
