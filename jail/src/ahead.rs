//! Files a process opens once for the copies of itself that run on as runtimes
//! ([`crate::launch::Launch::fork`], the clone server's in-process mode): its own binary, which
//! a runtime keeps to hibernate with, and /proc/loadavg, which a runtime reads before it falls
//! asleep (with the CPUs online, read here too and inherited as a value). Each runtime would
//! otherwise open them itself at each start, through /proc path walks that instantiate its own
//! /proc entries and cost more the more mount namespaces the host holds. Every copy keeps them
//! at their numbers; the opener itself never takes them.
//!
//! And a word the opener writes for its copies to read (the clone server: until when its
//! starts go on): eight bytes of a memfd sealed against resizing. The opener holds it
//! read-write, and no copy has that fd; every copy keeps a read-only reopening of it, so what
//! it reads is the opener's latest word, not a copy of the word at its fork, and nothing a
//! copy runs can write it.

use crate::error::SysError;
use crate::sys;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The process that opened them (0: none did); its copies have other pids.
static OPENER: AtomicI32 = AtomicI32::new(0);
/// Its binary, /proc/self/exe opened; -1 when not opened, or taken by this copy.
static OWN_BINARY: AtomicI32 = AtomicI32::new(-1);
/// /proc/loadavg opened; -1 when not opened.
static LOADAVG: AtomicI32 = AtomicI32::new(-1);
/// The word, read-write in the opener (closed in every copy) and read-only (kept).
static WORD_WRITTEN: AtomicI32 = AtomicI32::new(-1);
static WORD_READ: AtomicI32 = AtomicI32::new(-1);

/// Open them (the binary, /proc/loadavg and the word) in this process, for its copies (once: a second call changes nothing). They stay
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
    let (written, read) = open_word()?;
    let (written, read) = match (park(written), park(read)) {
        (Some(written), Some(read)) => (Some(written), Some(read)),
        _ => (None, None),
    };
    // Never closed by an owner: the numbers are this process's until it exits or executes.
    let store = |at: &AtomicI32, fd: Option<OwnedFd>| {
        at.store(fd.map_or(-1, IntoRawFd::into_raw_fd), Ordering::Release);
    };
    store(&OWN_BINARY, own_binary);
    store(&LOADAVG, loadavg);
    store(&WORD_WRITTEN, written);
    store(&WORD_READ, read);
    OPENER.store(std::process::id() as i32, Ordering::Release);
    Ok(())
}

/// The word's memfd, 0 to start with and sealed at its size, and a read-only reopening of it
/// (through /proc/self/fd: a new open file of its own access mode, not a dup), the file's
/// mode 0400.
fn open_word() -> Result<(OwnedFd, OwnedFd), SysError> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let flags = MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING;
    let written =
        memfd_create(c"emperor word", flags).map_err(|e| SysError::new("memfd_create", e))?;
    sys::pwrite(written.as_raw_fd(), &0u64.to_ne_bytes(), 0)
        .map_err(|e| SysError::new("pwrite to a memfd", e))?;
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
    fcntl(written.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals))
        .map_err(|e| SysError::new("fcntl(F_ADD_SEALS)", e))?;
    // Read-only by mode too: a copy that is not root cannot open it writable again through
    // /proc/self/fd (a memfd is created 0777).
    nix::sys::stat::fchmod(written.as_raw_fd(), nix::sys::stat::Mode::S_IRUSR)
        .map_err(|e| SysError::new("fchmod(0400) a memfd", e))?;
    let path = format!("/proc/self/fd/{}", written.as_raw_fd());
    let c_path = std::ffi::CString::new(path.as_str()).expect("no NUL in a number");
    let read = sys::openat(libc::AT_FDCWD, &c_path, libc::O_RDONLY | libc::O_CLOEXEC)
        .map_err(|e| SysError::with_path("open", &path, e))?;
    Ok((written, read))
}

/// Write the word (in the opener only: in a copy the number may name another file by now).
pub fn write_word(value: u64) {
    let fd = WORD_WRITTEN.load(Ordering::Acquire);
    if fd >= 0 && !in_a_copy() {
        let _ = sys::pwrite(fd, &value.to_ne_bytes(), 0);
    }
}

/// The opener's latest word, read by it or by a copy (None: neither opened it, or the read
/// failed).
pub fn read_word() -> Option<u64> {
    let fd = WORD_READ.load(Ordering::Acquire);
    if fd < 0 {
        return None;
    }
    let mut bytes = [0u8; 8];
    match sys::pread(fd, &mut bytes, 0) {
        Ok(8) => Some(u64::from_ne_bytes(bytes)),
        _ => None,
    }
}

/// Where they are parked: above every fd number a launch maps into a child (the clone
/// server's starts map a runtime's fds to low numbers, which would land on them in a copy).
const FLOOR: RawFd = 64;
/// Every fd a launch maps onto is below this (the emperor's are 0 and 3 to 7).
const MAPPED_BELOW: RawFd = 16;

