//! The scenarios, for one target and one size N: start all, then with N running add, touch,
//! kill and remove vassals, read memory and idle CPU, and stop.

use crate::cpu::{self, CpuSplit, WindowStart};
use crate::interrupt;
use crate::procfs::{self, Pid};
use crate::samples::{poll_until, Samples};
use crate::session::{initial_name, sigkill, BenchResult, Session, StopReport};
use crate::start_runs;
use crate::target::{Target, FORKING_PAYLOAD, PAYLOAD, PAYLOAD_COMM};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// /proc polling period where latency matters.
pub const PROC_POLL: Duration = Duration::from_millis(1);
/// Stats polling period (each poll makes the supervisor build the whole document).
pub const STATS_POLL: Duration = Duration::from_millis(5);
/// Stats polling period during start-all while the vassals' tasks are not there yet.
const SLOW_STATS_POLL: Duration = Duration::from_secs(1);
/// Tasks of a running vassal: its runtime and its payload (uWSGI: `sh` and the payload).
const TASKS_PER_VASSAL: usize = 2;
/// Any single wait longer than this is a failure.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// Quiet time before the orphan check's stop (loyalty messages, stats threads).
const SETTLE: Duration = Duration::from_secs(1);
/// Quiet time before the memory and idle readings: the steady state of N running vassals,
/// our runtimes asleep. A runtime's sleep waits while the emperor starts others (until a
/// second after its last start, looked at every 4 s at most), then by up to 8 s while the
/// machine is busy (the others falling asleep), so all sleep within about 13 s of the last
/// start (a sample's).
const MEMORY_SETTLE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Options {
    pub samples: usize,
    pub idle_window: Duration,
    /// Touch (and remove) all sampled vassals at once and wait for each up to `patience`:
    /// for a supervisor whose answer takes seconds or never comes (uWSGI).
    pub together: bool,
    pub patience: Duration,
    /// A supervisor that finds new configs by scanning every period (uWSGI: 3 s). Sample k of
    /// n is renamed in (k + 0.5) / n of a period after the previous one was found, which was
    /// at a scan: otherwise every sample would land just after a scan and wait a whole period,
    /// twice the average a config arriving at a random moment waits.
    pub scan_period: Option<Duration>,
}

/// Reads of the whole stats document timed once N run (after the quiet period).
const STATS_READS: usize = 7;
/// The pause between two timed reads: each read alone, not queued behind the one before.
const STATS_READ_GAP: Duration = Duration::from_millis(200);

/// uWSGI's 30 s mercy (`emperor-curse-tolerance`), a 3 s scan, and slack.
const REMOVE_PATIENCE: Duration = Duration::from_secs(40);
/// Vassals in the orphan check.
const ORPHAN_VASSALS: usize = 5;

/// Memory with N vassals running, in KiB.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub supervisor_rss: u64,
    pub supervisor_peak_rss: u64,
    pub runtimes: usize,
    pub runtimes_rss: u64,
    pub runtimes_private: u64,
    /// The supervisor's own Private_Clean + Private_Dirty.
    pub supervisor_private: u64,
    /// Payloads seen, and how many of them inherited ignored signals (SigIgn != 0).
    pub payloads: usize,
    pub payloads_ignoring: usize,
    /// The SigIgn mask of one payload that ignores signals (hex, as /proc shows it).
    pub sig_ign_example: Option<String>,
}

/// Whole stats documents read with N running: connect to parsed, as a client sees it.
#[derive(Debug, Clone, Default)]
pub struct StatsReads {
    pub samples: Samples,
    /// The document's size in bytes (the last read's).
    pub bytes: usize,
}

/// CPU and wake-ups over the idle window.
#[derive(Debug, Clone, Default)]
pub struct Idle {
    pub window: Duration,
    pub supervisor_ticks: u64,
    pub supervisor_main_thread_ns: u64,
    /// Voluntary context switches: times the loop went to sleep and was woken.
    pub supervisor_wakeups: u64,
    /// Involuntary ones: preemptions (other load on the machine).
    pub supervisor_preemptions: u64,
    pub runtimes_ticks: u64,
}

