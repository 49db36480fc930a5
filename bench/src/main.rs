//! `emperor-bench`: start N vassals under a supervisor and measure how fast it starts,
//! reloads, respawns and removes them, what it costs in memory, and what it does when idle.
//! See docs/PERFORMANCE.md.

mod interrupt;
mod measure;
mod procfs;
mod report;
mod samples;
mod session;
mod target;

use clap::Parser;
use measure::{Options, SizeResult};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use target::Target;

#[derive(Debug, Parser)]
#[command(
    name = "emperor-bench",
    about = "Benchmark of the emperor (see docs/PERFORMANCE.md)"
)]
struct Args {
    /// Numbers of vassals to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    sizes: Vec<usize>,
    /// Samples per latency measurement.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// The emperor binary (default: `emperor` next to this executable).
    #[arg(long, value_name = "PATH")]
    emperor: Option<PathBuf>,
    /// Seconds of the idle CPU window.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Regenerate this Markdown file (docs/PERFORMANCE.md) with the results.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    if let Err(e) = interrupt::install() {
        eprintln!("emperor-bench: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    let args = Args::parse();
    let emperor = match emperor_binary(args.emperor.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("emperor-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let targets: Vec<Box<dyn Target>> = vec![Box::new(target::Emperor::new(&emperor))];
    let options = Options {
        samples: args.samples.max(1),
        idle_window: Duration::from_secs(args.idle_secs),
    };
    let (results, failures) = run_all(&targets, &args.sizes, &options);
    let tick_hz = procfs::ticks_per_second();
    let sections: Vec<(String, Vec<report::Row>)> = results
        .iter()
        .map(|r| (report::heading(r), report::rows(r, tick_hz)))
        .collect();
    for (title, rows) in &sections {
        println!("\n{title}\n{}", report::text_table(rows));
    }
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    if let Some(out) = &args.out {
        if let Err(e) = write_document(out, &targets, &sections, &failures) {
            eprintln!("emperor-bench: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    if failures.is_empty() {
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

/// Every target at every size; a failed size is reported and the others still run.
fn run_all(
    targets: &[Box<dyn Target>],
    sizes: &[usize],
    options: &Options,
) -> (Vec<SizeResult>, Vec<String>) {
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for target in targets {
        for &n in sizes {
            eprintln!("{}: {n} vassals", target.name());
            match measure::run_size(target.as_ref(), n, options) {
                Ok(result) => results.push(result),
                Err(e) => {
                    eprintln!("  failed: {e}");
                    failures.push(format!("{}, {n} vassals: {e}", target.name()));
                }
            }
        }
    }
    (results, failures)
}

fn write_document(
    out: &Path,
    targets: &[Box<dyn Target>],
    sections: &[(String, Vec<report::Row>)],
    failures: &[String],
) -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = format!("cargo run --release -p emperor-bench -- {}", args.join(" "));
    let example = target::Layout {
        vassals: "VASSAL_DIR".into(),
        stats: "STATS_SOCKET".into(),
        log: "LOG".into(),
    };
    let supervisors: Vec<String> = targets.iter().map(|t| t.describe(&example)).collect();
    let document = report::Document {
        command: &command,
        supervisors: &supervisors,
        sections,
        failures,
    };
    std::fs::write(out, document.render())
}
