//! Files a process opens once for the copies of itself that run on as runtimes
//! ([`crate::launch::Launch::fork`], the clone server's in-process mode): its own binary, which
//! a runtime keeps to hibernate with, and /proc/loadavg, which a runtime reads before it falls
//! asleep (with the CPUs online, read here too and inherited as a value). Each runtime would otherwise open them itself at each start, through /proc path
//! walks that instantiate its own /proc entries and cost more the more mount namespaces the
//! host holds. Every copy keeps them at their numbers; the opener itself never takes them.

use crate::error::SysError;
use crate::sys;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The process that opened them (0: none did); its copies have other pids.
static OPENER: AtomicI32 = AtomicI32::new(0);
/// Its binary, /proc/self/exe opened; -1 when not opened, or taken by this copy.
static OWN_BINARY: AtomicI32 = AtomicI32::new(-1);
/// /proc/loadavg opened; -1 when not opened.
static LOADAVG: AtomicI32 = AtomicI32::new(-1);

/// Open both in this process, for its copies (once: a second call changes nothing). They stay
/// open for the process's life, close-on-exec.
pub fn open_for_copies() -> Result<(), SysError> {
    if OPENER.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    crate::process::online_cpus();
    let own_binary = park(crate::keeper::open_own_binary()?);
    let flags = libc::O_RDONLY | libc::O_CLOEXEC;
    let loadavg = sys::openat(libc::AT_FDCWD, c"/proc/loadavg", flags)
        .map_err(|e| SysError::with_path("open", "/proc/loadavg", e))?;
    let loadavg = park(loadavg);
    // Never closed by an owner: the numbers are this process's until it exits or executes.
    OWN_BINARY.store(own_binary.into_raw_fd(), Ordering::Release);
    LOADAVG.store(loadavg.into_raw_fd(), Ordering::Release);
    OPENER.store(std::process::id() as i32, Ordering::Release);
    Ok(())
}

/// Where they are parked: above every fd number a launch maps into a child (the clone
/// server's starts map a runtime's fds to low numbers, which would land on them in a copy).
const FLOOR: RawFd = 64;

fn park(fd: OwnedFd) -> OwnedFd {
    crate::fd::park_above(fd, FLOOR)
}

/// The fds every copy keeps (none before [`open_for_copies`]).
pub(crate) fn kept_in_copies() -> Vec<RawFd> {
    [
        OWN_BINARY.load(Ordering::Acquire),
        LOADAVG.load(Ordering::Acquire),
    ]
    .into_iter()
    .filter(|&fd| fd >= 0)
    .collect()
}

/// Whether this process is a copy of the one that opened them (which kept them).
fn in_a_copy() -> bool {
    let opener = OPENER.load(Ordering::Acquire);
    opener != 0 && opener != std::process::id() as i32
}

/// In a copy, the binary its opener opened, once (None: not a copy, or taken already).
pub(crate) fn take_own_binary() -> Option<OwnedFd> {
    if !in_a_copy() {
        return None;
    }
    let fd = OWN_BINARY.swap(-1, Ordering::AcqRel);
    (fd >= 0).then(|| crate::fd::adopt_inherited(fd).ok())?
}

/// /proc/loadavg, opened by this process or, in a copy, by its opener (None: neither).
pub(crate) fn loadavg() -> Option<RawFd> {
    let fd = LOADAVG.load(Ordering::Acquire);
    (fd >= 0).then_some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{expect_eq, in_forked_child};

    /// In a forked copy of the test (the statics are its own): the opener reads /proc/loadavg
    /// through the fd and keeps its binary; a copy of the opener takes the binary once.
    #[test]
    fn a_copy_takes_its_openers_binary_once_and_reads_loadavg_through_its_fd() {
        in_forked_child(|| {
            open_for_copies().map_err(|e| e.to_string())?;
            let kept = kept_in_copies();
            expect_eq("kept", kept.len(), 2)?;
            expect_eq("parked", kept.iter().all(|&fd| fd >= FLOOR), true)?;
            let text = crate::process::read_loadavg();
            expect_eq("loadavg read", text.split_whitespace().count(), 5)?;
            expect_eq("the opener takes", take_own_binary().is_none(), true)?;
            match crate::sys::fork_single_threaded().map_err(|e| e.to_string())? {
                crate::sys::Forked::Child => {
                    let first = take_own_binary().is_some();
                    let second = take_own_binary().is_none();
                    crate::sys::exit_now(if first && second { 0 } else { 1 })
                }
                crate::sys::Forked::Parent(copy) => {
                    let status = nix::sys::wait::waitpid(copy, None).map_err(|e| e.to_string())?;
                    expect_eq(
                        "the copy took it once",
                        status,
                        nix::sys::wait::WaitStatus::Exited(copy, 0),
                    )
                }
            }
        });
    }
}
