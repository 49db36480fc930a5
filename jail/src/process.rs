//! Watching and stopping process trees: subreaping, parent-death signals, finding every
//! descendant of a process through /proc, killing and reaping them all.

use crate::error::SysError;
use crate::sys;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::RawFd;

/// Become a child subreaper: orphaned descendants come back to us, so none escapes our
/// cleanup by double-forking.
pub fn become_subreaper() -> Result<(), SysError> {
    sys::set_child_subreaper().map_err(|e| SysError::new("prctl(PR_SET_CHILD_SUBREAPER)", e))
}

/// The direct children of `pid`, from /proc/PID/task/*/children (every thread's children).
pub fn children_of(pid: Pid) -> Vec<Pid> {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(tasks) => tasks,
        Err(_) => return Vec::new(),
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        children.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw),
        );
    }
    children
}

/// Every descendant of `pid` (not `pid` itself), parents before children.
pub fn descendants_of(pid: Pid) -> Vec<Pid> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for child in children_of(parent) {
            if !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// Send `signal` to each pid, ignoring those that are already gone.
pub fn signal_all(pids: &[Pid], signal: Signal) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(pid, signal);
    }
}

/// Send `signal` to a process group.
pub fn signal_group(group: Pid, signal: Signal) {
    let _ = nix::sys::signal::killpg(group, signal);
}

/// SIGKILL every living descendant of `root` once; returns how many were signalled. Callers
/// repeat (reaping in between, as only they know which exits matter) until it returns 0: a
/// child forked during a pass is seen by the next one or, orphaned, comes to its subreaper.
pub fn kill_tree_once(root: Pid) -> usize {
    let alive: Vec<Pid> = descendants_of(root)
        .into_iter()
        .filter(|&p| is_alive(p))
        .collect();
    signal_all(&alive, Signal::SIGKILL);
    alive.len()
}

/// One exit collected by [`reap_one`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: Pid,
    /// The shell's way of telling an exit code from a signal: code, or 128 + signal.
    pub status: i32,
    pub signal: Option<i32>,
}

/// Collect one exited child without blocking; None when none is waiting.
pub fn reap_one() -> Option<Exit> {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(status) => {
                if let Some(exit) = exit_of(status) {
                    return Some(exit);
                }
            }
        }
    }
}

/// An exit or a death by signal; None for stops and continues.
pub(crate) fn exit_of(status: WaitStatus) -> Option<Exit> {
    match status {
        WaitStatus::Exited(pid, code) => Some(Exit {
            pid,
            status: code,
            signal: None,
        }),
        WaitStatus::Signaled(pid, sig, _) => Some(Exit {
            pid,
            status: 128 + sig as i32,
            signal: Some(sig as i32),
        }),
        _ => None,
    }
}

/// Collect every exited child without blocking; returns how many.
pub fn reap_any() -> usize {
    std::iter::from_fn(reap_one).count()
}

/// Whether a process is still there (a zombie counts as gone).
pub fn is_alive(pid: Pid) -> bool {
    stat(pid).is_some_and(|stat| stat.state != 'Z')
}

/// What the emperor reads of a process from /proc/PID/stat (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// R, S, D, Z, ...
    pub state: char,
    /// utime + stime, in clock ticks (USER_HZ, 100 on every architecture Linux runs on).
    pub cpu_ticks: u64,
    pub threads: u64,
    /// The address space, bytes.
    pub vsize: u64,
}

/// `pid`'s stat (`self` for this process); None when it is gone or unreadable.
pub fn stat(pid: impl std::fmt::Display) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A stat file opened earlier, read again from its start (procfs writes it afresh): no path
/// walk. None when unreadable (the process gone and collected).
pub(crate) fn stat_of_open(file: RawFd) -> Option<ProcStat> {
    let mut buf = [0u8; 4096];
    let n = sys::pread(file, &mut buf, 0).ok()?;
    parse_stat(&String::from_utf8_lossy(&buf[..n]))
}

