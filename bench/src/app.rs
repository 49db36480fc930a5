//! The uWSGI-application workload (`--workload uwsgi-app`): N real uWSGI python vassals (a
//! tiny WSGI app each, on its own 127.0.0.1 port, master + 1 worker), run by this project's
//! emperor (each config a uWSGI application: the runtime execs the real uWSGI with the config
//! over uWSGI's emperor config channel) and by uWSGI's own emperor over the same files. For
//! each: configs dropped into a running supervisor until every app answers 200; memory; every
//! config touched until every app answers from a reloaded instance, with requests to every
//! app all the while (failures counted); every config removed until every port is closed and
//! every process gone; the supervisor stopped.

use crate::cpu::{self, CpuSplit, WindowStart};
use crate::http::{self, Answer, Failure, Next};
use crate::interrupt;
use crate::measure::{STATS_POLL, WAIT_LIMIT};
use crate::procfs::{self, Pid};
use crate::samples::{poll_until, Samples};
use crate::session::{BenchResult, Session, StopReport};
use crate::target::{emperor_command, stats_list, Jail, Layout, Target, VassalView, UWSGI_BINARY};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The WSGI app every vassal runs: its answer names the instance (the pid that imported it
/// and when) and the worker. A graceful reload re-execs the master, which imports the app
/// again: a new token, the same for every request until the next reload.
pub const APP_PY: &str = r#"import os, time
TOKEN = '%d-%d' % (os.getpid(), time.monotonic_ns())
def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%s %d\n' % (TOKEN, os.getpid())).encode()]
"#;

/// The config of vassal on `port`, running `app`: the same file under both emperors.
pub fn config_text(port: u16, app: &Path) -> String {
    format!(
        "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\n\
         master = true\nprocesses = 1\ndisable-logging = true\n",
        app.display()
    )
}

/// The longest a request may wait for its answer before it counts as failed (a timeout).
const REQUEST_PATIENCE: Duration = Duration::from_secs(60);
/// How long after the last app reloaded the request loop goes on (failures right after a
/// reload count too).
const RELOAD_TAIL: Duration = Duration::from_secs(2);
/// Quiet time before the memory reading: our runtimes put their sleep off while the emperor
/// still starts others (until a second after its last start, looked at every 4 s at most),
/// then by up to 8 s while the machine is busy.
const SETTLE: Duration = Duration::from_secs(20);
/// uWSGI's emperor stops a removed vassal within its 30 s mercy, after a 3 s scan.
const REMOVE_LIMIT: Duration = Duration::from_secs(40);
/// /proc polling period of the removal.
const PROC_POLL: Duration = Duration::from_millis(5);
/// How long a connect probe of the removal may hang (a full backlog drops SYNs) before it
/// counts as "still open" and is tried again.
const CONNECT_PATIENCE: Duration = Duration::from_millis(200);
/// The first port handed out; ports below the ephemeral range (32768 on Linux).
const FIRST_PORT: u16 = 20_000;
const LAST_PORT: u16 = 32_000;

/// uWSGI's `emperor-freq` default: with nothing else to handle, its loop wakes (and scans
/// the directory) this often; it also scans after every event it handles.
const UWSGI_SCAN_PERIOD: Duration = Duration::from_secs(3);

/// Whose emperor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Emperor,
    Uwsgi,
}

/// A supervisor of uWSGI applications.
#[derive(Debug, Clone)]
pub struct AppTarget {
    pub who: Who,
    pub binary: PathBuf,
    pub jail: Jail,
}

impl Target for AppTarget {
    fn name(&self) -> &str {
        match self.who {
            Who::Emperor => "emperor",
            Who::Uwsgi => "uWSGI",
        }
    }

    /// Ours runs the same uWSGI binary as uWSGI's emperor (`--binary-path`), with the spawn
    /// throttle off as in the sleep workload.
    fn command(&self, layout: &Layout) -> Command {
        let mut command = emperor_command(&self.binary, layout, &self.jail);
        if self.who == Who::Emperor {
            command.args(["--emperor-throttle", "0", "--binary-path", UWSGI_BINARY]);
        }
        command
    }

    fn config_text(&self, _payload: &str) -> String {
        String::new()
    }

