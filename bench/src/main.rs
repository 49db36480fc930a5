//! `emperor-bench`: start N vassals under a supervisor (this project's emperor, and uWSGI
//! 2.0's when installed) and measure how fast it starts, reloads, respawns and removes them,
//! what it costs in memory, what it does when idle and what it leaves behind; plus the
//! kernel's own price for a jailed spawn; and (`--workload uwsgi-app`) N real uWSGI python
//! apps under both emperors. See docs/PERFORMANCE.md.

mod app;
mod app_run;
mod baseline;
mod blocks;
mod cpu;
mod curve;
mod fairness;
mod http;
mod interrupt;
mod limits;
mod machine_start;
mod measure;
mod plot;
mod probed;
mod procfs;
mod report;
mod run;
mod samples;
mod session;
mod start_runs;
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

/// What the vassals run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// N `sleep` payloads (binary patches): the supervisors' own costs.
    Sleep,
    /// N real uWSGI python apps (http-socket, master + 1 worker).
    UwsgiApp,
    /// Tenants sharing one emperor (tyrant mode, default flags): a lone config, a neighbour
    /// while another tenant floods, a flood dropped into a running emperor.
    Fairness,
}

#[derive(Debug, Parser)]
#[command(
    name = "emperor-bench",
    about = "Benchmark of the emperor beside uWSGI 2.0 (see docs/PERFORMANCE.md)"
)]
pub struct Args {
    /// Workloads to run, comma-separated: sleep, uwsgi-app. With --out, a run of uwsgi-app
    /// alone replaces only its own block of the document; a run with sleep writes the whole
    /// document and keeps the uwsgi-app block it finds there.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sleep")]
    workload: Vec<Workload>,
    /// Numbers of uWSGI apps to measure (uwsgi-app workload), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,500")]
    app_sizes: Vec<usize>,
    /// Jails of the uwsgi-app workload (uWSGI's emperor runs only in plain: in a network
    /// namespace its apps would be unreachable).
    #[arg(long, value_delimiter = ',', default_value = "plain")]
    app_jail: Vec<String>,
    /// Configs tenant A drops at once in the fairness workload.
    #[arg(long, default_value_t = 1000)]
    fairness_flood: usize,
    /// Configs dropped into a running emperor (and started at once) in the fairness workload.
    #[arg(long, default_value_t = 5000)]
    fairness_dropped: usize,
    /// Keep each uwsgi-app supervisor's log (its uWSGI instances' output included) in DIR.
    #[arg(long, value_name = "DIR")]
    keep_logs: Option<PathBuf>,
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
    /// Start-all runs of the emperor and of the machine baseline at each jail and size,
    /// alternating; the median run is reported (uWSGI starts once).
    #[arg(long, default_value_t = 3)]
    start_runs: usize,
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

impl Args {
    /// The most vassals one supervisor of this run holds at once (the limits are set for it).
    fn most_vassals(&self) -> usize {
        let largest = |sizes: &[usize]| sizes.iter().copied().max().unwrap_or(0);
        self.workload
            .iter()
            .map(|workload| match workload {
                // The samples added by "new config" run beside the N.
                Workload::Sleep => largest(&self.sizes) + self.samples,
                Workload::UwsgiApp => largest(&self.app_sizes),
                Workload::Fairness => {
                    (self.fairness_flood + self.samples).max(self.fairness_dropped)
                }
            })
            .max()
            .unwrap_or(0)
    }
}

fn main() -> ExitCode {
    if let Err(e) = interrupt::install() {
        eprintln!("emperor-bench: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let load_before = run::loadavg();
    let args = Args::parse();
    let open_files = match limits::prepare(args.most_vassals()) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("emperor-bench: {e}");
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
    let sleep = args.workload.contains(&Workload::Sleep);
    let outcome = if sleep {
        match run::everything(&args, &emperor) {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                eprintln!("emperor-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let app_started = Instant::now();
    let app_load_before = run::loadavg();
    let apps = if args.workload.contains(&Workload::UwsgiApp) {
        match app_run::everything(&args, &emperor) {
            Ok(apps) => Some(apps),
            Err(e) => {
                eprintln!("emperor-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let fair_started = Instant::now();
    let fair_load_before = run::loadavg();
    let fair = if args.workload.contains(&Workload::Fairness) {
        match fairness::run(
            &emperor,
            args.fairness_flood,
            args.fairness_dropped,
            args.samples,
        ) {
            Ok(fair) => Some(fair),
            Err(e) => {
                eprintln!("emperor-bench: fairness: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let fair_block = fair.as_ref().map(|fair| {
        fair.block(
            &run::command_line(),
            &format!(
                "{:.0} s, /proc/loadavg before: {fair_load_before}; after: {}",
                fair_started.elapsed().as_secs_f64(),
                run::loadavg()
            ),
        )
    });
    if let Some(fair) = &fair {
        fair.print();
    }
    let load = format!(
        "/proc/loadavg before: {load_before}; after: {}",
        run::loadavg()
    );
    if let Some(outcome) = &outcome {
        outcome.print();
    }
    if let Some(apps) = &apps {
        apps.print();
    }
    if let Some(out) = &args.out {
        let block = apps.as_ref().map(|apps| {
            let conditions = run::Conditions {
                duration: app_started.elapsed(),
                load: format!(
                    "/proc/loadavg before: {app_load_before}; after: {}",
                    run::loadavg()
                ),
                open_files: open_files.clone(),
            };
            apps.block(&run::command_line(), &conditions)
        });
        // The fairness block, measured now or kept from the document.
        let fair_block = fair_block.or_else(|| {
            std::fs::read_to_string(out)
                .ok()
                .and_then(|doc| fairness::existing_block(&doc).map(str::to_string))
        });
        let written = write(
            &args,
            out,
            outcome.as_ref(),
            block,
            started,
            load,
            open_files,
        )
        .and_then(|()| match fair_block {
            Some(fair_block) => {
                let document = std::fs::read_to_string(out).unwrap_or_default();
                std::fs::write(out, fairness::splice(&document, &fair_block))
            }
            None => Ok(()),
        });
        if let Err(e) = written {
            eprintln!("emperor-bench: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    let failed = outcome.as_ref().is_some_and(|o| !o.failures.is_empty())
        || apps.as_ref().is_some_and(|a| !a.failures.is_empty());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Write the document: the whole of it when the sleep workload ran (keeping the uwsgi-app
/// block it had, unless this run measured one), else only the uwsgi-app block in it.
fn write(
    args: &Args,
    out: &Path,
    outcome: Option<&run::Outcome>,
    block: Option<String>,
    started: Instant,
    load: String,
    open_files: String,
) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(out).ok();
    match outcome {
        Some(outcome) => {
            let block = block.unwrap_or_else(|| {
                existing
                    .as_deref()
                    .and_then(app_run::existing_block)
                    .map_or_else(app_run::placeholder_block, str::to_string)
            });
            let plot = args
                .plot
                .clone()
                .unwrap_or_else(|| out.with_file_name("perf-scaling.svg"));
            let conditions = run::Conditions {
                duration: started.elapsed(),
                load,
                open_files,
            };
            outcome.write(out, &plot, &conditions, &block)
        }
        None => {
            let Some(block) = block else { return Ok(()) };
            let document = app_run::splice(existing.as_deref().unwrap_or_default(), &block);
            std::fs::write(out, document)
        }
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