#[derive(Debug, Clone)]
pub struct SizeResult {
    pub target: String,
    pub jail: String,
    pub vassals: usize,
    /// The median of the start-all runs at this size (`--start-runs`).
    pub start_all: Duration,
    /// Where the CPU went while they started, in that run (None: /proc/stat unreadable).
    pub start_cpu: Option<CpuSplit>,
    /// Every start-all run at this size, in the order measured.
    pub start_runs: Vec<Duration>,
    pub new_config: Samples,
    /// The part of new_config until the runtime process existed.
    pub new_config_forked: Samples,
    pub touch_reload: Samples,
    pub kill_respawn: Samples,
    pub remove_gone: Samples,
    pub memory: Memory,
    pub stats_reads: StatsReads,
    pub idle: Idle,
    pub stop: StopReport,
}

/// Every measurement for `n` vassals under `target`.
pub fn run_size(
    target: &dyn Target,
    jail: &str,
    n: usize,
    options: &Options,
) -> BenchResult<SizeResult> {
    let (mut session, started) = start_supervisor(target, n, PAYLOAD)?;
    let added: Vec<String> = (0..options.samples)
        .map(|k| format!("new-{k:03}"))
        .collect();
    let mut new_config_forked = Samples::default();
    let mut k = 0;
    let new_config = sample_each(&added, |name| {
        if let Some(period) = options.scan_period {
            std::thread::sleep(period.mul_f64((k as f64 + 0.5) / added.len() as f64));
            k += 1;
        }
        let (running, forked) = new_config(&mut session, name)?;
        new_config_forked.push(forked);
        Ok(running)
    })?;
    progress("new config done");
    let names: Vec<String> = (0..options.samples).map(|k| initial_name(k % n)).collect();
    let touch_reload = if options.together {
        touch_together(&mut session, &names, options.patience)?
    } else {
        sample_each(&names, |name| touch_reload(&mut session, name))?
    };
    progress("touch done");
    let kill_respawn = sample_each(&names, |name| kill_respawn(&mut session, name))?;
    progress("kill done");
    let remove_gone = if options.together {
        remove_together(&mut session, &added)?
    } else {
        sample_each(&added, |name| remove_gone(&mut session, name))?
    };
    progress("remove done");
    interrupt::sleep(MEMORY_SETTLE)?;
    let memory = memory(&mut session)?;
    let stats_reads = stats_reads(&mut session, n)?;
    let idle = idle(&mut session, options.idle_window)?;
    progress("idle done");
    let stop = session.stop()?;
    Ok(SizeResult {
        target: target.name().to_string(),
        jail: jail.to_string(),
        vassals: n,
        start_all: started.elapsed,
        start_cpu: started.cpu,
        start_runs: vec![started.elapsed],
        new_config,
        new_config_forked,
        touch_reload,
        kill_respawn,
        remove_gone,
        memory,
        stats_reads,
        idle,
        stop,
    })
}

fn progress(message: &str) {
    eprintln!("  {message}");
}

fn sample_each(
    names: &[String],
    mut measure: impl FnMut(&str) -> BenchResult<Duration>,
) -> BenchResult<Samples> {
    let mut samples = Samples::default();
    for name in names {
        samples.push(measure(name)?);
    }
    Ok(samples)
}

impl SizeResult {
    /// This size with the start-all runs measured before its own (`earlier`, in order):
    /// start-all and its CPU become the median run's.
    pub fn with_earlier_starts(mut self, earlier: Vec<StartAll>) -> Self {
        let own = StartAll {
            elapsed: self.start_all,
            cpu: self.start_cpu.take(),
        };
        let mut runs = earlier;
        runs.push(own);
        self.start_runs = runs.iter().map(|run| run.elapsed).collect();
        let median = start_runs::median_index(&self.start_runs).unwrap_or(runs.len() - 1);
        let median = runs.swap_remove(median);
        self.start_all = median.elapsed;
        self.start_cpu = median.cpu;
        self
    }
}

