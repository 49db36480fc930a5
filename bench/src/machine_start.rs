//! The machine's own start-all, measured beside each supervisor's at every size: N process
//! trees of a vassal's shape (`unshare --fork [the jail's namespace flags] sleep 100000`: two
//! processes, like runtime + payload), started by the benchmark as fast as it can with no
//! supervisor, timed until every `sleep` has exec'd; then stopped by pid. What this costs
//! grows with N only through the machine (the kernel, the hypervisor, other load), so a
//! supervisor's start-all over it tells the supervisor's own growth from the machine's.

use crate::cpu::{self, CpuSplit, WindowStart};
use crate::interrupt;
use crate::measure::{STATS_POLL, WAIT_LIMIT};
use crate::probed::{Probed, PROBED_PAYLOAD};
use crate::samples::poll_until;
use crate::session::BenchResult;
use crate::start_runs;
use crate::target::Jail;
use std::time::{Duration, Instant};

/// The machine baseline at one (jail, size).
#[derive(Debug, Clone)]
pub struct MachineStart {
    pub jail: String,
    pub vassals: usize,
    /// Err: why there is no figure ("unshare: not installed", a failure).
    pub result: Result<MachineRun, String>,
}

#[derive(Debug, Clone)]
pub struct MachineRun {
    /// From the first spawn until every `sleep` was seen exec'd.
    pub start_all: Duration,
    /// The window's CPU; the tree is the N `unshare` trees.
    pub cpu: Option<CpuSplit>,
    /// Every run's start-all at this jail and size, in the order measured (this one's
    /// among them).
    pub runs: Vec<Duration>,
}

impl MachineStart {
    /// The baseline at one (jail, size) from its runs: the median of those that worked (a
    /// failed run is left out; all failed: the first failure).
    pub fn from_runs(jail: &Jail, n: usize, runs: Vec<Result<MachineRun, String>>) -> Self {
        let (worked, failed): (Vec<_>, Vec<_>) = runs.into_iter().partition(Result::is_ok);
        let mut worked: Vec<MachineRun> = worked.into_iter().flatten().collect();
        let times: Vec<Duration> = worked.iter().map(|run| run.start_all).collect();
        let result = match start_runs::median_index(&times) {
            Some(median) => {
                let mut run = worked.swap_remove(median);
                run.runs = times;
                Ok(run)
            }
            None => Err(failed
                .into_iter()
                .find_map(Result::err)
                .unwrap_or_else(|| "not measured".into())),
        };
        MachineStart {
            jail: jail.name.clone(),
            vassals: n,
            result,
        }
    }
}

/// `unshare`'s flags for each of the jail's namespaces (`--emperor-use-clone` names).
fn unshare_flags(namespace: &str) -> &'static [&'static str] {
    match namespace {
        "fs" => &["--mount"],
        "net" => &["--net"],
        "ipc" => &["--ipc"],
        "pid" => &["--pid"],
        "uts" => &["--uts"],
        "cgroup" => &["--cgroup"],
        // Root inside, as the emperor's user-namespaced vassal is.
        "user" => &["--user", "--map-root-user"],
        _ => &[],
    }
}

/// The tree for one vassal of `jail`: `unshare --fork` with no flag (plain) creates no
/// namespace and runs `sleep` in a child, as util-linux 2.38 does.
pub fn argv(jail: &Jail) -> Vec<&'static str> {
    let namespaces = jail.clone.split(',').filter(|n| !n.is_empty());
    ["unshare", "--fork"]
        .into_iter()
        .chain(namespaces.flat_map(unshare_flags).copied())
        .chain(PROBED_PAYLOAD)
        .collect()
}

/// One run of the machine baseline for `n` vassals of `jail`. Only an interrupt is an
/// error: any other failure is the result's, and the run goes on.
pub fn measure(jail: &Jail, n: usize) -> BenchResult<Result<MachineRun, String>> {
    match start_all(&argv(jail), n) {
        Err(e) if e == "interrupted" => Err(e),
        other => Ok(other),
    }
}

