//! fork(2), for a process that may run ordinary Rust code in the child: a single-threaded
//! one (the config reader's workers), or a test on the real kernel.

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Which side of a fork this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(Pid),
}

/// /proc/self/stat, opened once by the process that holds it: its pid in the high half, the
/// fd in the low (0: none). The clone server asks before every copy it makes, and a read from
/// the start of an open file spares a /proc path walk each time. A copy finds its parent's
/// pair and opens its own, leaving that number alone (it is not the copy's to close). An
/// atomic, not a lock: a test forks while other threads run, and a lock held at the fork
/// stays held in the child.
static OWN_STAT: AtomicU64 = AtomicU64::new(0);

/// This process's thread count (/proc/self/stat).
pub fn thread_count() -> Option<u64> {
    let pid = std::process::id();
    let kept = OWN_STAT.load(Ordering::Acquire);
    let fd = if kept >> 32 == u64::from(pid) {
        kept as u32 as RawFd
    } else {
        let flags = libc::O_RDONLY | libc::O_CLOEXEC;
        let fd = super::openat(libc::AT_FDCWD, c"/proc/self/stat", flags).ok()?;
        let fd = fd.into_raw_fd();
        let ours = u64::from(pid) << 32 | u64::from(fd as u32);
        match OWN_STAT.compare_exchange(kept, ours, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fd,
            // Only another thread of this process changes it meanwhile: theirs stays.
            Err(theirs) => {
                super::close(fd);
                theirs as u32 as RawFd
            }
        }
    };
    crate::process::stat_of_open(fd).map(|stat| stat.threads)
}

/// fork(2) of a process that has exactly one thread; EDEADLK otherwise (after fork only the
/// calling thread exists: a lock another thread held, the allocator's, would stay locked
/// forever in the child).
pub fn fork_single_threaded() -> Result<Forked, Errno> {
    if thread_count() != Some(1) {
        return Err(Errno::EDEADLK);
    }
    // SAFETY: the process has one thread (checked above; only this thread, busy here, could
    // start another), so the child is an exact copy with every lock in a consistent state and
    // may allocate and run ordinary Rust code.
    unsafe { nix::unistd::fork() }.map(forked)
}

/// How long a forked test body may take before it counts as hung.
#[cfg(test)]
const TEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Run `body` in a forked child on the real kernel, so whatever it changes (credentials,
/// namespaces, mounts, capabilities) dies with the child and the test process stays clean;
/// panic here with the body's message if it failed, panicked or hung.
///
/// The harness has other threads. The child runs only `body` and then leaves by _exit: glibc's
/// fork resets the allocator's locks in the child, so the body may allocate, but it must take
/// no other lock another thread may have held (stdout's: the child reports through a pipe of
/// its own). A body should fail by returning `Err`: a panic runs the panic hook, whose
/// backtrace lock another test's panic may have held at the fork; such a child hangs, and is
/// killed and reported after [`TEST_DEADLINE`].
#[cfg(test)]
pub fn in_forked_child(body: impl FnOnce() -> Result<(), String>) {
    use std::io::Write;
    let (report_read, mut report_write) = std::io::pipe().expect("pipe");
    // SAFETY: the child below runs `body` under catch_unwind, writes its result to the pipe
    // and _exits: it never returns into the harness, and takes no lock but the allocator's
    // (and the panic hook's, if the body panics: see above).
    match unsafe { nix::unistd::fork() }.expect("fork") {
        ForkResult::Child => {
            drop(report_read);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let (status, message) = match outcome {
                Ok(Ok(())) => (0, String::new()),
                Ok(Err(message)) => (1, message),
                Err(panic) => (1, panic_message(panic.as_ref())),
            };
            let _ = report_write.write_all(message.as_bytes());
            super::exit_now(status)
        }
        ForkResult::Parent { child } => {
            drop(report_write);
            let message = read_until_closed(report_read, TEST_DEADLINE);
            if message.is_none() {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            }
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            let message = message.unwrap_or_else(|| format!("hung for {TEST_DEADLINE:?}"));
            assert_eq!(
                status,
                nix::sys::wait::WaitStatus::Exited(child, 0),
                "the forked test body failed: {message}"
            );
        }
    }
}

/// Everything written to `pipe` until its last writer closes it; `None` if that takes longer
/// than `deadline`.
#[cfg(test)]
fn read_until_closed(
    mut pipe: std::io::PipeReader,
    deadline: std::time::Duration,
) -> Option<String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::Read;
    use std::os::fd::AsFd;
    let end = std::time::Instant::now() + deadline;
    let mut bytes = Vec::new();
    loop {
        let left = end.checked_duration_since(std::time::Instant::now())?;
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
        let mut chunk = [0u8; 4096];
        match pipe.read(&mut chunk) {
            Ok(0) => return Some(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[cfg(test)]
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => format!("panicked: {text}"),
        (_, Some(text)) => format!("panicked: {text}"),
        _ => "panicked".to_string(),
    }
}

fn forked(result: ForkResult) -> Forked {
    match result {
        ForkResult::Child => Forked::Child,
        ForkResult::Parent { child } => Forked::Parent(child),
    }
}