/// Start-all: how long, and where the CPU went meanwhile.
#[derive(Debug, Clone)]
pub struct StartAll {
    pub elapsed: Duration,
    pub cpu: Option<CpuSplit>,
}

/// One more start-all for `n` vassals under `target`, and a stop that must leave nothing
/// alive: a run beside the one `run_size` measures everything else in.
pub fn start_only(target: &dyn Target, n: usize) -> BenchResult<StartAll> {
    let (mut session, started) = start_supervisor(target, n, PAYLOAD)?;
    let stop = session.stop()?;
    if stop.orphans > 0 {
        return Err(format!("its stop left {} processes alive", stop.orphans));
    }
    progress(&format!("stopped in {:.2?}", stop.elapsed));
    Ok(started)
}

/// Start the supervisor over `n` configs running `payload` and wait until its stats list
/// them all running. The task count and CPU counters are read just before it starts.
fn start_supervisor<'t>(
    target: &'t dyn Target,
    n: usize,
    payload: &'static str,
) -> BenchResult<(Session<'t>, StartAll)> {
    let mut session = Session::prepared(target, n, payload)?;
    cpu::settle()?;
    let tasks_before = procfs::tasks_total();
    let window = WindowStart::now();
    session.spawn()?;
    let elapsed = start_all(&mut session, n, tasks_before)?;
    let pid = session.pid;
    let cpu = window.end(|| cpu::tree_ns(pid));
    Ok((session, StartAll { elapsed, cpu }))
}

/// From the supervisor's start until the stats list `n` vassals running. Progress comes from
/// the stats, or from /proc while they are silent; a lasting stall fails as "stuck". The
/// stats are read as `StatsSchedule` says, /proc/loadavg every `STATS_POLL` meanwhile.
fn start_all(
    session: &mut Session,
    n: usize,
    tasks_before: Option<usize>,
) -> BenchResult<Duration> {
    let mut watch = StartProgress::new(n, session.started);
    let mut schedule = StatsSchedule::new(n, tasks_before, session.started);
    let what = format!("{n} vassals running");
    let ((), at) = poll_until(&what, STATS_POLL, Duration::MAX, || {
        if !schedule.due(Instant::now(), procfs::tasks_total()) {
            return Ok(None);
        }
        let count = running_count(session)?;
        let now = Instant::now();
        schedule.read(now, count.count());
        if let Err(stuck) = watch.record(count, now) {
            return Err(format!("{stuck}; log tail:\n{}", session.log_tail(5)));
        }
        Ok((count == Running::Stats(n)).then_some(()))
    })?;
    let fast = schedule
        .fast_since
        .map_or("never".into(), |t| format!("for the last {:.2?}", at - t));
    progress(&format!(
        "{n} running after {:.2?} (stats read {} times; every {STATS_POLL:?} {fast})",
        at - session.started,
        schedule.reads
    ));
    Ok(at - session.started)
}

/// When start-all reads the stats. Each read makes the supervisor build a document of N
/// entries and the benchmark parse it, on the CPUs the start needs. So until the machine has
/// about the tasks N running vassals need (/proc/loadavg's total: one small read per poll),
/// the stats are read once a second (progress and stall detection), sooner only as the
/// count so far says the end nears; from then on every `STATS_POLL`.
struct StatsSchedule {
    n: usize,
    /// The task total from which the stats are read every `STATS_POLL`; None: unknown, so
    /// from the start.
    tasks_needed: Option<usize>,
    started: Instant,
    next_read: Instant,
    /// When the reads every `STATS_POLL` began.
    fast_since: Option<Instant>,
    reads: usize,
}

impl StatsSchedule {
    fn new(n: usize, tasks_before: Option<usize>, started: Instant) -> Self {
        let vassal_tasks = TASKS_PER_VASSAL * n;
        // 1% short of the mark: other load's tasks come and go.
        let tasks_needed = tasks_before.map(|t| t + vassal_tasks - vassal_tasks / 100);
        StatsSchedule {
            n,
            tasks_needed,
            started,
            next_read: started,
            fast_since: None,
            reads: 0,
        }
    }