    fn vassals(&self, stats: &Value) -> HashMap<String, VassalView> {
        match self.who {
            Who::Emperor => stats_list(stats, "name", |v| VassalView {
                pid: v["pid"].as_i64().filter(|&p| p > 0).map(|p| p as Pid),
                running: v["state"] == "running",
                loyal: v["loyal"] == 1,
            }),
            Who::Uwsgi => stats_list(stats, "id", |v| {
                let pid = v["pid"].as_i64().filter(|&p| p > 0).map(|p| p as Pid);
                VassalView {
                    pid,
                    running: pid.is_some(),
                    loyal: v["loyal"].as_i64().unwrap_or(0) > 0,
                }
            }),
        }
    }

    fn knows_loyalty(&self) -> bool {
        true
    }
}

/// Why uWSGI's emperor is not run in `jail`, if it is not: in a network namespace of its
/// own, its vassal binds its http-socket there, out of the benchmark's reach (ours binds it
/// in the runtime, before the jail); in a user namespace its vassals are cursed (see the
/// sleep workload).
pub fn uwsgi_absent_by_design(jail: &Jail) -> Option<&'static str> {
    if jail.has_user_namespace() {
        Some("not run: uWSGI 2.0 maps no uid/gid into a vassal's user namespace")
    } else if jail.clone.split(',').any(|n| n == "net") {
        Some("not run: its vassal would bind its http-socket in a network namespace of its own, unreachable")
    } else {
        None
    }
}

/// Per-vassal latencies of one phase, and when the last one arrived.
#[derive(Debug, Clone, Default)]
pub struct Spread {
    pub samples: Samples,
    /// From the phase's first act until the last vassal's event; None when some never came.
    pub last: Option<Duration>,
}

/// What the request loop saw during the reload.
#[derive(Debug, Clone, Default)]
pub struct RequestCount {
    pub made: u64,
    /// Failures by kind (refused, reset, timeout, not 200, other).
    pub failed: BTreeMap<&'static str, u64>,
    /// The slowest answer (200) during the phase.
    pub slowest: Duration,
    /// One failure's text, for the report.
    pub example: Option<String>,
}

impl RequestCount {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// Memory with N apps running, summed (KiB).
#[derive(Debug, Clone, Default)]
pub struct AppMemory {
    /// The supervisor and its helpers (ours: the config reader; none of a vassal's).
    pub supervisor_rss: u64,
    pub supervisor_pss: u64,
    pub supervisor_private: u64,
    /// Our runtimes (none under uWSGI's emperor: its vassal is the uWSGI master).
    pub runtimes: usize,
    pub runtimes_pss: u64,
    pub runtimes_private: u64,
    /// uWSGI masters and workers.
    pub uwsgi_processes: usize,
    pub uwsgi_pss: u64,
    pub uwsgi_private: u64,
}

#[derive(Debug, Clone)]
pub struct AppResult {
    pub target: String,
    pub jail: String,
    pub vassals: usize,
    pub first_ok: Spread,
    pub start_cpu: Option<CpuSplit>,
    /// The start window's length (for the CPU shares).
    pub start_window: Duration,
    pub memory: AppMemory,
    pub reload: Spread,
    pub requests: RequestCount,
    /// Ours: reloads whose uWSGI never asked for its config within the mercy and was killed
    /// (the runtime's log line).
    pub mercy_kills: Option<usize>,
    pub remove: Spread,
    /// The part of `remove` until the port was closed.
    pub remove_port: Samples,
    pub stop: StopReport,
    /// The phases before which the machine was not quiet within 20 s (other load): they
    /// were measured anyway.
    pub busy_before: Vec<&'static str>,
}

/// Ports handed out across the whole run: each size gets fresh ones.
pub struct Ports {
    next: u16,
}

impl Ports {
    pub fn new() -> Self {
        Ports { next: FIRST_PORT }
    }

    /// `n` ports nothing listens on now.
    pub fn take(&mut self, n: usize) -> BenchResult<Vec<u16>> {
        let mut ports = Vec::with_capacity(n);
        while ports.len() < n {
            if self.next >= LAST_PORT {
                return Err(format!(
                    "no {n} free ports between {FIRST_PORT} and {LAST_PORT}"
                ));
            }
            let port = self.next;
            self.next += 1;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                ports.push(port);
            }
        }
        Ok(ports)
    }
}

