//! The host limits a run needs for its largest number of vassals, settled before anything
//! starts: a run of 10,000 that finds out after its machine baseline (minutes in) that the
//! emperor cannot hold them all is a run wasted.
//!
//! - Open files: the emperor holds 1 fd per vassal (each runtime's link; uWSGI's emperor about
//!   as many) plus its own and a reserve, N + 32 in the plain setup (docs/PERFORMANCE.md, "File
//!   descriptors at 10,000 vassals"). The benchmark raises its soft limit to its hard limit, and the hard limit
//!   itself when N needs more (root with CAP_SYS_RESOURCE, up to fs.nr_open); both supervisors
//!   inherit it.
//! - Tasks: N vassals are 2 N processes (runtime and payload; uWSGI's `sh` and payload; the
//!   machine baseline's `unshare` and `sleep`) on top of what runs already, under
//!   kernel.pid_max and kernel.threads-max. These are the whole machine's, shared with others:
//!   the benchmark checks them and says what to change, it does not change them.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Fds beyond 1 per vassal: the emperor's own and its reserve (32 in the plain setup), and
/// room for the setups that open more of their own (the clone server's socket and pidfd, a
/// control socket, more monitors).
const FD_SLACK: u64 = 64;
/// Tasks kept free beyond the vassals' and what runs now (kernel threads, other load).
const TASK_SLACK: usize = 1000;
/// Pids below this are not handed out again once pid_max wraps (the kernel's RESERVED_PIDS).
const RESERVED_PIDS: usize = 300;
/// CAP_SYS_RESOURCE's bit in /proc/self/status's CapEff.
const CAP_SYS_RESOURCE: u32 = 24;

/// The hard RLIMIT_NOFILE the emperor needs for `vassals` vassals.
pub fn open_files_needed(vassals: usize) -> u64 {
    vassals as u64 + FD_SLACK
}

/// Check the task limits and set RLIMIT_NOFILE for `vassals` vassals; returns the open-files
/// limit as the report shows it, or why the run cannot hold them.
pub fn prepare(vassals: usize) -> Result<String, String> {
    check_tasks(vassals, crate::procfs::tasks_total())?;
    raise_open_files(vassals)
}

/// Raise the soft open-files limit to the hard one, and the hard one to what `vassals`
/// vassals need when it is lower.
fn raise_open_files(vassals: usize) -> Result<String, String> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(RLIMIT_NOFILE): {e}"))?;
    let needed = open_files_needed(vassals);
    if hard >= needed {
        if soft >= hard {
            return Ok(format!("{soft} (soft = hard)"));
        }
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .map_err(|e| format!("setrlimit(RLIMIT_NOFILE, {hard}): {e}"))?;
        return Ok(format!(
            "{hard} (soft raised from {soft} to the hard limit)"
        ));
    }
    let shortfall = format!(
        "{vassals} vassals at once need a hard open-files limit (RLIMIT_NOFILE) of {needed} (the \
         emperor holds 1 fd per vassal, plus its own: N + {FD_SLACK}), and it is {hard}"
    );
    let nr_open = procfs_number("/proc/sys/fs/nr_open");
    if let Some(nr_open) = nr_open.filter(|&max| (max as u64) < needed) {
        return Err(format!(
            "{shortfall}; no process may have more than fs.nr_open ({nr_open}): raise it first \
             (sysctl fs.nr_open={needed})"
        ));
    }
    setrlimit(Resource::RLIMIT_NOFILE, needed, needed).map_err(|e| {
        let why = if has_capability(CAP_SYS_RESOURCE) == Some(false) {
            "; raising a hard limit takes CAP_SYS_RESOURCE, which this process does not have: \
             start the benchmark with the limit (`ulimit -Hn`, `prlimit --nofile`, systemd's \
             LimitNOFILE=) from a process that may set it, or run fewer vassals"
        } else {
            ""
        };
        format!("{shortfall}; raising it failed: setrlimit(RLIMIT_NOFILE, {needed}): {e}{why}")
    })?;
    eprintln!(
        "raised the hard open-files limit from {hard} to {needed} for {vassals} vassals at once"
    );
    Ok(format!(
        "{needed} (soft = hard; the benchmark raised the hard limit from {hard} for \
         {vassals} vassals: N + {FD_SLACK})"
    ))
}

/// Whether the machine has pids and threads for `vassals` more vassals (2 tasks each) beside
/// the `running` tasks it has now (None: unknown, then the limits alone are checked).
fn check_tasks(vassals: usize, running: Option<usize>) -> Result<(), String> {
    let needed = running.unwrap_or(0) + 2 * vassals + TASK_SLACK;
    let limits = [
        (
            "kernel.pid_max",
            procfs_number("/proc/sys/kernel/pid_max").map(|max| max.saturating_sub(RESERVED_PIDS)),
        ),
        (
            "kernel.threads-max",
            procfs_number("/proc/sys/kernel/threads-max"),
        ),
    ];
    for (name, limit) in limits {
        if let Some(limit) = limit.filter(|&limit| limit < needed) {
            return Err(task_shortfall(vassals, running, needed, name, limit));
        }
    }
    if !nix::unistd::geteuid().is_root() {
        let (soft, _) = getrlimit(Resource::RLIMIT_NPROC)
            .map_err(|e| format!("getrlimit(RLIMIT_NPROC): {e}"))?;
        if soft < needed as u64 {
            return Err(task_shortfall(
                vassals,
                running,
                needed,
                "RLIMIT_NPROC (ulimit -u)",
                soft as usize,
            ));
        }
    }
    Ok(())
}

fn task_shortfall(
    vassals: usize,
    running: Option<usize>,
    needed: usize,
    name: &str,
    limit: usize,
) -> String {
    format!(
        "{vassals} vassals are {} processes (runtime and payload each), on top of the {} \
         tasks running now and {TASK_SLACK} spare: {needed}, more than {name} allows ({limit}); \
         raise it first",
        2 * vassals,
        running.unwrap_or(0)
    )
}

/// The number a /proc file holds.
fn procfs_number(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether this process has capability `bit` in its effective set (None: unreadable).
fn has_capability(bit: u32) -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let caps = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(caps & (1 << bit) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_vassals_need_one_fd_each_and_some() {
        assert_eq!(open_files_needed(10_000), 10_064);
        assert!(open_files_needed(19_936) <= 20_000);
    }

    #[test]
    fn a_task_shortfall_names_the_limit_and_the_count() {
        let message = task_shortfall(10_000, Some(150), 21_150, "kernel.pid_max", 20_000);
        assert!(message.contains("20000 processes"), "{message}");
        assert!(
            message.contains("kernel.pid_max allows (20000)"),
            "{message}"
        );
    }
}