/// `fd` moved up to [`floor`] or above; None (closed) when there is no room there: a copy
/// then opens its own file, or does without the word.
fn park(fd: OwnedFd) -> Option<OwnedFd> {
    let floor = floor();
    let parked = crate::fd::park_above(fd, floor);
    (parked.as_raw_fd() >= floor).then_some(parked)
}

/// [`FLOOR`], or half the open-files limit when that is lower (a small limit would leave no
/// room at 64), never below [`MAPPED_BELOW`].
fn floor() -> RawFd {
    use nix::sys::resource::{getrlimit, Resource};
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(soft, _)| soft);
    let half = RawFd::try_from(limit / 2).unwrap_or(RawFd::MAX);
    half.clamp(MAPPED_BELOW, FLOOR)
}

/// The fds every copy keeps (none before [`open_for_copies`]).
pub(crate) fn kept_in_copies() -> Vec<RawFd> {
    [
        OWN_BINARY.load(Ordering::Acquire),
        LOADAVG.load(Ordering::Acquire),
        WORD_READ.load(Ordering::Acquire),
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
            expect_eq("kept", kept.len(), 3)?;
            expect_eq("parked", kept.iter().all(|&fd| fd >= floor()), true)?;
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

    /// A copy reads what its opener writes later (the same file, not a copy of it), cannot
    /// write the word itself, and its attempt leaves the word alone.
    #[test]
    fn a_copy_reads_its_openers_later_word_and_cannot_write_it() {
        in_forked_child(|| {
            open_for_copies().map_err(|e| e.to_string())?;
            expect_eq("at first", read_word(), Some(0))?;
            write_word(5);
            // The copy says it tried to write; the opener then writes and says so.
            let (tried_read, tried_write) = nix::unistd::pipe().map_err(|e| e.to_string())?;
            let (written_read, written_write) = nix::unistd::pipe().map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            match crate::sys::fork_single_threaded().map_err(|e| e.to_string())? {
                crate::sys::Forked::Child => {
                    let before = read_word() == Some(5);
                    write_word(9);
                    let read_only = WORD_READ.load(Ordering::Acquire);
                    let mut refused = crate::sys::pwrite(read_only, &[1; 8], 0).is_err();
                    // Nor, as a uid that is not root, open it writable again.
                    refused &= nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).is_ok();
                    let again = std::ffi::CString::new(format!("/proc/self/fd/{read_only}"));
                    refused &= again.is_ok_and(|path| {
                        crate::sys::openat(libc::AT_FDCWD, &path, libc::O_RDWR).is_err()
                    });
                    let _ = nix::unistd::write(&tried_write, b"!");
                    let _ = nix::unistd::read(written_read.as_raw_fd(), &mut byte);
                    let later = read_word() == Some(6);
                    crate::sys::exit_now(if before && refused && later { 0 } else { 1 })
                }
                crate::sys::Forked::Parent(copy) => {
                    nix::unistd::read(tried_read.as_raw_fd(), &mut byte)
                        .map_err(|e| e.to_string())?;
                    expect_eq("after the copy's writes", read_word(), Some(5))?;
                    write_word(6);
                    nix::unistd::write(&written_write, b"!").map_err(|e| e.to_string())?;
                    let status = nix::sys::wait::waitpid(copy, None).map_err(|e| e.to_string())?;
                    expect_eq(
                        "the copy read 5, could not write, then read 6",
                        status,
                        nix::sys::wait::WaitStatus::Exited(copy, 0),
                    )
                }
            }
        });
    }

    /// Under a small open-files limit they are parked at half of it; under one too small to
    /// park them above every mapped fd, none is kept and a copy opens its own.
    #[test]
    fn a_small_open_files_limit_parks_them_lower_or_keeps_none() {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        in_forked_child(|| {
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
            setrlimit(Resource::RLIMIT_NOFILE, 64, hard).map_err(|e| e.to_string())?;
            open_for_copies().map_err(|e| e.to_string())?;
            let kept = kept_in_copies();
            expect_eq("kept", kept.len(), 3)?;
            expect_eq(
                "at 32..64",
                kept.iter().all(|&fd| (32..64).contains(&fd)),
                true,
            )?;
            expect_eq("the word", read_word(), Some(0))
        });
        in_forked_child(|| {
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
            setrlimit(Resource::RLIMIT_NOFILE, 15, hard).map_err(|e| e.to_string())?;
            open_for_copies().map_err(|e| e.to_string())?;
            expect_eq("kept", kept_in_copies(), Vec::<RawFd>::new())?;
            expect_eq("no word", read_word(), None)?;
            let text = crate::process::read_loadavg();
            expect_eq("loadavg opened anew", text.split_whitespace().count(), 5)
        });
    }
}