    /// Whether to read the stats at `now`, the machine having `tasks` tasks.
    fn due(&mut self, now: Instant, tasks: Option<usize>) -> bool {
        if self.fast_since.is_none() {
            let reached = match (self.tasks_needed, tasks) {
                (Some(needed), Some(tasks)) => tasks >= needed,
                _ => true,
            };
            if reached {
                self.fast_since = Some(now);
            }
        }
        self.fast_since.is_some() || now >= self.next_read
    }

    /// A read at `now` saw `running` vassals.
    fn read(&mut self, now: Instant, running: usize) {
        self.reads += 1;
        self.next_read = now + slow_period(now - self.started, running, self.n);
    }
}

/// The wait before the next read while the tasks are not there yet: as long as the start
/// has taken so far (reads at 5, 10, 20, 40 ms ...: a small start is not made to wait a
/// second for its first count), at most a second, or half of what the rest would take at
/// the pace so far when that is shorter. So the end is seen soon even when the task total
/// misses its mark (idle kernel workers and other load's tasks end meanwhile).
fn slow_period(elapsed: Duration, running: usize, n: usize) -> Duration {
    let backoff = elapsed.clamp(STATS_POLL, SLOW_STATS_POLL);
    if running == 0 {
        return backoff;
    }
    if running >= n {
        return STATS_POLL;
    }
    let rest = elapsed.mul_f64((n - running) as f64 / running as f64);
    (rest / 2).clamp(STATS_POLL, backoff)
}

/// How many vassals run, and who says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Running {
    /// The stats server.
    Stats(usize),
    /// /proc, while the stats are silent: uWSGI serves its stats from the loop that spawns,
    /// so it does not answer until it has spawned them all (about 30 s for 5000 here).
    Proc(usize),
}

impl Running {
    fn count(self) -> usize {
        match self {
            Running::Stats(k) | Running::Proc(k) => k,
        }
    }
}

/// What the stats say runs, or /proc when the stats are silent (not there yet, or no answer
/// in time).
fn running_count(session: &mut Session) -> BenchResult<Running> {
    match session.vassals_if_answering()? {
        Some(vassals) => Ok(Running::Stats(
            vassals.values().filter(|v| v.running).count(),
        )),
        None => Ok(Running::Proc(session.running_by_proc()?)),
    }
}

/// How often the start-all progress is printed while the stats are silent.
const PROGRESS_REPORT: Duration = Duration::from_secs(5);

/// The start-all watch: the best count so far and when it grew.
struct StartProgress {
    n: usize,
    best: usize,
    grew: Instant,
    reported: Instant,
}

impl StartProgress {
    fn new(n: usize, now: Instant) -> Self {
        StartProgress {
            n,
            best: 0,
            grew: now,
            reported: now,
        }
    }

    /// Take one count at `now`; an error when the count has not grown for `WAIT_LIMIT`.
    fn record(&mut self, running: Running, now: Instant) -> Result<(), String> {
        let (k, n) = (running.count(), self.n);
        if let Running::Proc(_) = running {
            if now - self.reported >= PROGRESS_REPORT {
                progress(&format!(
                    "{k} of {n} running (from /proc: the stats are silent)"
                ));
                self.reported = now;
            }
        }
        if k > self.best {
            (self.best, self.grew) = (k, now);
        } else if now - self.grew > WAIT_LIMIT {
            let source = match running {
                Running::Stats(_) => "the stats",
                Running::Proc(_) => "/proc: the stats are silent",
            };
            return Err(format!(
                "stuck at {k} of {n} vassals running (from {source}) for {WAIT_LIMIT:?}"
            ));
        }
        Ok(())
    }
}

/// Rename a new config into the directory; until a new runtime has an exec'd payload (then
/// the stats must say running, untimed). Also returns when the runtime process appeared.
fn new_config(session: &mut Session, name: &str) -> BenchResult<(Duration, Duration)> {
    let known = session.runtimes()?;
    let started = Instant::now();
    session.add_config(name)?;
    let mut forked: Option<Instant> = None;
    let (runtime, at) = poll_until("the new vassal's payload", PROC_POLL, WAIT_LIMIT, || {
        // One read of the supervisor's children per poll: at 5000 vassals each is a long
        // list, and the probe shares the two CPUs with what it measures.
        let current = session.runtimes()?;
        if forked.is_none() && current.len() > known.len() {
            forked = Some(Instant::now());
        }
        let found = new_runtime_with_payload(session, &known, &current);
        Ok(found.map(|(runtime, _)| runtime))
    })?;
    confirm_running(session, name, runtime)?;
    Ok((at - started, forked.unwrap_or(at) - started))
}

