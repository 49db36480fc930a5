//! The emperor executing a new binary in its own pid (an upgrade): what it keeps must cross
//! execve. Fds are kept with [`crate::fd::keep_across_exec`]; an unprivileged emperor's two
//! capabilities cross only as ambient ones (execve of a non-root process without file
//! capabilities keeps nothing else), and the new image takes them back out of the ambient
//! and inheritable sets before it starts anything, so no child ever inherits them.

use crate::caps::CapSet;
use crate::error::SysError;
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::ffi::{CString, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// Make `keep` (held as effective and permitted) survive the next execve: inheritable, then
/// ambient. Undo with [`settle_caps`] if the execve fails.
pub fn carry_caps(keep: CapSet) -> Result<(), SysError> {
    if keep.is_empty() {
        return Ok(());
    }
    sys::capset(keep.0, keep.0, keep.0).map_err(|e| SysError::new("capset(inheritable)", e))?;
    for cap in (0..64u32).filter(|&c| keep.contains(c)) {
        sys::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as u64,
            u64::from(cap),
        )
        .map_err(|e| SysError::new("prctl(PR_CAP_AMBIENT_RAISE)", e))?;
    }
    Ok(())
}

/// Hold exactly `keep` as effective and permitted, nothing inheritable or ambient, and check
/// the ids are still `uid`/`gid`: the state [`crate::creds::become_unprivileged`] leaves,
/// reached again after an execve that carried the capabilities (the bounding set is already
/// shrunk, and shrinking it again would need CAP_SETPCAP).
pub fn settle_caps(uid: u32, gid: u32, keep: CapSet) -> Result<(), SysError> {
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    )
    .map_err(|e| SysError::new("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", e))?;
    sys::capset(keep.0, keep.0, 0).map_err(|e| SysError::new("capset", e))?;
    let ((ru, eu, su), (rg, eg, sg)) = sys::getres_ids();
    let (effective, permitted, inheritable) =
        sys::capget().map_err(|e| SysError::new("capget", e))?;
    let left = [ru, eu, su] != [uid; 3]
        || [rg, eg, sg] != [gid; 3]
        || effective != keep.0
        || permitted != keep.0
        || inheritable != 0;
    match left {
        true => Err(SysError::new(
            "capget (checking what the execve left)",
            Errno::EPERM,
        )),
        false => Ok(()),
    }
}

/// Execute `program` in this process with `argv` (argv[0] included) and `env`. Returns only
/// when execve failed; the process is then unchanged.
pub fn execute(program: &Path, argv: &[OsString], env: &[OsString]) -> SysError {
    let path = match cstring(program.as_os_str().to_owned()) {
        Ok(path) => path,
        Err(e) => return SysError::with_path("execve", program, e),
    };
    match (cstrings(argv), cstrings(env)) {
        (Ok(argv), Ok(env)) => match nix::unistd::execve(&path, &argv, &env) {
            Err(e) => SysError::with_path("execve", program, e),
        },
        _ => SysError::with_path("execve", program, Errno::EINVAL),
    }
}

/// As [`execute`], for the binary open at fd `program` (a binary replaced on disk since it
/// was opened is still the one executed). A closed or wrong fd makes fexecve fail (EBADF,
/// EACCES), which is returned like any other failure.
pub fn execute_fd(program: RawFd, argv: &[OsString], env: &[OsString]) -> SysError {
    match (cstrings(argv), cstrings(env)) {
        (Ok(argv), Ok(env)) => match nix::unistd::fexecve(program, &argv, &env) {
            Err(e) => SysError::new("fexecve", e),
        },
        _ => SysError::new("fexecve", Errno::EINVAL),
    }
}

/// Let fd number `fd` survive the next execve (an fd handed to the binary that takes over,
/// named by number in its snapshot). An fd that is not open is an error (EBADF).
pub fn keep_raw(fd: RawFd) -> Result<(), SysError> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
        .map(drop)
        .map_err(|e| SysError::new("fcntl(F_SETFD) to keep an fd across execve", e))
}

/// Undo [`keep_raw`] (the execve failed: the fd is this process's own again).
pub fn close_raw_on_exec(fd: RawFd) -> Result<(), SysError> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(|e| SysError::new("fcntl(F_SETFD)", e))
}

/// One environment entry as execve takes it: `KEY=VALUE`.
pub fn env_entry((key, value): (OsString, OsString)) -> OsString {
    let mut entry = key;
    entry.push("=");
    entry.push(value);
    entry
}

fn cstring(s: OsString) -> Result<CString, Errno> {
    CString::new(s.into_vec()).map_err(|_| Errno::EINVAL)
}

fn cstrings(items: &[OsString]) -> Result<Vec<CString>, Errno> {
    items.iter().cloned().map(cstring).collect()
}
