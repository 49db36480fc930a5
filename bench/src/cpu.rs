//! Where the CPU went during a start-all window: the machine's busy and stolen time
//! (/proc/stat), the started tree's (the supervisor and everything under it, or the
//! benchmark's own `unshare` trees), the benchmark's own, and the rest ("elsewhere": other
//! load, kernel threads such as the namespaces' cleanup). Read at the window's start and end
//! only, never while it polls.

use crate::interrupt;
use crate::procfs::{self, MachineTicks, Pid};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How many of the other CPU users are named.
const NAMED_OTHERS: usize = 3;

/// The counters at the window's start.
#[derive(Debug, Clone)]
pub struct WindowStart {
    machine: Option<MachineTicks>,
    own_ns: u64,
    /// Every other thread on the machine (the started tree does not exist yet).
    others: BTreeMap<(Pid, Pid), (String, u64)>,
}

/// The window's CPU, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSplit {
    /// Every CPU's busy time (not idle, not iowait, not stolen).
    pub busy: u64,
    /// Time the hypervisor took our CPUs while they had work.
    pub steal: u64,
    /// The started tree's whole CPU (it began in the window).
    pub tree: u64,
    /// The benchmark's own: spawning, polling, parsing.
    pub bench: u64,
    /// The largest users among the threads that existed before the window (the rest of
    /// "elsewhere" is threads born during it), by command name, largest first.
    pub others: Vec<(String, u64)>,
}

impl CpuSplit {
    /// Busy time that was neither the tree's nor the benchmark's. Signed: the machine's
    /// figure is sampled per tick and the tree is read a moment after the window, so it can
    /// come out a little negative.
    pub fn elsewhere(&self) -> i64 {
        self.busy as i64 - self.tree as i64 - self.bench as i64
    }
}

impl WindowStart {
    pub fn now() -> Self {
        let me = std::process::id() as Pid;
        let mut others = procfs::all_threads_cpu_ns();
        others.retain(|&(pid, _), _| pid != me);
        WindowStart {
            machine: procfs::machine_ticks(),
            own_ns: own_ns(),
            others,
        }
    }

    /// The split at the window's end (None when /proc/stat could not be read). `tree` (in
    /// ns) runs last, after the machine's and the benchmark's counters are read, so that its
    /// walk of /proc (O(N)) is not counted in the window.
    pub fn end(&self, tree: impl FnOnce() -> u64) -> Option<CpuSplit> {
        let machine = procfs::machine_ticks();
        let own = own_ns();
        let tick = tick_ns();
        let others = self.others_since();
        Some(CpuSplit {
            busy: machine?.busy.saturating_sub(self.machine?.busy) * tick,
            steal: machine?.steal.saturating_sub(self.machine?.steal) * tick,
            tree: tree(),
            bench: own.saturating_sub(self.own_ns),
            others,
        })
    }

    /// The other threads' CPU since the window's start, summed by command name (a kernel
    /// worker's name without its CPU and queue: `kworker/0:1-events` is `kworker`).
    fn others_since(&self) -> Vec<(String, u64)> {
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        for (&(pid, tid), (name, before)) in &self.others {
            let now = procfs::thread_cpu_ns(pid, tid).unwrap_or(*before);
            let family = name.split('/').next().unwrap_or(name).to_string();
            *by_name.entry(family).or_default() += now.saturating_sub(*before);
        }
        largest(by_name, NAMED_OTHERS)
    }
}

/// The `count` largest non-zero figures, largest first.
fn largest(by_name: BTreeMap<String, u64>, count: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = by_name.into_iter().filter(|&(_, ns)| ns > 0).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(count);
    all
}

/// A machine at most this busy (of all its CPUs) counts as quiet.
const QUIET_SHARE: f64 = 0.05;
/// How long one look at the machine's load lasts.
const QUIET_LOOK: Duration = Duration::from_millis(250);
/// How long a start waits for a quiet machine before it is measured anyway.
const QUIET_PATIENCE: Duration = Duration::from_secs(20);

/// Wait until the machine is quiet: what the run before left to the kernel (processes and
/// namespaces to free) is otherwise paid for inside the next start's window. A machine that
/// stays busy (other load) is measured anyway, and said so: Ok(false).
pub fn settle() -> Result<bool, String> {
    let started = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let look_ticks = QUIET_LOOK.as_secs_f64() * procfs::ticks_per_second() as f64 * cpus;
    while started.elapsed() < QUIET_PATIENCE {
        let Some(before) = procfs::machine_ticks() else {
            return Ok(true);
        };
        interrupt::sleep(QUIET_LOOK)?;
        let Some(after) = procfs::machine_ticks() else {
            return Ok(true);
        };
        if is_quiet(after.busy.saturating_sub(before.busy), look_ticks) {
            return Ok(true);
        }
    }
    eprintln!("  the machine is still busy after {QUIET_PATIENCE:?}: measuring anyway");
    Ok(false)
}