/// Give a running vassal's config a new mtime; until its runtime runs a new payload.
fn touch_reload(session: &mut Session, name: &str) -> BenchResult<Duration> {
    let (runtime, payload) = running_vassal(session, name, false)?;
    let started = Instant::now();
    session.touch_config(name)?;
    let ((), at) = poll_until("the reloaded payload", PROC_POLL, WAIT_LIMIT, || {
        Ok(session.payload_of(runtime, Some(payload)).map(|_| ()))
    })?;
    confirm_running(session, name, runtime)?;
    Ok(at - started)
}

/// SIGKILL a loyal vassal's payload; until a new runtime runs a new payload.
fn kill_respawn(session: &mut Session, name: &str) -> BenchResult<Duration> {
    let loyal = session.target.knows_loyalty();
    let (_, payload) = running_vassal(session, name, loyal)?;
    let known = session.runtimes()?;
    let started = Instant::now();
    sigkill(payload)?;
    let (runtime, at) = poll_until("the respawned payload", PROC_POLL, WAIT_LIMIT, || {
        let current = session.runtimes()?;
        Ok(new_runtime_with_payload(session, &known, &current).map(|(runtime, _)| runtime))
    })?;
    confirm_running(session, name, runtime)?;
    Ok(at - started)
}

/// Unlink a running vassal's config; until its runtime and payload are gone from /proc
/// (collected, not merely dead).
fn remove_gone(session: &mut Session, name: &str) -> BenchResult<Duration> {
    let (runtime, payload) = running_vassal(session, name, false)?;
    let started = Instant::now();
    session.remove_config(name)?;
    let ((), at) = poll_until("runtime and payload gone", PROC_POLL, WAIT_LIMIT, || {
        Ok((!procfs::exists(runtime) && !procfs::exists(payload)).then_some(()))
    })?;
    let key = session.stats_name(name);
    poll_until("the vassal gone from stats", STATS_POLL, WAIT_LIMIT, || {
        Ok((!session.vassals()?.contains_key(&key)).then_some(()))
    })?;
    Ok(at - started)
}

/// A runtime among `current` but not in `known` that runs an exec'd payload.
fn new_runtime_with_payload(
    session: &mut Session,
    known: &BTreeSet<Pid>,
    current: &BTreeSet<Pid>,
) -> Option<(Pid, Pid)> {
    current
        .difference(known)
        .find_map(|&runtime| session.payload_of(runtime, None).map(|p| (runtime, p)))
}

/// Wait (untimed) until the vassal runs, and loyal too if asked: its runtime and payload.
fn running_vassal(session: &mut Session, name: &str, loyal: bool) -> BenchResult<(Pid, Pid)> {
    let what = format!("{name} running{}", if loyal { " and loyal" } else { "" });
    let (runtime, _) = poll_until(&what, STATS_POLL, WAIT_LIMIT, || {
        Ok(session
            .vassal(name)?
            .filter(|v| v.running && (v.loyal || !loyal))
            .and_then(|v| v.pid))
    })?;
    let (payload, _) = poll_until("its payload", PROC_POLL, WAIT_LIMIT, || {
        Ok(session.payload_of(runtime, None))
    })?;
    Ok((runtime, payload))
}

/// The stats agree: `name` is running with runtime `runtime`.
fn confirm_running(session: &mut Session, name: &str, runtime: Pid) -> BenchResult<()> {
    let what = format!("stats to show {name} running as {runtime}");
    poll_until(&what, STATS_POLL, WAIT_LIMIT, || {
        Ok(session
            .vassal(name)?
            .filter(|v| v.running && v.pid == Some(runtime))
            .map(|_| ()))
    })
    .map(|_| ())
}

