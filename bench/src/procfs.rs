//! What the benchmark reads from /proc: process trees, memory and CPU counters.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::OnceLock;

pub type Pid = i32;

/// Direct children of `pid`, from /proc/PID/task/*/children (every thread's list).
pub fn children(pid: Pid) -> BTreeSet<Pid> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeSet::new();
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<Pid>>()
        })
        .collect()
}

/// Every descendant of `pid` (not `pid` itself).
pub fn descendants(pid: Pid) -> BTreeSet<Pid> {
    let mut found = BTreeSet::new();
    let mut todo = vec![pid];
    while let Some(next) = todo.pop() {
        for child in children(next) {
            if found.insert(child) {
                todo.push(child);
            }
        }
    }
    found
}

/// The command name (after exec, the program's file name, truncated to 15 bytes).
pub fn comm(pid: Pid) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// The first live child of `runtime` that has exec'd the program named `payload_comm` and
/// is not `except` (a payload being replaced may linger as a zombie, still named so).
pub fn payload_of(runtime: Pid, payload_comm: &str, except: Option<Pid>) -> Option<Pid> {
    children(runtime).into_iter().find(|&child| {
        Some(child) != except && comm(child).as_deref() == Some(payload_comm) && is_alive(child)
    })
}

/// The nearest live descendant of `root` that has exec'd the program named `comm`, level by
/// level (a payload under `unshare` is its child, under `bwrap` its grandchild).
pub fn descendant_named(root: Pid, comm_name: &str) -> Option<Pid> {
    let mut level = children(root);
    while !level.is_empty() {
        let named = level
            .iter()
            .copied()
            .find(|&p| comm(p).as_deref() == Some(comm_name) && is_alive(p));
        if named.is_some() {
            return named;
        }
        level = level.into_iter().flat_map(children).collect();
    }
    None
}

/// The process still has a /proc entry (alive or a zombie nobody collected yet).
pub fn exists(pid: Pid) -> bool {
    fs::metadata(format!("/proc/{pid}")).is_ok()
}

/// The one-letter state from /proc/PID/stat ('R', 'S', 'Z', ...).
pub fn state(pid: Pid) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields_after_comm(&stat).first()?.chars().next()
}

/// Alive: exists and is not a zombie.
pub fn is_alive(pid: Pid) -> bool {
    state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

/// The fields of /proc/PID/stat after the parenthesised comm (which may hold spaces).
fn stat_fields_after_comm(stat: &str) -> Vec<&str> {
    stat.rfind(')')
        .map(|end| stat[end + 1..].split_whitespace().collect())
        .unwrap_or_default()
}

/// utime + stime in clock ticks, for the whole thread group (exited threads included).
pub fn cpu_ticks(pid: Pid) -> Option<u64> {
    cpu_times(pid).map(|times| times.own)
}

/// A process's CPU time from /proc/PID/stat, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// utime + stime of the whole thread group, exited threads included. Each process's
    /// figure is rounded down to whole ticks: a process that ran 2 ms shows 0.
    pub own: u64,
    /// cutime + cstime: the children it already collected (summed before rounding).
    pub reaped: u64,
}

pub fn cpu_times(pid: Pid) -> Option<CpuTimes> {
    parse_cpu_times(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let fields = stat_fields_after_comm(stat);
    // Fields 14 to 17 of stat(5); index 0 here is field 3 (state).
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(CpuTimes {
        own: field(11)? + field(12)?,
        reaped: field(13)? + field(14)?,
    })
}

/// Nanoseconds on CPU of every live thread of `pid` (the first field of each
/// /proc/PID/task/TID/schedstat): exact, unlike the ticks, but without exited threads.
pub fn threads_cpu_ns(pid: Pid) -> Option<u64> {
    Some(
        threads(pid)?
            .filter_map(|tid| thread_cpu_ns(pid, tid))
            .sum(),
    )
}

/// The thread ids of `pid` (/proc/PID/task); None when it is gone.
fn threads(pid: Pid) -> Option<impl Iterator<Item = Pid>> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        tasks
            .flatten()
            .filter_map(|task| task.file_name().to_str()?.parse().ok()),
    )
}

/// The whole machine's CPU time since boot from the `cpu` line of /proc/stat, in clock
/// ticks (USER_HZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineTicks {
    /// user + nice + system + irq + softirq (guest time is already in user and nice).
    pub busy: u64,
    /// Time the hypervisor ran something else while one of our CPUs wanted to run.
    pub steal: u64,
}

pub fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let column: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| column.get(i).copied();
    Some(MachineTicks {
        busy: at(0)? + at(1)? + at(2)? + at(5)? + at(6)?,
        steal: at(7).unwrap_or(0),
    })
}