/// A request's wait before the next one to the same app: at least 20 ms, and 1 ms per app
/// (at most about 1000 requests a second in all, whatever N).
fn request_gap(n: usize) -> Duration {
    Duration::from_millis(n as u64).max(Duration::from_millis(20))
}

/// The wait before asking again a port that refused (nothing listens yet), or a removed
/// app's port that still accepts: 10 ms, and 0.1 ms per app.
fn retry_gap(n: usize) -> Duration {
    Duration::from_micros(100 * n as u64).max(Duration::from_millis(10))
}

/// How long the start and the reload of N apps may take.
fn phase_limit(n: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(200 * n as u64)
}

fn progress(message: &str) {
    eprintln!("  {message}");
}

/// Every measurement of `n` apps under `target`; its log is copied into `keep_logs`.
pub fn run_size(
    target: &AppTarget,
    n: usize,
    ports: &[u16],
    keep_logs: Option<&Path>,
) -> BenchResult<AppResult> {
    let mut session = Session::prepared(target, 0, "")?;
    let result = measure(&mut session, target, n, ports);
    if let Some(dir) = keep_logs {
        let kept = dir.join(format!(
            "uwsgi-app-{}-{}-{n}.log",
            target.name(),
            target.jail.name
        ));
        match std::fs::copy(&session.layout.log, &kept) {
            Ok(_) => progress(&format!("log kept in {}", kept.display())),
            Err(e) => progress(&format!("cannot keep the log in {}: {e}", kept.display())),
        }
    }
    result
}

fn name(i: usize) -> String {
    format!("app-{i:05}")
}

fn measure(
    session: &mut Session,
    target: &AppTarget,
    n: usize,
    ports: &[u16],
) -> BenchResult<AppResult> {
    let app = session.work_dir().join("app.py");
    std::fs::write(&app, APP_PY).map_err(|e| format!("{}: {e}", app.display()))?;
    let names: Vec<String> = (0..n).map(name).collect();
    for (name, &port) in names.iter().zip(ports) {
        session.stage_config(name, &config_text(port, &app))?;
    }
    session.spawn()?;
    poll_until("the supervisor's stats", STATS_POLL, WAIT_LIMIT, || {
        Ok(session.vassals_if_answering()?.map(|_| ()))
    })?;

    let mut busy_before = Vec::new();
    if !cpu::settle()? {
        busy_before.push("start");
    }
    align_to_scan(session, target)?;
    let window = WindowStart::now();
    let (first_ok, start_window) = first_ok(session, &names, ports)?;
    let pid = session.pid;
    let start_cpu = window.end(|| cpu::tree_ns(pid));
    session.check_alive()?;
    progress(&format!(
        "config dropped -> 200: {}",
        spread_text(&first_ok)
    ));
    if first_ok.samples.missed > 0 {
        return Err(format!(
            "{} of {n} apps never answered 200 within {:?}; log tail:\n{}",
            first_ok.samples.missed,
            phase_limit(n),
            session.log_tail(20)
        ));
    }

    interrupt::sleep(SETTLE)?;
    let memory = memory(session, target, &names)?;
    progress(&format!(
        "memory: {} uWSGI processes, {} runtimes",
        memory.uwsgi_processes, memory.runtimes
    ));

    if !cpu::settle()? {
        busy_before.push("reload");
    }
    let log_before = log_text(session);
    let (reload, requests) = reload(session, target, &names, ports)?;
    session.check_alive()?;
    let log_after = log_text(session);
    let mercy_kills = (target.who == Who::Emperor).then(|| {
        log_after
            .get(log_before.len()..)
            .unwrap_or_default()
            .lines()
            .filter(|l| is_mercy_kill(l))
            .count()
    });
    progress(&format!(
        "touch -> reloaded: {}; {} requests, {} failed",
        spread_text(&reload),
        requests.made,
        requests.failed_total()
    ));

    if !cpu::settle()? {
        busy_before.push("removal");
    }
    let (remove, remove_port) = remove(session, target, &names, ports)?;
    progress(&format!("remove -> gone: {}", spread_text(&remove)));
    let stop = session.stop()?;
    Ok(AppResult {
        target: target.name().into(),
        jail: target.jail.name.clone(),
        vassals: n,
        first_ok,
        start_cpu,
        start_window,
        memory,
        reload,
        requests,
        mercy_kills,
        remove,
        remove_port,
        stop,
        busy_before,
    })
}

