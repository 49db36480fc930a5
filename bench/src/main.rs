//! `emperor-bench`: start N vassals under a supervisor (this project's emperor, and uWSGI
//! 2.0's when installed) and measure how fast it starts, reloads, respawns and removes them,
//! what it costs in memory, what it does when idle and what it leaves behind; plus the
//! kernel's own price for a jailed spawn. See docs/PERFORMANCE.md.

mod baseline;
mod cpu;
mod curve;
mod interrupt;
mod machine_start;
mod measure;
mod plot;
mod probed;
mod procfs;
mod report;
mod run;
mod samples;
mod session;
mod target;

use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compare {
    /// uWSGI when /usr/bin/uwsgi-core exists.
    Auto,
    Uwsgi,
    None,
}

#[derive(Debug, Parser)]
#[command(
    name = "emperor-bench",
    about = "Benchmark of the emperor beside uWSGI 2.0 (see docs/PERFORMANCE.md)"
)]
pub struct Args {
    /// Numbers of vassals to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,5000")]
    sizes: Vec<usize>,
    /// Jails to measure each size in: plain (no namespace), full (fs,net,ipc,pid,uts), user
    /// (full + user).
    #[arg(long, value_delimiter = ',', default_value = "plain,full")]
    jail: Vec<String>,
    /// Samples per latency measurement of the emperor.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Run uWSGI's emperor beside ours.
    #[arg(long, value_enum, default_value_t = Compare::Auto)]
    compare: Compare,
    /// Samples per latency measurement of uWSGI (its answers take seconds).
    #[arg(long, default_value_t = 3)]
    uwsgi_samples: usize,
    /// Sizes uWSGI runs at (default: all of --sizes).
    #[arg(long, value_delimiter = ',')]
    uwsgi_sizes: Option<Vec<usize>>,
    /// The emperor binary (default: `emperor` next to this executable).
    #[arg(long, value_name = "PATH")]
    emperor: Option<PathBuf>,
    /// Seconds of the idle CPU window.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Seconds of the idle CPU window at the largest size.
    #[arg(long, default_value_t = 30)]
    idle_secs_largest: u64,
    /// Runs of each baseline command (unshare, bwrap).
    #[arg(long, default_value_t = 40)]
    baseline_runs: usize,
    /// Regenerate this Markdown file (docs/PERFORMANCE.md) with the results.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the scaling plot here (default: perf-scaling.svg next to --out).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    if let Err(e) = interrupt::install() {
        eprintln!("emperor-bench: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let load_before = run::loadavg();
    let args = Args::parse();
    let open_files = match run::raise_open_files_limit() {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("emperor-bench: raising the open-files limit: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("open files (RLIMIT_NOFILE): {open_files}");
    let emperor = match emperor_binary(args.emperor.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("emperor-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match run::everything(&args, &emperor) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("emperor-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let load = format!(
        "/proc/loadavg before: {load_before}; after: {}",
        run::loadavg()
    );
    outcome.print();
    if let Some(out) = &args.out {
        let plot = args
            .plot
            .clone()
            .unwrap_or_else(|| out.with_file_name("perf-scaling.svg"));
        let conditions = run::Conditions {
            duration: started.elapsed(),
            load,
            open_files,
        };
        if let Err(e) = outcome.write(out, &plot, &conditions) {
            eprintln!("emperor-bench: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--emperor`, else `emperor` in this executable's directory.
fn emperor_binary(given: Option<&Path>) -> Result<PathBuf, String> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| format!("current_exe: {e}"))?
            .with_file_name("emperor"),
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    if !path.is_file() {
        return Err(format!(
            "no emperor binary at {} (build it, or pass --emperor PATH)",
            path.display()
        ));
    }
    Ok(path)
}
