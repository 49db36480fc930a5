//! The whole run: every jail and size for the emperor, uWSGI and the machine baseline, the
//! orphan check, the spawn-cost baseline; then the tables, the document and the plot made
//! from them.

use crate::baseline::{self, Baseline};
use crate::curve::{self, Curve, Point, MACHINE};
use crate::machine_start::{self, MachineRun, MachineStart};
use crate::measure::{self, Options, SizeResult, StartAll};
use crate::plot::{self, Panel, Series};
use crate::report::{self, Absent, Compared};
use crate::samples::Samples;
use crate::session::{BenchResult, StopReport};
use crate::target::{self, Jail, Layout, Target};
use crate::{procfs, Args, Compare};
use std::path::Path;
use std::time::Duration;

/// How long uWSGI gets to reload a touched vassal: three of its 3 s scans and then some.
const UWSGI_PATIENCE: Duration = Duration::from_secs(10);
/// uWSGI's `emperor-freq` default: how often its emperor scans for new configs.
const UWSGI_SCAN_PERIOD: Duration = Duration::from_secs(3);

/// Everything measured, and what failed.
pub struct Outcome {
    pub results: Vec<SizeResult>,
    /// The machine's own start-all at every jail and size.
    pub machine_starts: Vec<MachineStart>,
    /// Why there is no uWSGI column, if there is none.
    pub uwsgi_absent: Option<Absent>,
    /// Per jail: the emperor's and uWSGI's stop with forking payloads.
    pub orphans: Vec<(String, Option<StopReport>, Option<StopReport>)>,
    pub baselines: Vec<Baseline>,
    /// The emperor's jailed spawn, per jail.
    pub spawns: Vec<(Jail, Samples)>,
    pub supervisors: Vec<String>,
    pub sizes: Vec<usize>,
    /// The sizes uWSGI was run at (`--uwsgi-sizes`; all of `sizes` by default).
    pub uwsgi_sizes: Vec<usize>,
    pub jails: Vec<String>,
    pub failures: Vec<String>,
}

/// The conditions of the run, as the document's "Run" section shows them.
pub struct Conditions {
    pub duration: Duration,
    /// /proc/loadavg before and after.
    pub load: String,
    /// The RLIMIT_NOFILE both supervisors inherited.
    pub open_files: String,
}

/// This run's command line, as the document shows it.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release -p emperor-bench -- {}", args.join(" "))
}

/// The first line of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

/// Both supervisors under one jail; uWSGI is None when not compared, not installed, or not
/// run in that jail by design (`Absent::by_design`).
fn targets(
    emperor: &Path,
    jail: &Jail,
    compare: Compare,
) -> (target::Emperor, Option<target::Uwsgi>) {
    let uwsgi = match compare {
        Compare::None => None,
        _ if Absent::by_design(jail).is_some() => None,
        Compare::Auto | Compare::Uwsgi => target::Uwsgi::find(jail),
    };
    (target::Emperor::new(emperor, jail), uwsgi)
}