/// The supervisor's and its runtimes' memory (every descendant that is not a payload), and
/// what signals the payloads inherited ignored.
fn memory(session: &mut Session) -> BenchResult<Memory> {
    let pid = session.pid;
    let read = |pid: Pid, key: &str| procfs::status_field(pid, key).unwrap_or(0);
    session.runtimes()?;
    let (payloads, runtimes): (Vec<Pid>, Vec<Pid>) = procfs::descendants(pid)
        .into_iter()
        .partition(|&p| procfs::comm(p).as_deref() == Some(PAYLOAD_COMM));
    let masks: Vec<String> = payloads
        .iter()
        .filter_map(|&p| procfs::status_text(p, "SigIgn"))
        .collect();
    let ignoring: Vec<&String> = masks.iter().filter(|m| !is_zero_mask(m)).collect();
    Ok(Memory {
        supervisor_rss: read(pid, "VmRSS"),
        supervisor_peak_rss: read(pid, "VmHWM"),
        supervisor_private: procfs::private_kib(pid).unwrap_or(0),
        runtimes: runtimes.len(),
        runtimes_rss: runtimes.iter().map(|&r| read(r, "VmRSS")).sum(),
        runtimes_private: runtimes
            .iter()
            .map(|&r| procfs::private_kib(r).unwrap_or(0))
            .sum(),
        payloads: masks.len(),
        payloads_ignoring: ignoring.len(),
        sig_ign_example: ignoring.first().map(|m| m.to_string()),
    })
}

/// `STATS_READS` timed reads of the whole stats document, each listing all `n` vassals.
fn stats_reads(session: &mut Session, n: usize) -> BenchResult<StatsReads> {
    let mut reads = StatsReads::default();
    for _ in 0..STATS_READS {
        let (took, bytes, listed) = session.timed_stats_read()?;
        if listed != n {
            return Err(format!(
                "a timed stats read listed {listed} vassals, not {n}"
            ));
        }
        reads.samples.push(took);
        reads.bytes = bytes;
        interrupt::sleep(STATS_READ_GAP)?;
    }
    progress(&format!(
        "stats read: median {:.1?}, max {:.1?} ({:.2} MB)",
        reads.samples.median(),
        reads.samples.max(),
        reads.bytes as f64 / 1e6
    ));
    Ok(reads)
}

fn is_zero_mask(mask: &str) -> bool {
    mask.chars().all(|c| c == '0')
}

/// Touch every vassal in `names` at once; each sample ends when that vassal's runtime runs
/// a new payload, or is a miss after `patience`.
fn touch_together(
    session: &mut Session,
    names: &[String],
    patience: Duration,
) -> BenchResult<Samples> {
    let waiting = act_together(session, names, |s, n| s.touch_config(n))?;
    wait_each(waiting, patience, |(runtime, payload)| {
        session.payload_of(runtime, Some(payload)).is_some()
    })
}

/// Unlink every config in `names` at once; each sample ends when that vassal's runtime and
/// payload are gone from /proc, or is a miss after `REMOVE_PATIENCE`.
fn remove_together(session: &mut Session, names: &[String]) -> BenchResult<Samples> {
    let waiting = act_together(session, names, |s, n| s.remove_config(n))?;
    wait_each(waiting, REMOVE_PATIENCE, |(runtime, payload)| {
        !procfs::exists(runtime) && !procfs::exists(payload)
    })
}

/// Wait (untimed) until every vassal in `names` runs, then `act` on all of them at once:
/// their runtimes and payloads, and when the acts began.
fn act_together(
    session: &mut Session,
    names: &[String],
    act: impl Fn(&Session, &str) -> BenchResult<()>,
) -> BenchResult<(Vec<(Pid, Pid)>, Instant)> {
    let mut waiting = Vec::new();
    for name in distinct(names) {
        waiting.push(running_vassal(session, name, false)?);
    }
    let started = Instant::now();
    for name in distinct(names) {
        act(session, name)?;
    }
    Ok((waiting, started))
}