/// Spawn `n` trees one after the other, then poll them in spawn order (each tree is
/// probed until its `sleep` is seen, once: O(N) /proc work in all) until every one runs.
fn start_all(argv: &[&str], n: usize) -> BenchResult<MachineRun> {
    let mut trees = Trees(Vec::with_capacity(n));
    cpu::settle()?;
    let window = WindowStart::now();
    let started = Instant::now();
    for _ in 0..n {
        interrupt::check()?;
        trees.0.push(Probed::spawn(argv)?);
    }
    let mut ready = 0;
    let mut advanced = Instant::now();
    let what = format!("{n} `sleep`s exec'd under unshare");
    let ((), at) = poll_until(&what, STATS_POLL, Duration::MAX, || {
        while ready < n && trees.0[ready].payload_seen()?.is_some() {
            ready += 1;
            advanced = Instant::now();
        }
        if ready == n {
            return Ok(Some(()));
        }
        if advanced.elapsed() > WAIT_LIMIT {
            return Err(format!("stuck at {ready} of {n} for {WAIT_LIMIT:?}"));
        }
        Ok(None)
    })?;
    let cpu = window.end(|| {
        trees
            .0
            .iter()
            .flat_map(Probed::pids)
            .map(cpu::process_ns)
            .sum()
    });
    trees.stop_all()?;
    let start_all = at - started;
    Ok(MachineRun {
        start_all,
        cpu,
        runs: vec![start_all],
    })
}

/// The trees of one baseline, stopped together on every path: every `sleep` is killed
/// first, then each `unshare` is reaped, so that they exit side by side.
struct Trees(Vec<Probed>);

impl Trees {
    fn stop_all(&mut self) -> Result<(), String> {
        for tree in &mut self.0 {
            tree.kill_payloads();
        }
        let mut first_error = Ok(());
        for mut tree in self.0.drain(..) {
            if let Err(e) = tree.stop() {
                first_error = first_error.and(Err(e));
            }
        }
        first_error
    }
}

impl Drop for Trees {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probed::not_installed;

    #[test]
    fn trees_mirror_the_jails_namespaces() {
        let argv_of = |name| argv(&Jail::parse(name).unwrap()).join(" ");
        assert_eq!(argv_of("plain"), "unshare --fork sleep 100000");
        assert_eq!(
            argv_of("full"),
            "unshare --fork --mount --net --ipc --pid --uts sleep 100000"
        );
        assert_eq!(
            argv_of("user"),
            "unshare --fork --mount --net --ipc --pid --uts --user --map-root-user sleep 100000"
        );
    }

    #[test]
    fn a_few_plain_trees_start_and_leave_nothing_behind() {
        // An Ok run has stopped and reaped every tree: its check that they are gone passed.
        let run = match start_all(&argv(&Jail::parse("plain").unwrap()), 3) {
            Err(e) if e == not_installed("unshare") => return,
            other => other.unwrap(),
        };
        assert!(run.start_all > Duration::ZERO);
        assert!(run.cpu.is_some());
    }

    #[test]
    fn the_median_run_speaks_for_the_baseline_and_a_failed_run_is_left_out() {
        let run = |ms, cpu: Option<CpuSplit>| {
            Ok(MachineRun {
                start_all: Duration::from_millis(ms),
                cpu,
                runs: vec![Duration::from_millis(ms)],
            })
        };
        let jail = Jail::parse("full").unwrap();
        let split = CpuSplit::default();
        let runs = vec![
            run(300, None),
            Err("stuck".into()),
            run(100, None),
            run(200, Some(split)),
        ];
        let baseline = MachineStart::from_runs(&jail, 5, runs).result.unwrap();
        assert_eq!(baseline.start_all, Duration::from_millis(200));
        assert!(baseline.cpu.is_some(), "the median run's own CPU split");
        let in_order: Vec<u64> = baseline.runs.iter().map(|d| d.as_millis() as u64).collect();
        assert_eq!(in_order, [300, 100, 200]);
        let none = MachineStart::from_runs(&jail, 5, vec![Err("stuck".into())]);
        assert_eq!(none.result.unwrap_err(), "stuck");
    }
}