/// A /proc/PID/stat line's fields.
fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name may hold spaces and parentheses: the fields start after its last ')'.
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |field: usize| fields.get(field)?.parse::<u64>().ok();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        cpu_ticks: number(11)? + number(12)?,
        threads: number(17)?,
        vsize: number(20)?,
    })
}

/// The open-files soft limit before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub was: u64,
    pub now: u64,
}

/// Raise this process's open-files soft limit to its hard limit (a supervisor holds two fds
/// per vassal); says the soft limit it had, for children that should keep it, and the new one.
pub fn raise_open_files_limit() -> Result<OpenFilesLimit, SysError> {
    let (soft, hard) = crate::sys::getrlimit(libc::RLIMIT_NOFILE)
        .map_err(|e| SysError::new("getrlimit(RLIMIT_NOFILE)", e))?;
    if soft < hard {
        crate::sys::setrlimit(libc::RLIMIT_NOFILE, hard, hard)
            .map_err(|e| SysError::new("setrlimit(RLIMIT_NOFILE)", e))?;
    }
    Ok(OpenFilesLimit {
        was: soft,
        now: soft.max(hard),
    })
}

/// Give back the memory a long-lived process dirtied once while it set up and no longer
/// uses: the heap's free pages and the main thread's stack below the caller. A process that
/// then sleeps for days (a vassal's runtime) keeps only what it holds.
pub fn shed_set_up_memory() {
    trim_heap();
    sys::discard_stack_below_caller();
}

/// Give the heap's free pages back to the kernel (malloc_trim): after a large allocation a
/// long-lived process has freed, which glibc would otherwise keep.
pub fn trim_heap() {
    sys::trim_heap();
}

/// Whether the machine has more tasks ready to run than CPUs online, now: /proc/loadavg's
/// count of runnable tasks (this one among them) against the CPUs. False when either cannot
/// be read (a jail without /proc).
pub fn machine_is_busy() -> bool {
    let Some(cpus) = online_cpus() else {
        return false;
    };
    runnable_tasks(&read_loadavg()).is_some_and(|runnable| runnable > cpus)
}

/// The CPUs online, read once per process (a copy of it inherits the count: see
/// [`crate::ahead`]).
pub(crate) fn online_cpus() -> Option<u64> {
    static CPUS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *CPUS.get_or_init(sys::online_cpus)
}

/// /proc/loadavg's text: from the start of the file opened ahead (a read at offset 0 makes
/// procfs write it afresh), else opened now; empty when unreadable.
pub(crate) fn read_loadavg() -> String {
    if let Some(fd) = crate::ahead::loadavg() {
        let mut buf = [0u8; 128];
        if let Ok(n) = sys::pread(fd, &mut buf, 0) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

/// The runnable tasks of /proc/loadavg (`0.50 0.40 0.30 RUNNABLE/TOTAL LAST_PID`).
fn runnable_tasks(loadavg: &str) -> Option<u64> {
    let (runnable, _) = loadavg.split_whitespace().nth(3)?.split_once('/')?;
    runnable.parse().ok()
}

/// CLOCK_MONOTONIC as a duration since boot: the clock of `Instant`, as a number that can
/// cross an execve or go to systemd (0 if the clock cannot be read).
pub fn monotonic_now() -> std::time::Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runnable_count_is_loadavgs_fourth_field_before_the_slash() {
        assert_eq!(runnable_tasks("2.55 4.09 4.41 2/111 14663\n"), Some(2));
        assert_eq!(runnable_tasks("0.00 0.00 0.00 17/4523 1"), Some(17));
        assert_eq!(runnable_tasks("0.00 0.00"), None);
        assert_eq!(runnable_tasks(""), None);
        // This process is runnable while it reads: the machine is busy only past the CPUs.
        assert!(runnable_tasks(&std::fs::read_to_string("/proc/loadavg").unwrap()).unwrap() >= 1);
    }
}