/// The names once each, in order.
fn distinct(names: &[String]) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .map(String::as_str)
        .collect()
}

/// Poll every item until `done` says so (a sample from `started`) or `patience` is over (a
/// miss).
fn wait_each<T: Copy>(
    (mut waiting, started): (Vec<T>, Instant),
    patience: Duration,
    mut done: impl FnMut(T) -> bool,
) -> BenchResult<Samples> {
    let mut samples = Samples::default();
    while !waiting.is_empty() && started.elapsed() < patience {
        interrupt::check()?;
        waiting.retain(|&item| {
            let finished = done(item);
            if finished {
                samples.push(started.elapsed());
            }
            !finished
        });
        std::thread::sleep(PROC_POLL);
    }
    for _ in waiting {
        samples.miss(patience);
    }
    Ok(samples)
}

/// `options.samples` new-config latencies with `n` vassals running: the spawn cost alone.
pub fn new_config_samples(
    target: &dyn Target,
    n: usize,
    options: &Options,
) -> BenchResult<Samples> {
    let (mut session, _) = start_supervisor(target, n, PAYLOAD)?;
    let added: Vec<String> = (0..options.samples)
        .map(|k| format!("new-{k:03}"))
        .collect();
    let samples = sample_each(&added, |name| Ok(new_config(&mut session, name)?.0))?;
    session.stop()?;
    Ok(samples)
}

/// Orphan check: a few vassals whose payload forks a child (`sh -c 'sleep & exec sleep'`),
/// then SIGTERM the supervisor: what is left alive, and how long the stop took.
pub fn run_orphans(target: &dyn Target) -> BenchResult<StopReport> {
    let (mut session, _) = start_supervisor(target, ORPHAN_VASSALS, FORKING_PAYLOAD)?;
    // Each payload's own child must exist before the stop.
    poll_until("the payloads' children", PROC_POLL, WAIT_LIMIT, || {
        let all = procfs::descendants(session.pid);
        let sleeps = all
            .iter()
            .filter(|&&p| procfs::comm(p).as_deref() == Some(PAYLOAD_COMM))
            .count();
        Ok((sleeps >= 2 * ORPHAN_VASSALS).then_some(()))
    })?;
    interrupt::sleep(SETTLE)?;
    session.stop()
}

/// Counters of the supervisor and its runtimes at one moment.
struct CpuReading {
    ticks: u64,
    main_ns: u64,
    wakeups: u64,
    preemptions: u64,
    runtimes_ticks: u64,
}

fn cpu_reading(pid: Pid, runtimes: &BTreeSet<Pid>) -> CpuReading {
    let switches = |key| procfs::status_field(pid, key).unwrap_or(0);
    CpuReading {
        ticks: procfs::cpu_ticks(pid).unwrap_or(0),
        main_ns: procfs::main_thread_cpu_ns(pid).unwrap_or(0),
        wakeups: switches("voluntary_ctxt_switches"),
        preemptions: switches("nonvoluntary_ctxt_switches"),
        runtimes_ticks: runtimes.iter().filter_map(|&r| procfs::cpu_ticks(r)).sum(),
    }
}

