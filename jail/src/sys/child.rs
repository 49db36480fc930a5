//! The raw calls the child of a launch makes between clone and execve, on fd numbers and
//! buffers prepared before the clone: each one system call, async-signal-safe, no allocation.

use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

/// write(2) of `bytes` to an fd number; how many were written.
pub fn write(fd: RawFd, bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: a pointer and length of a live slice, which the kernel only reads.
    let ret = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    Errno::result(ret).map(|n| n as usize)
}

/// read(2) into `buffer` from an fd number; how many bytes came (0: end of file).
pub fn read(fd: RawFd, buffer: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: a pointer and length of a live, exclusively borrowed slice the kernel fills.
    let ret = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
    Errno::result(ret).map(|n| n as usize)
}

/// Say one byte on `fd`, then close it: how the child tells its parent it reached a step.
/// Best effort: a parent that is gone learns nothing either way.
pub fn signal_and_close(fd: RawFd) {
    let _ = write(fd, &[1]);
    close(fd);
}

/// close(2) of an fd number this process holds a copy of and no Rust value owns (the child's
/// copies of pipe ends, after the clone).
pub fn close(fd: RawFd) {
    // SAFETY: integer argument; the fd numbers the child closes are its own copies, which
    // no OwnedFd in its memory will close again before execve or _exit.
    unsafe { libc::close(fd) };
}

/// setsid(2): a new session and process group. It fails only for a group leader, which a
/// new child is not, so the result is not reported.
pub fn setsid() {
    // SAFETY: no arguments.
    unsafe { libc::setsid() };
}

/// setpgid(0, 0): a process group of its own, led by itself. It fails only for a session
/// leader, which a new child is not, so the result is not reported.
pub fn setpgid_self() {
    // SAFETY: integer arguments (0: this process, and a group of its own pid).
    unsafe { libc::setpgid(0, 0) };
}

/// getpid(2).
pub fn getpid() -> libc::pid_t {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::getpid() }
}

/// getppid(2): 0 when the parent is outside our pid namespace.
pub fn getppid() -> libc::pid_t {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::getppid() }
}

/// fcntl(F_DUPFD_CLOEXEC): a copy of `fd` at the lowest free number from `floor` up.
pub fn dup_from(fd: RawFd, floor: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: integer arguments; fails cleanly if `fd` is not open.
    let ret = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
    Errno::result(ret)
}

/// dup2(2): `fd` also as `target` (close-on-exec cleared), closing what `target` was.
pub fn dup2(fd: RawFd, target: RawFd) -> Result<(), Errno> {
    // SAFETY: integer arguments; the fds replaced are the child's own, owned by no Rust value.
    let ret = unsafe { libc::dup2(fd, target) };
    Errno::result(ret).map(drop)
}

/// Room for the longest pid in decimal.
pub const PID_DIGITS: usize = 20;

/// What execve(2) needs, built before a clone so that the child only reads it: the program
/// and NULL-terminated pointer arrays into argument and environment strings that outlive it.
/// One environment entry may be left for the child to fill in with its own pid, which the
/// parent cannot know before the clone: a `KEY=` followed by [`PID_DIGITS`] zeros, copied
/// into a buffer of its own.
#[derive(Debug)]
pub struct ExecArgs<'a> {
    program: &'a CStr,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    own_pid: Option<OwnPidEntry>,
}

/// The own-pid entry: its buffer, and a pointer into it taken once, through which alone the
/// buffer is read (by the kernel, from `envp`) and written (by [`ExecArgs::write_own_pid`]).
#[derive(Debug)]
struct OwnPidEntry {
    _buffer: Vec<u8>,
    start: *mut u8,
    len_with_nul: usize,
}

impl<'a> ExecArgs<'a> {
    /// `own_pid_env`: the index in `envp` of the entry to fill in (it must end in
    /// [`PID_DIGITS`] reserved bytes).
    pub fn new(
        program: &'a CStr,
        argv: &'a [CString],
        envp: &'a [CString],
        own_pid_env: Option<usize>,
    ) -> Self {
        let mut envp_ptrs = null_terminated(envp);
        let own_pid = own_pid_env.map(|i| {
            let mut buffer = envp[i].as_bytes_with_nul().to_vec();
            let len_with_nul = buffer.len();
            assert!(len_with_nul > PID_DIGITS, "no room for a pid");
            let start = buffer.as_mut_ptr();
            envp_ptrs[i] = start as *const libc::c_char;
            OwnPidEntry {
                _buffer: buffer,
                start,
                len_with_nul,
            }
        });
        ExecArgs {
            program,
            argv: null_terminated(argv),
            envp: envp_ptrs,
            own_pid,
        }
    }

    /// Fill the reserved digits of the own-pid entry with this process's pid and a NUL.
    /// Async-signal-safe: getpid and byte writes.
    pub fn write_own_pid(&self) {
        let Some(entry) = &self.own_pid else { return };
        let first = entry.len_with_nul - 1 - PID_DIGITS;
        let mut pid = getpid() as u64;
        let mut digits = [0u8; PID_DIGITS];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (pid % 10) as u8;
            n += 1;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        // SAFETY: `start` points to the `len_with_nul` bytes of the buffer this value owns,
        // taken once at construction and never reborrowed through the Vec; `first + n + 1` is
        // at most `len_with_nul` (n <= PID_DIGITS), so every write stays inside it. The type
        // is neither Send nor Sync (raw pointers), so no other thread reads it meanwhile;
        // a child sharing the parent's memory writes while the parent is suspended, and the
        // parent only drops the buffer afterwards. The string only gets shorter, which envp
        // (a pointer to its first byte) tolerates.
        unsafe {
            for (i, digit) in digits[..n].iter().rev().enumerate() {
                *entry.start.add(first + i) = *digit;
            }
            *entry.start.add(first + n) = 0;
        }
    }

    /// execve(2): only returns, with its errno, if the exec failed.
    pub fn execve(&self) -> Errno {
        // SAFETY: the program is a NUL-terminated string and argv and envp NULL-terminated
        // arrays of pointers to NUL-terminated strings, all built in `new` from values that
        // live as long as `self` ('a, or the own-pid buffer this value owns).
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        Errno::last()
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}