/// Before an act on the configs: for uWSGI's emperor, a stats read (an event, after which
/// its loop scans) and then half its scan period, so that the act waits for the next scan
/// as long as one at a random moment does on average (1.5 s), not a whole period or none.
fn align_to_scan(session: &mut Session, target: &AppTarget) -> BenchResult<()> {
    if target.who == Who::Uwsgi {
        session.vassals()?;
        interrupt::sleep(UWSGI_SCAN_PERIOD / 2)?;
    }
    Ok(())
}

/// A runtime's log line saying it killed a reloading uWSGI that never asked for its config
/// (since 7a3f219: within worker-reload-mercy plus reload-mercy; before it, within the
/// 5 s reload-mercy, "payload still running after 5s of mercy").
fn is_mercy_kill(line: &str) -> bool {
    line.contains("SIGKILL")
        && (line.contains("never asked for its config") || line.contains("of mercy"))
}

fn log_text(session: &Session) -> String {
    std::fs::read_to_string(&session.layout.log).unwrap_or_default()
}

pub fn spread_text(s: &Spread) -> String {
    format!(
        "median {:.2?}, p99 {:.2?}, last {}{}",
        s.samples.median(),
        s.samples.percentile(99),
        s.last.map_or("never".into(), |d| format!("{d:.2?}")),
        if s.samples.missed > 0 {
            format!(" ({} never)", s.samples.missed)
        } else {
            String::new()
        }
    )
}

/// Per-vassal latencies from `acted[i]` to `done[i]`, missing ones counted as misses of
/// `limit`; `last` from `first_act`.
fn spread(
    acted: &[Instant],
    done: &[Option<Instant>],
    first_act: Instant,
    limit: Duration,
) -> Spread {
    let mut samples = Samples::default();
    for (a, d) in acted.iter().zip(done) {
        match d {
            Some(d) => samples.push(d.saturating_duration_since(*a)),
            None => samples.miss(limit),
        }
    }
    let last = done
        .iter()
        .copied()
        .collect::<Option<Vec<Instant>>>()
        .and_then(|all| all.into_iter().max())
        .map(|d| d - first_act);
    Spread { samples, last }
}

/// Rename every staged config into the directory, one after the other; each app's latency
/// ends with its first 200 (a port that refuses is asked again after `retry_gap`; a request
/// to a port that is bound but not served yet waits for its answer).
fn first_ok(
    session: &mut Session,
    names: &[String],
    ports: &[u16],
) -> BenchResult<(Spread, Duration)> {
    let n = names.len();
    let started = Instant::now();
    let mut dropped = Vec::with_capacity(n);
    for name in names {
        session.commit_config(name)?;
        dropped.push(Instant::now());
    }
    let retry = retry_gap(n);
    let mut done: Vec<Option<Instant>> = vec![None; n];
    let limit = phase_limit(n);
    http::drive(
        ports,
        REQUEST_PATIENCE,
        started + limit,
        false,
        |a: Answer| match a.result {
            Ok(_) => {
                done[a.index] = Some(a.at);
                Next::Done
            }
            Err(_) => Next::After(retry),
        },
    )?;
    let window = started.elapsed();
    Ok((spread(&dropped, &done, started, limit), window))
}

/// Each app's answer now (its instance's token), asking again until it answers.
fn tokens(ports: &[u16]) -> BenchResult<Vec<String>> {
    let mut tokens = vec![String::new(); ports.len()];
    let left = http::drive(
        ports,
        REQUEST_PATIENCE,
        Instant::now() + WAIT_LIMIT,
        false,
        |a: Answer| match a.result {
            Ok(body) => {
                tokens[a.index] = instance(body).to_string();
                Next::Done
            }
            Err(_) => Next::After(Duration::from_millis(10)),
        },
    )?;
    if left > 0 {
        return Err(format!("{left} apps did not answer before the reload"));
    }
    Ok(tokens)
}

/// The instance part of an answer (`TOKEN worker-pid`).
fn instance(body: &str) -> &str {
    body.split_whitespace().next().unwrap_or_default()
}