/// Nothing but sleeping payloads for `window`: what do the supervisor and runtimes spend?
fn idle(session: &mut Session, window: Duration) -> BenchResult<Idle> {
    let runtimes = session.runtimes()?;
    let before = cpu_reading(session.pid, &runtimes);
    interrupt::sleep(window)?;
    let after = cpu_reading(session.pid, &runtimes);
    session.check_alive()?;
    Ok(Idle {
        window,
        supervisor_ticks: after.ticks - before.ticks,
        supervisor_main_thread_ns: after.main_ns - before.main_ns,
        supervisor_wakeups: after.wakeups - before.wakeups,
        supervisor_preemptions: after.preemptions - before.preemptions,
        runtimes_ticks: after.runtimes_ticks.saturating_sub(before.runtimes_ticks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_progress_grows_on_proc_counts_while_the_stats_are_silent() {
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut progress = StartProgress::new(100, t0);
        assert!(progress.record(Running::Proc(0), at(20)).is_ok());
        assert!(progress.record(Running::Proc(40), at(40)).is_ok());
        assert!(progress.record(Running::Proc(80), at(65)).is_ok());
        assert!(progress.record(Running::Proc(80), at(90)).is_ok());
        let stuck = progress.record(Running::Proc(80), at(96)).unwrap_err();
        assert!(stuck.contains("stuck at 80 of 100"), "{stuck}");
        assert!(stuck.contains("/proc"), "{stuck}");
    }

    #[test]
    fn stats_are_read_rarely_until_the_vassals_tasks_are_there() {
        let t0 = Instant::now();
        let ms = |ms| t0 + Duration::from_millis(ms);
        // 100 tasks before, 1000 vassals: every 5 ms from 100 + 2000 - 20 tasks.
        let mut schedule = StatsSchedule::new(1000, Some(100), t0);
        assert!(schedule.due(t0, Some(101)));
        schedule.read(t0, 0);
        assert!(!schedule.due(ms(4), Some(900)));
        assert!(schedule.due(ms(5), Some(900)));
        // Each read waits as long as the start has taken so far.
        schedule.read(ms(40), 0);
        assert!(!schedule.due(ms(79), Some(900)));
        assert!(schedule.due(ms(80), Some(900)));
        // ... a second at the most.
        schedule.read(ms(2000), 0);
        assert!(!schedule.due(ms(2995), Some(1500)));
        assert!(schedule.due(ms(3000), Some(1500)));
        schedule.read(ms(3000), 300);
        assert!(!schedule.due(ms(3005), Some(2079)));
        assert!(schedule.due(ms(3010), Some(2080)));
        assert_eq!(schedule.fast_since, Some(ms(3010)));
        assert!(schedule.due(ms(3015), Some(1000)), "fast stays fast");
    }

    #[test]
    fn stats_are_read_every_poll_when_the_task_count_is_unknown() {
        let t0 = Instant::now();
        let mut schedule = StatsSchedule::new(10, None, t0);
        schedule.read(t0, 0);
        assert!(schedule.due(t0 + STATS_POLL, Some(5)));
        let mut schedule = StatsSchedule::new(10, Some(50), t0);
        schedule.read(t0, 0);
        assert!(schedule.due(t0 + STATS_POLL, None));
    }

    #[test]
    fn slow_reads_come_sooner_as_the_end_nears() {
        let secs = Duration::from_secs;
        assert_eq!(slow_period(secs(3), 0, 5000), SLOW_STATS_POLL);
        // Nothing running yet: as long again as the start took so far.
        assert_eq!(slow_period(Duration::ZERO, 0, 100), STATS_POLL);
        let ms = Duration::from_millis;
        assert_eq!(slow_period(ms(40), 0, 100), ms(40));
        // 20 of 100 after 40 ms: the rest in 160 ms, but no later than 40 ms from now.
        assert_eq!(slow_period(ms(40), 20, 100), ms(40));
        // 4000 of 5000 in 8 s: the rest in about 2 s, read again in 1 s.
        assert_eq!(slow_period(secs(8), 4000, 5000), SLOW_STATS_POLL);
        // 4900 of 5000 in 9.8 s: the rest in 0.2 s, read again in 0.1 s.
        let soon = slow_period(Duration::from_millis(9800), 4900, 5000);
        assert!((soon.as_secs_f64() - 0.1).abs() < 1e-9, "{soon:?}");
        assert_eq!(slow_period(secs(10), 4999, 5000), STATS_POLL);
        assert_eq!(slow_period(secs(10), 5000, 5000), STATS_POLL);
    }

    #[test]
    fn start_progress_names_the_stats_when_they_stall() {
        let t0 = Instant::now();
        let mut progress = StartProgress::new(10, t0);
        assert!(progress.record(Running::Stats(3), t0).is_ok());
        let later = t0 + WAIT_LIMIT + Duration::from_secs(1);
        let stuck = progress.record(Running::Stats(3), later).unwrap_err();
        assert!(stuck.contains("stuck at 3 of 10 vassals running (from the stats)"));
    }
}
