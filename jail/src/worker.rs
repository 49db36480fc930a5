//! A throwaway child that runs one piece of work on a copy of a single-threaded process's
//! memory, under limits of its own: whatever that work does wrong (a crash, a stack overflow,
//! memory or CPU exhausted) costs the child, never the process that forked it. The emperor's
//! config reader parses each tenant's config this way.

use crate::error::SysError;
use crate::process::{exit_of, Exit};
use crate::sys;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::fs::File;

/// The exit status of a worker whose limits could not be set (nothing of the work ran).
pub const LIMITS_FAILED_STATUS: i32 = 125;
/// The exit status of a worker whose work panicked.
pub const PANICKED_STATUS: i32 = 101;

/// What a worker may use. Both limits are hard: the work cannot raise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLimits {
    /// Address space the work may map beyond what the worker had at the fork (RLIMIT_AS is
    /// set to both added up), bytes: an allocation past it fails (Rust then aborts).
    pub extra_address_space: u64,
    /// RLIMIT_CPU, seconds: SIGXCPU at this, SIGKILL a second later.
    pub cpu_seconds: u64,
}

/// A running worker: its pid, the write end of the pipe it reads its input from, and the read
/// end of the pipe its work writes to.
#[derive(Debug)]
pub struct Worker {
    pub pid: Pid,
    /// Taken and dropped (closed) once the input is written: the worker sees its end.
    pub input: Option<File>,
    pub output: File,
    /// Its /proc/PID/stat, opened at the fork and read from the start at each
    /// [`Worker::stat`]: asked after every piece of work, a read of an open file spares the
    /// path walk.
    stat: Option<File>,
}

/// Fork a worker that runs `work` with the read end of one pipe (its input, which may arrive
/// long after the fork: a worker can be forked ahead of need) and the write end of another
/// (its output), under `limits`, with no core dump, then exits 0 (or [`PANICKED_STATUS`] if
/// `work` panics). Refused unless the calling process has exactly one thread.
pub fn fork_worker(
    limits: WorkerLimits,
    work: impl FnOnce(&mut File, &mut File),
) -> Result<Worker, SysError> {
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SysError::new("pipe2", e));
    let (input_read, input_write) = pipe()?;
    let (output_read, output_write) = pipe()?;
    // The child of a single-threaded process may allocate and run ordinary Rust code. It
    // never returns into the caller's frames: it runs `work` under catch_unwind and _exits.
    match sys::fork_single_threaded() {
        Err(Errno::EDEADLK) => Err(SysError::new(
            "fork (a worker needs a single-threaded parent)",
            Errno::EDEADLK,
        )),
        Err(e) => Err(SysError::new("fork", e)),
        Ok(sys::Forked::Child) => {
            drop((input_write, output_read));
            let status = run_child(limits, input_read.into(), output_write.into(), work);
            sys::exit_now(status)
        }
        Ok(sys::Forked::Parent(child)) => Ok(Worker {
            pid: child,
            input: Some(input_write.into()),
            output: output_read.into(),
            // Ours and not yet collected: the pid is the worker's.
            stat: File::open(format!("/proc/{child}/stat")).ok(),
        }),
    }
}

fn run_child(
    limits: WorkerLimits,
    mut input: File,
    mut output: File,
    work: impl FnOnce(&mut File, &mut File),
) -> i32 {
    let Some(mapped) = mapped_bytes() else {
        return LIMITS_FAILED_STATUS;
    };
    let address_space = mapped.saturating_add(limits.extra_address_space);
    let cpu = limits.cpu_seconds;
    let set = [
        (libc::RLIMIT_AS, address_space, address_space),
        (libc::RLIMIT_CPU, cpu, cpu.saturating_add(1)),
        (libc::RLIMIT_CORE, 0, 0),
    ];
    for (resource, soft, hard) in set {
        if sys::setrlimit(resource, soft, hard).is_err() {
            return LIMITS_FAILED_STATUS;
        }
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        work(&mut input, &mut output)
    })) {
        Ok(()) => 0,
        Err(_) => PANICKED_STATUS,
    }
}

impl Worker {
    /// Block until the worker exits and collect it.
    pub fn wait(&self) -> Result<Exit, SysError> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::empty())) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("waitpid", e)),
                Ok(status) => {
                    if let Some(exit) = exit_of(status) {
                        return Ok(exit);
                    }
                }
            }
        }
    }

    /// Its /proc/PID/stat now; None when unreadable.
    pub fn stat(&self) -> Option<crate::process::ProcStat> {
        use std::os::fd::AsRawFd;
        crate::process::stat_of_open(self.stat.as_ref()?.as_raw_fd())
    }

    /// SIGKILL it (it is ours and not yet collected, so the pid is still its own).
    pub fn kill(&self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// This process's mapped address space, bytes.
fn mapped_bytes() -> Option<u64> {
    crate::process::stat("self").map(|stat| stat.vsize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fork itself is tested from a single-threaded process (the emperor's config reader,
    /// tests/config_reader.rs): the test harness always has more than one thread.
    #[test]
    fn a_multithreaded_parent_is_refused() {
        let other =
            std::thread::spawn(|| std::thread::park_timeout(std::time::Duration::from_secs(5)));
        let error = fork_worker(
            WorkerLimits {
                extra_address_space: 1 << 20,
                cpu_seconds: 1,
            },
            |_, _| {},
        )
        .unwrap_err();
        assert_eq!(error.errno, Errno::EDEADLK);
        other.thread().unpark();
        other.join().unwrap();
    }

    /// In a forked copy of the test, which has one thread: the worker's stat is read through
    /// the file opened at its fork, each time afresh.
    #[test]
    fn a_workers_stat_is_read_again_from_the_file_opened_at_its_fork() {
        crate::testing::in_forked_child(|| {
            let limits = WorkerLimits {
                extra_address_space: 64 << 20,
                cpu_seconds: 5,
            };
            let mut worker = fork_worker(limits, |input, _| {
                let _ = std::io::Read::read(input, &mut [0u8; 1]);
            })
            .map_err(|e| e.to_string())?;
            let first = worker.stat().ok_or("no stat")?;
            let again = worker.stat().ok_or("no stat the second time")?;
            crate::testing::expect_eq("threads", (first.threads, again.threads), (1, 1))?;
            crate::testing::expect_eq("vsize", first.vsize > 1 << 20, true)?;
            drop(worker.input.take());
            worker.wait().map_err(|e| e.to_string())?;
            crate::testing::expect_eq("gone", worker.stat().map(|s| s.state), None)
        });
    }

    #[test]
    fn the_mapped_size_and_thread_count_are_read() {
        assert!(mapped_bytes().unwrap() > 1 << 20);
        assert!(sys::thread_count().unwrap() >= 1);
    }
}