/// Touch every config, one after the other, with a request loop over every app (each asked
/// again `request_gap` after its answer); an app's latency ends with its first answer from a
/// new instance. The loop goes on `RELOAD_TAIL` after the last.
fn reload(
    session: &mut Session,
    target: &AppTarget,
    names: &[String],
    ports: &[u16],
) -> BenchResult<(Spread, RequestCount)> {
    let n = names.len();
    let before = tokens(ports)?;
    align_to_scan(session, target)?;
    let gap = request_gap(n);
    let limit = phase_limit(n);
    let started = Instant::now();
    let mut touched = Vec::with_capacity(n);
    for name in names {
        session.touch_config(name)?;
        touched.push(Instant::now());
    }
    let mut done: Vec<Option<Instant>> = vec![None; n];
    let mut pending = n;
    let mut all_at: Option<Instant> = None;
    let mut count = RequestCount::default();
    http::drive(
        ports,
        REQUEST_PATIENCE,
        started + limit + RELOAD_TAIL,
        false,
        |a: Answer| {
            count.made += 1;
            match a.result {
                Ok(body) => {
                    count.slowest = count.slowest.max(a.took);
                    if done[a.index].is_none() && instance(body) != before[a.index] {
                        done[a.index] = Some(a.at);
                        pending -= 1;
                        if pending == 0 {
                            all_at = Some(a.at);
                        }
                    }
                }
                Err(failure) => {
                    *count.failed.entry(failure.kind()).or_default() += 1;
                    if count.example.is_none() {
                        count.example = Some(format!("port {}: {failure:?}", ports[a.index]));
                    }
                }
            }
            match all_at {
                Some(at) if a.at >= at + RELOAD_TAIL => Next::Done,
                _ => Next::After(gap),
            }
        },
    )?;
    Ok((spread(&touched, &done, started, limit), count))
}

/// Every app's processes now, by the supervisor's stats: ours the runtime and all under it,
/// uWSGI's the master and its workers.
fn vassal_trees(session: &mut Session, names: &[String]) -> BenchResult<Vec<BTreeSet<Pid>>> {
    session.tree();
    let vassals = session.vassals()?;
    names
        .iter()
        .map(|name| {
            let key = session.stats_name(name);
            let pid = vassals
                .get(&key)
                .and_then(|v| v.pid)
                .ok_or_else(|| format!("{key}: not in the stats with a pid"))?;
            let mut tree = procfs::descendants(pid);
            tree.insert(pid);
            Ok(tree)
        })
        .collect()
}

/// Unlink every config, one after the other; an app's latency ends when its port refuses
/// connections (probed every `retry_gap`) and every process it had is gone from /proc.
fn remove(
    session: &mut Session,
    target: &AppTarget,
    names: &[String],
    ports: &[u16],
) -> BenchResult<(Spread, Samples)> {
    let n = names.len();
    let trees = vassal_trees(session, names)?;
    align_to_scan(session, target)?;
    let limit = REMOVE_LIMIT + Duration::from_millis(50 * n as u64);
    let retry = retry_gap(n);
    let started = Instant::now();
    let mut removed = Vec::with_capacity(n);
    for name in names {
        session.remove_config(name)?;
        removed.push(Instant::now());
    }
    let deadline = started + limit;
    let mut closed: Vec<Option<Instant>> = vec![None; n];
    let gone: Vec<Option<Instant>> =
        std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let mut gone: Vec<Option<Instant>> = vec![None; n];
                while Instant::now() < deadline && gone.iter().any(Option::is_none) {
                    if interrupt::check().is_err() {
                        break;
                    }
                    for (i, tree) in trees.iter().enumerate() {
                        if gone[i].is_none() && tree.iter().all(|&p| !procfs::exists(p)) {
                            gone[i] = Some(Instant::now());
                        }
                    }
                    std::thread::sleep(PROC_POLL);
                }
                gone
            });
            let probed = http::drive(ports, CONNECT_PATIENCE, deadline, true, |a: Answer| match a
                .result
            {
                Err(Failure::Refused) => {
                    closed[a.index] = Some(a.at);
                    Next::Done
                }
                _ => Next::After(retry),
            });
            let gone = watcher.join().unwrap_or_default();
            probed.map(|_| gone)
        })?;
    interrupt::check()?;
    let both: Vec<Option<Instant>> = closed
        .iter()
        .zip(&gone)
        .map(|(c, g)| Some((*c)?.max((*g)?)))
        .collect();
    let port = spread(&removed, &closed, started, limit).samples;
    Ok((spread(&removed, &both, started, limit), port))
}