pub fn everything(args: &Args, emperor: &Path) -> BenchResult<Outcome> {
    let jails: Vec<Jail> = args
        .jail
        .iter()
        .map(|j| Jail::parse(j))
        .collect::<Result<_, _>>()?;
    let uwsgi_installed = target::Uwsgi::find(&jails[0]).is_some();
    if args.compare == Compare::Uwsgi && !uwsgi_installed {
        return Err(format!(
            "--compare uwsgi: no {} (apt-get install uwsgi-core)",
            target::UWSGI_BINARY
        ));
    }
    let uwsgi_absent = match (args.compare, uwsgi_installed) {
        (Compare::None, _) => Some(Absent::NotRun),
        (_, false) => Some(Absent::NotInstalled),
        _ => None,
    };
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    let uwsgi_sizes = args
        .uwsgi_sizes
        .clone()
        .unwrap_or_else(|| args.sizes.clone());
    let mut outcome = Outcome {
        results: Vec::new(),
        machine_starts: Vec::new(),
        uwsgi_absent,
        orphans: Vec::new(),
        baselines: Vec::new(),
        spawns: Vec::new(),
        supervisors: Vec::new(),
        sizes: args.sizes.clone(),
        uwsgi_sizes: uwsgi_sizes.clone(),
        jails: args.jail.clone(),
        failures: Vec::new(),
    };
    let example = Layout {
        vassals: "VASSAL_DIR".into(),
        stats: "STATS_SOCKET".into(),
        log: "LOG".into(),
    };
    for jail in &jails {
        let (ours, theirs) = targets(emperor, jail, args.compare);
        outcome.supervisors.push(ours.describe(&example));
        if let Some(u) = &theirs {
            outcome.supervisors.push(u.describe(&example));
        }
        for &n in &args.sizes {
            let idle = if n == largest {
                args.idle_secs_largest
            } else {
                args.idle_secs
            };
            let mut machine_runs = Vec::new();
            let mut earlier_starts = Vec::new();
            for run in 1..args.start_runs.max(1) {
                machine_runs.push(outcome.machine_run(jail, n)?);
                eprintln!(
                    "{}: {n} vassals, jail {}, start-all run {run}",
                    ours.name(),
                    jail.name
                );
                let what = format!("{n} vassals, jail {}, start-all run {run}", jail.name);
                if let Some(start) = outcome.checked(&ours, &what, measure::start_only(&ours, n))? {
                    earlier_starts.push(start);
                }
            }
            machine_runs.push(outcome.machine_run(jail, n)?);
            outcome
                .machine_starts
                .push(MachineStart::from_runs(jail, n, machine_runs));
            let ours_options = Options {
                samples: args.samples.max(1),
                idle_window: Duration::from_secs(idle),
                together: false,
                patience: Duration::ZERO,
                scan_period: None,
            };
            outcome.size(&ours, jail, n, &ours_options, earlier_starts)?;
            if let Some(u) = theirs.as_ref().filter(|_| uwsgi_sizes.contains(&n)) {
                let options = Options {
                    samples: args.uwsgi_samples.max(1),
                    idle_window: Duration::from_secs(args.idle_secs),
                    together: true,
                    patience: UWSGI_PATIENCE,
                    scan_period: Some(UWSGI_SCAN_PERIOD),
                };
                outcome.size(u, jail, n, &options, Vec::new())?;
            }
        }
        eprintln!("orphan check, jail {}", jail.name);
        let ours_stop = outcome.checked(&ours, "orphan check", measure::run_orphans(&ours))?;
        let theirs_stop = match &theirs {
            Some(u) => outcome.checked(u, "orphan check", measure::run_orphans(u))?,
            None => None,
        };
        outcome
            .orphans
            .push((jail.name.clone(), ours_stop, theirs_stop));
    }
    eprintln!("spawn baseline");
    outcome.baselines = baseline::measure_commands(args.baseline_runs)?;
    for name in ["plain", "full", "user"] {
        let jail = Jail::parse(name)?;
        let ours = target::Emperor::new(emperor, &jail);
        let options = Options {
            samples: args.baseline_runs.max(1),
            idle_window: Duration::ZERO,
            together: false,
            patience: Duration::ZERO,
            scan_period: None,
        };
        let what = format!("spawn, jail {name}");
        if let Some(samples) =
            outcome.checked(&ours, &what, baseline::measure_spawn(&ours, &options))?
        {
            outcome.spawns.push((jail, samples));
        }
    }
    Ok(outcome)
}

impl Outcome {
    /// One size of one target, with the start-all runs measured before it; a failure is
    /// recorded and the run goes on (but an interrupt ends it).
    fn size(
        &mut self,
        target: &dyn Target,
        jail: &Jail,
        n: usize,
        options: &Options,
        earlier_starts: Vec<StartAll>,
    ) -> BenchResult<()> {
        eprintln!("{}: {n} vassals, jail {}", target.name(), jail.name);
        let what = format!("{n} vassals, jail {}", jail.name);
        if let Some(result) = self.checked(
            target,
            &what,
            measure::run_size(target, &jail.name, n, options),
        )? {
            self.results
                .push(result.with_earlier_starts(earlier_starts));
        }
        Ok(())
    }

    /// One run of the machine baseline at one jail and size; a failure is its row's, not
    /// the run's.
    fn machine_run(&mut self, jail: &Jail, n: usize) -> BenchResult<Result<MachineRun, String>> {
        let argv = machine_start::argv(jail).join(" ");
        eprintln!("{MACHINE}: {n} x `{argv}`");
        let measured = machine_start::measure(jail, n)?;
        match &measured {
            Ok(run) => eprintln!("  {n} running after {:.2?}", run.start_all),
            Err(e) => eprintln!("  failed: {e}"),
        }
        Ok(measured)
    }