/// How many tasks (threads) the machine has now: the total of /proc/loadavg's
/// "running/total" field. One small read, cheap enough to poll.
pub fn tasks_total() -> Option<usize> {
    parse_tasks_total(&fs::read_to_string("/proc/loadavg").ok()?)
}

fn parse_tasks_total(loadavg: &str) -> Option<usize> {
    let (_running, total) = loadavg.split_whitespace().nth(3)?.split_once('/')?;
    total.parse().ok()
}

/// Nanoseconds on CPU of the main thread (its schedstat): far finer than ticks, but threads
/// that already exited are not in it.
pub fn main_thread_cpu_ns(pid: Pid) -> Option<u64> {
    thread_cpu_ns(pid, pid)
}

/// A `Key: value` field of /proc/PID/status, as a number (kB fields are in KiB).
pub fn status_field(pid: Pid, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_value(&status, key)
}

/// A `Key: value` field of /proc/PID/status, as text (SigIgn's hex mask).
pub fn status_text(pid: Pid, key: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(|rest| rest.trim().to_string())
}

/// Private_Clean + Private_Dirty from /proc/PID/smaps_rollup, in KiB.
pub fn private_kib(pid: Pid) -> Option<u64> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(field_value(&rollup, "Private_Clean")? + field_value(&rollup, "Private_Dirty")?)
}

/// Pss and Private_Clean + Private_Dirty from /proc/PID/smaps_rollup, in KiB.
pub fn pss_and_private_kib(pid: Pid) -> Option<(u64, u64)> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let private = field_value(&rollup, "Private_Clean")? + field_value(&rollup, "Private_Dirty")?;
    Some((field_value(&rollup, "Pss")?, private))
}

fn field_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if getconf is missing), asked
/// once.
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Every thread on the machine: (pid, tid) -> (its process's comm, CPU ns from schedstat).
/// One read per thread: meant for a quiet machine (before a start), not for one running
/// thousands of vassals.
pub fn all_threads_cpu_ns() -> BTreeMap<(Pid, Pid), (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(processes) = fs::read_dir("/proc") else {
        return out;
    };
    for process in processes.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some(name) = comm(pid) else { continue };
        let Some(tids) = threads(pid) else { continue };
        for tid in tids {
            if let Some(ns) = thread_cpu_ns(pid, tid) {
                out.insert((pid, tid), (name.clone(), ns));
            }
        }
    }
    out
}

/// One thread's CPU time (schedstat's first field, ns).
pub fn thread_cpu_ns(pid: Pid, tid: Pid) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_after_a_comm_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 1 0";
        let fields = stat_fields_after_comm(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[11], "7");
        assert_eq!(fields[12], "3");
    }

    #[test]
    fn reads_kib_fields() {
        let text = "Name:\tx\nVmRSS:\t  1234 kB\nPrivate_Clean:   5 kB\n";
        assert_eq!(field_value(text, "VmRSS"), Some(1234));
        assert_eq!(field_value(text, "Private_Clean"), Some(5));
        assert_eq!(field_value(text, "Missing"), None);
    }

    #[test]
    fn reads_own_and_reaped_cpu_times() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 1 0 0 0 7 3 20 5 20 0 1 0";
        let times = parse_cpu_times(stat).unwrap();
        assert_eq!(
            times,
            CpuTimes {
                own: 10,
                reaped: 25
            }
        );
        let me = std::process::id() as Pid;
        assert!(cpu_times(me).is_some());
        assert!(threads_cpu_ns(me).is_some_and(|ns| ns > 0));
    }

    #[test]
    fn parses_the_machine_cpu_line() {
        let stat = "cpu  36688 5 8993 15843 327 11 167 932 40 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n";
        let ticks = parse_machine_ticks(stat).unwrap();
        assert_eq!(ticks.busy, 36688 + 5 + 8993 + 11 + 167);
        assert_eq!(ticks.steal, 932);
        // Old kernels have no steal column.
        let old = parse_machine_ticks("cpu  1 2 3 4 5 6 7\n").unwrap();
        assert_eq!((old.busy, old.steal), (1 + 2 + 3 + 6 + 7, 0));
        assert_eq!(parse_machine_ticks("intr 1 2\n"), None);
    }

    #[test]
    fn parses_the_task_count_of_loadavg() {
        assert_eq!(parse_tasks_total("3.41 1.94 0.80 3/101 3135\n"), Some(101));
        assert_eq!(parse_tasks_total("3.41 1.94 0.80"), None);
        assert!(tasks_total().is_some_and(|t| t > 0));
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id() as Pid;
        assert!(is_alive(me));
        assert!(cpu_ticks(me).is_some());
        assert!(status_field(me, "VmRSS").is_some_and(|kib| kib > 0));
    }
}