/// `busy` ticks out of `available` are a quiet machine.
fn is_quiet(busy: u64, available: f64) -> bool {
    busy as f64 <= available * QUIET_SHARE
}

fn tick_ns() -> u64 {
    1_000_000_000 / procfs::ticks_per_second().max(1)
}

/// The benchmark's own CPU, exactly, with its exited threads: the sum of the live threads
/// alone shrinks when one exits between the window's ends (the test harness's do).
fn own_ns() -> u64 {
    clock_ns(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
}

/// A clock's reading in ns (0 when it cannot be read).
fn clock_ns(clock: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(clock).map_or(0, |t| Duration::from(t).as_nanos() as u64)
}

/// A process's CPU in ns with what it collected from its reaped children. Its own figure is
/// the exact one of its live threads unless the ticks (which also hold its exited threads)
/// say more: the ticks alone would round every short-lived runtime or payload down to 0.
pub fn process_ns(pid: Pid) -> u64 {
    let tick = tick_ns();
    let times = procfs::cpu_times(pid);
    let ticked = times.map_or(0, |t| t.own * tick);
    let exact = procfs::threads_cpu_ns(pid).unwrap_or(0);
    exact.max(ticked) + times.map_or(0, |t| t.reaped * tick)
}

/// CPU in ns of `root` and of every live descendant, with what each already collected from
/// its reaped children.
pub fn tree_ns(root: Pid) -> u64 {
    std::iter::once(root)
        .chain(procfs::descendants(root))
        .map(process_ns)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn `time` of this thread's CPU. A fixed loop of arithmetic is no measure: under
    /// --release the optimizer folds it into its result (no CPU at all), and a thread's
    /// schedstat grows only when the scheduler accounts its time (a tick, a switch), so a
    /// loop of microseconds may show none either way.
    fn spin(time: Duration) {
        let until = Instant::now() + time;
        let mut x = 0u64;
        while Instant::now() < until {
            for i in 0..10_000u64 {
                x = std::hint::black_box(x.wrapping_add(i * i));
            }
        }
        std::hint::black_box(x);
    }

    #[test]
    fn elsewhere_is_busy_less_tree_and_benchmark() {
        let cpu = CpuSplit {
            busy: 400,
            steal: 40,
            tree: 300,
            bench: 50,
            others: Vec::new(),
        };
        assert_eq!(cpu.elsewhere(), 50);
        let over = CpuSplit { tree: 420, ..cpu };
        assert_eq!(over.elsewhere(), -70);
    }

    #[test]
    fn a_window_reads_the_machine_the_benchmark_and_the_tree() {
        let start = WindowStart::now();
        spin(Duration::from_millis(50));
        let me = std::process::id() as Pid;
        let cpu = start.end(|| tree_ns(me)).unwrap();
        assert!(cpu.bench > 0, "{cpu:?}");
        // The tree is read later, but the test harness's other threads may have exited by
        // then: their time is only in the process's ticks, which round down.
        assert!(cpu.tree + 2 * tick_ns() >= cpu.bench, "{cpu:?}");
    }

    #[test]
    fn the_benchmarks_own_cpu_keeps_what_an_exited_thread_spent() {
        let thread_ns = || clock_ns(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID);
        let before = own_ns();
        std::thread::spawn(move || {
            while thread_ns() < 20_000_000 {
                spin(Duration::from_millis(1));
            }
        })
        .join()
        .unwrap();
        let spent = own_ns() - before;
        assert!(spent >= 20_000_000, "{spent} ns");
    }

    #[test]
    fn the_largest_other_users_are_named_largest_first() {
        let by_name: BTreeMap<String, u64> = [
            ("kworker".to_string(), 30),
            ("process_api".to_string(), 90),
            ("idle".to_string(), 0),
            ("kdamond".to_string(), 30),
            ("sshd".to_string(), 5),
        ]
        .into();
        assert_eq!(
            largest(by_name, 3),
            [
                ("process_api".to_string(), 90),
                ("kdamond".to_string(), 30),
                ("kworker".to_string(), 30),
            ]
        );
    }

    #[test]
    fn quiet_is_at_most_five_percent_of_every_cpu() {
        // 250 ms on 2 CPUs at 100 Hz: 50 ticks available.
        assert!(is_quiet(2, 50.0));
        assert!(!is_quiet(3, 50.0));
        assert!(is_quiet(0, 50.0));
    }

    #[test]
    fn a_thread_that_was_there_before_is_counted_by_name() {
        let me = std::process::id() as Pid;
        let mut start = WindowStart::now();
        // The benchmark is left out of the snapshot; put this thread back in, as another.
        let tid = nix::unistd::gettid().as_raw();
        let before = procfs::thread_cpu_ns(me, tid).unwrap();
        start.others.insert((me, tid), ("spinner/7".into(), before));
        spin(Duration::from_millis(50));
        let others = start.others_since();
        assert!(
            others.iter().any(|(name, ns)| name == "spinner" && *ns > 0),
            "{others:?}"
        );
    }
}
