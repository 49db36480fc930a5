//! File descriptors inherited through exec, which Rust cannot know it owns.

use crate::error::SysError;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Take ownership of an fd inherited across execve (such as the emperor protocol socket at
/// fd 3), marking it close-on-exec so it only reaches a child that is given it on purpose.
pub fn adopt_inherited(fd: RawFd) -> Result<OwnedFd, SysError> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| SysError::new("fcntl(F_SETFD) on inherited fd", e))?;
    // SAFETY: F_SETFD succeeded, so `fd` is open; it was inherited through execve and nothing
    // in this process has wrapped it yet (callers adopt each inherited fd once, at start-up).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Let `fd` survive the next execve (clear close-on-exec): for the fds a runtime keeps when it
/// re-execs itself (the emperor protocol socket, the cgroup directory).
pub fn keep_across_exec(fd: std::os::fd::BorrowedFd<'_>) -> Result<(), SysError> {
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        FcntlArg::F_SETFD(FdFlag::empty()),
    )
    .map(drop)
    .map_err(|e| SysError::new("fcntl(F_SETFD) to keep an fd across execve", e))
}