/// Memory with every app running: the supervisor and its helpers, our runtimes, the uWSGI
/// masters and workers.
fn memory(session: &mut Session, target: &AppTarget, names: &[String]) -> BenchResult<AppMemory> {
    let trees = vassal_trees(session, names)?;
    let vassal_pids: BTreeSet<Pid> = trees.iter().flatten().copied().collect();
    let read = |pid: Pid| procfs::pss_and_private_kib(pid).unwrap_or((0, 0));
    let rss = |pid: Pid| procfs::status_field(pid, "VmRSS").unwrap_or(0);
    let mut m = AppMemory::default();
    let helpers: Vec<Pid> = std::iter::once(session.pid)
        .chain(
            procfs::descendants(session.pid)
                .into_iter()
                .filter(|p| !vassal_pids.contains(p)),
        )
        .collect();
    for pid in helpers {
        let (pss, private) = read(pid);
        m.supervisor_rss += rss(pid);
        m.supervisor_pss += pss;
        m.supervisor_private += private;
    }
    for tree in &trees {
        for &pid in tree {
            let (pss, private) = read(pid);
            let is_uwsgi = procfs::comm(pid).is_some_and(|c| c.starts_with("uwsgi"));
            if is_uwsgi {
                m.uwsgi_processes += 1;
                m.uwsgi_pss += pss;
                m.uwsgi_private += private;
            } else if target.who == Who::Emperor {
                m.runtimes += 1;
                m.runtimes_pss += pss;
                m.runtimes_private += private;
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_count_the_missing_and_the_last() {
        let t0 = Instant::now();
        let ms = |m| Duration::from_millis(m);
        let acted = [t0, t0 + ms(10), t0 + ms(20)];
        let done = [Some(t0 + ms(100)), Some(t0 + ms(50)), Some(t0 + ms(400))];
        let s = spread(&acted, &done, t0, ms(1000));
        assert_eq!(s.samples.median(), ms(100));
        assert_eq!(s.samples.max(), ms(380));
        assert_eq!(s.last, Some(ms(400)));
        let s = spread(&acted, &[None, done[1], done[2]], t0, ms(1000));
        assert_eq!((s.samples.missed, s.last), (1, None));
    }

    #[test]
    fn the_request_loop_is_bounded_whatever_n() {
        assert_eq!(request_gap(10), Duration::from_millis(20));
        assert_eq!(request_gap(500), Duration::from_millis(500));
        assert_eq!(retry_gap(10), Duration::from_millis(10));
        assert_eq!(retry_gap(500), Duration::from_millis(50));
    }

    #[test]
    fn mercy_kills_are_counted_in_the_runtime_log_before_and_after_7a3f219() {
        assert!(is_mercy_kill("WARN vassal{config=a.ini}: payload still running after 5s of mercy (its reload never asked for its config): SIGKILL"));
        assert!(is_mercy_kill("WARN vassal{config=a.ini}: uWSGI's reload never asked for its config within 65s (worker-reload-mercy plus reload-mercy): SIGKILL"));
        assert!(!is_mercy_kill("INFO uWSGI reloads on the new config"));
    }

    #[test]
    fn an_instance_is_the_first_word_of_the_answer() {
        assert_eq!(instance("12-345 13\n"), "12-345");
        assert_eq!(instance(""), "");
    }

    #[test]
    fn uwsgi_runs_only_where_its_vassal_can_be_reached() {
        let jail = |name| Jail::parse(name).unwrap();
        assert!(uwsgi_absent_by_design(&jail("plain")).is_none());
        assert!(uwsgi_absent_by_design(&jail("full")).is_some());
        assert!(uwsgi_absent_by_design(&jail("user")).is_some());
    }

    #[test]
    fn the_same_config_names_the_app_and_its_port() {
        let text = config_text(20001, Path::new("/tmp/x/app.py"));
        assert!(text.contains("http-socket = 127.0.0.1:20001\n"));
        assert!(text.contains("wsgi-file = /tmp/x/app.py\n"));
        assert!(text.contains("plugins = python3\n") && text.contains("processes = 1\n"));
    }
}