    fn checked<T>(
        &mut self,
        target: &dyn Target,
        what: &str,
        result: BenchResult<T>,
    ) -> BenchResult<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) if e == "interrupted" => Err(e),
            Err(e) => {
                eprintln!("  failed: {e}");
                self.failures
                    .push(format!("{}, {what}: {e}", target.name()));
                Ok(None)
            }
        }
    }

    /// Why a jail has no uWSGI column, if it has none by design (not a failure).
    fn uwsgi_absence(&self, jail: &str) -> Option<Absent> {
        self.uwsgi_absent
            .or_else(|| Jail::parse(jail).ok().and_then(|j| Absent::by_design(&j)))
    }

    fn find(&self, target: &str, jail: &str, n: usize) -> Option<&SizeResult> {
        self.results
            .iter()
            .find(|r| r.target == target && r.jail == jail && r.vassals == n)
    }

    fn machine_start_at(&self, jail: &str, n: usize) -> Option<&MachineStart> {
        self.machine_starts
            .iter()
            .find(|m| m.jail == jail && m.vassals == n)
    }

    /// Per jail: the emperor's, uWSGI's and the machine baseline's start-all at every size
    /// measured.
    fn curves(&self) -> Vec<Curve> {
        let mut curves = Vec::new();
        for jail in &self.jails {
            let machine = |n| {
                self.machine_start_at(jail, n)
                    .and_then(|m| m.result.as_ref().ok())
                    .map(|run| run.start_all)
            };
            for target in ["emperor", "uWSGI"] {
                let points: Vec<Point> = self
                    .sizes
                    .iter()
                    .filter_map(|&n| self.find(target, jail, n))
                    .map(|r| Point {
                        n: r.vassals,
                        start_all: Ok(r.start_all),
                        runs: r.start_runs.clone(),
                        cpu: r.start_cpu.clone(),
                        machine: machine(r.vassals),
                    })
                    .collect();
                if !points.is_empty() {
                    curves.push(Curve {
                        who: target.into(),
                        jail: jail.clone(),
                        points,
                    });
                }
            }
            let points: Vec<Point> = self
                .sizes
                .iter()
                .filter_map(|&n| self.machine_start_at(jail, n))
                .map(|m| Point {
                    n: m.vassals,
                    start_all: m
                        .result
                        .as_ref()
                        .map(|run| run.start_all)
                        .map_err(Clone::clone),
                    runs: m
                        .result
                        .as_ref()
                        .map_or_else(|_| Vec::new(), |run| run.runs.clone()),
                    cpu: m.result.as_ref().ok().and_then(|run| run.cpu.clone()),
                    machine: None,
                })
                .collect();
            if !points.is_empty() {
                curves.push(Curve {
                    who: MACHINE.into(),
                    jail: jail.clone(),
                    points,
                });
            }
        }
        curves
    }

    /// The start-all curve and its linearity verdicts, as Markdown.
    pub fn curve_section(&self) -> String {
        let curves = self.curves();
        format!(
            "### Start-all curve\n\n{}\n**Linearity** (largest size against 1000):\n\n{}",
            report::markdown_table(&curve::CURVE_HEADER, &curve::curve_cells(&curves)),
            report::markdown_table(&curve::LINEARITY_HEADER, &curve::linearity_cells(&curves))
        )
    }

    /// Per (jail, size): the side-by-side table.
    pub fn sections(&self) -> Vec<(String, Vec<Compared>)> {
        let tick_hz = procfs::ticks_per_second();
        let mut out = Vec::new();
        for jail in &self.jails {
            for &n in &self.sizes {
                let Some(ours) = self.find("emperor", jail, n) else {
                    continue;
                };
                let ours = report::rows(ours, tick_hz);
                let theirs = self
                    .find("uWSGI", jail, n)
                    .map(|r| report::rows(r, tick_hz));
                let column = match (&theirs, self.uwsgi_absence(jail)) {
                    (Some(rows), _) => Ok(rows.as_slice()),
                    (None, Some(absent)) => Err(absent),
                    (None, None) if !self.uwsgi_sizes.contains(&n) => Err(Absent::NotAtThisSize),
                    (None, None) => Err(Absent::Failed),
                };
                out.push((
                    report::heading(jail, n),
                    report::side_by_side(&ours, column),
                ));
            }
        }
        out
    }

    pub fn print(&self) {
        for (title, rows) in self.sections() {
            let cells = report::compared_cells(&rows);
            println!(
                "\n{title}\n{}",
                report::text_table(&report::COMPARED_HEADER, &cells)
            );
        }
        let curves = self.curves();
        println!(
            "\nStart-all curve\n{}\nLinearity (largest size against 1000)\n{}",
            report::text_table(&curve::CURVE_HEADER, &curve::curve_cells(&curves)),
            report::text_table(&curve::LINEARITY_HEADER, &curve::linearity_cells(&curves))
        );
        println!("\n{}", self.extras());
        for failure in &self.failures {
            println!("FAILED: {failure}");
        }
    }

    /// The spawn-cost and orphan tables, as Markdown.
    pub fn extras(&self) -> String {
        let mut out = String::from("### Cost of a jailed spawn\n\n");
        out += &report::spawn_cost_table(&self.baselines, &self.spawns);
        out += "\n### Orphans after stop (payload `sh -c 'sleep 100000 & exec sleep 100000'`)\n\n";
        let stop = |s: &Option<StopReport>, absent: &str| match s {
            Some(s) => format!(
                "{} orphans alive, {} zombies; stop took {}",
                s.orphans,
                s.zombies,
                report::ms(s.elapsed)
            ),
            None => absent.to_string(),
        };
        let rows: Vec<Vec<String>> = self
            .orphans
            .iter()
            .map(|(jail, ours, theirs)| {
                let absent = self
                    .uwsgi_absence(jail)
                    .map_or("failed (see below)", Absent::text);
                let pass = ours.as_ref().is_some_and(|s| s.orphans == 0);
                vec![
                    jail.clone(),
                    stop(ours, "failed (see below)"),
                    stop(theirs, absent),
                    "0 orphans".into(),
                    if pass { "pass" } else { "MISS" }.into(),
                ]
            })
            .collect();
        out += &report::markdown_table(&["jail", "emperor", "uWSGI", "target", "result"], &rows);
        out
    }

    /// The scaling plot's two panels: start-all time, and memory, against N.
    fn panels(&self) -> Vec<Panel> {
        let mut start = Vec::new();
        let mut memory = Vec::new();
        for target in ["emperor", "uWSGI"] {
            for jail in &self.jails {
                let results: Vec<&SizeResult> = self
                    .sizes
                    .iter()
                    .filter_map(|&n| self.find(target, jail, n))
                    .collect();
                if results.is_empty() {
                    continue;
                }
                let label = format!("{target}, jail {jail}");
                let n = |r: &SizeResult| r.vassals as f64;
                start.push(Series {
                    label: label.clone(),
                    points: results
                        .iter()
                        .map(|r| (n(r), r.start_all.as_secs_f64()))
                        .collect(),
                });
                let mib = |kib: u64| kib as f64 / 1024.0;
                memory.push(Series {
                    label: format!("{label}: supervisor RSS"),
                    points: results
                        .iter()
                        .map(|r| (n(r), mib(r.memory.supervisor_rss)))
                        .collect(),
                });
                memory.push(Series {
                    label: format!("{label}: private, all but payloads"),
                    points: results
                        .iter()
                        .map(|r| {
                            (
                                n(r),
                                mib(r.memory.supervisor_private + r.memory.runtimes_private),
                            )
                        })
                        .collect(),
                });
            }
        }
        for jail in &self.jails {
            let points: Vec<(f64, f64)> = self
                .sizes
                .iter()
                .filter_map(|&n| self.machine_start_at(jail, n))
                .filter_map(|m| Some((m.vassals as f64, m.result.as_ref().ok()?.start_all)))
                .map(|(n, t)| (n, t.as_secs_f64()))
                .collect();
            if !points.is_empty() {
                start.push(Series {
                    label: format!("{MACHINE} (unshare trees), jail {jail}"),
                    points,
                });
            }
        }
        vec![
            Panel {
                title: "start all N vassals".into(),
                y_label: "seconds (log)".into(),
                series: start,
            },
            Panel {
                title: "memory with N vassals running".into(),
                y_label: "MiB (log)".into(),
                series: memory,
            },
        ]
    }

    /// Write the document (with `uwsgi_app`, the uWSGI-application block) and the plot.
    pub fn write(
        &self,
        out: &Path,
        plot_path: &Path,
        conditions: &Conditions,
        uwsgi_app: &str,
    ) -> std::io::Result<()> {
        let command = command_line();
        let sections = self.sections();
        let extras = self.extras();
        let curve = self.curve_section();
        let document = report::Document {
            command: &command,
            curve: &curve,
            conditions,
            supervisors: &self.supervisors,
            extras: &extras,
            sections: &sections,
            failures: &self.failures,
            uwsgi_app,
        };
        std::fs::write(plot_path, plot::svg(&self.panels()))?;
        std::fs::write(out, document.render())
    }
}
