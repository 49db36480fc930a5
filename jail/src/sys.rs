//! Thin wrappers over the raw system calls that nix does not cover (clone3, pidfd_send_signal,
//! close_range, seccomp) and the few libc calls the child side of a launch needs. Each is a
//! single syscall on plain values: async-signal-safe, no allocation, so the child of a clone
//! may call them before execve even when the parent had other threads.

use nix::errno::Errno;
use std::os::fd::RawFd;

/// The kernel's `struct clone_args` (linux/sched.h), version 2 (88 bytes, with `cgroup`).
#[repr(C)]
#[derive(Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// clone3(2) without CLONE_VM: fork-like, the child continues on a copy of the stack.
/// Returns 0 in the child, the child's pid in the parent.
///
/// # Safety
/// The caller must make the child run only async-signal-safe code until it execs or exits:
/// other threads of the parent do not exist in the child and may have held locks (malloc's).
pub unsafe fn clone3(args: &mut CloneArgs) -> Result<libc::pid_t, Errno> {
    // SAFETY: `args` is a valid, exclusively borrowed clone_args of the size we pass; without
    // CLONE_VM/CLONE_SETTLS the child gets a private copy of memory, so no stack is shared.
    // The caller upholds the async-signal-safety contract documented above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    Errno::result(ret).map(|pid| pid as libc::pid_t)
}

/// pidfd_send_signal(2): signal the process a pidfd names, immune to pid reuse.
pub fn pidfd_send_signal(pidfd: RawFd, signal: i32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments; a null siginfo means "as if sent by kill(2)".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC: mark every fd from `first` up close-on-exec.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments; marking fds close-on-exec affects no memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(ret).map(drop)
}

/// Reset every catchable signal to its default action and unblock all signals, so a new
/// program starts clean (uWSGI 2.0 leaves SIGTERM/SIGHUP/SIGPIPE ignored in its payloads).
/// Async-signal-safe: only sigaction and sigprocmask.
pub fn reset_signals() {
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL takes no handler pointer; sigaction on an invalid (reserved) signal
        // number just fails with EINVAL, which we ignore.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
    // SAFETY: an empty, initialised sigset; the old set is not requested.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are reparented to us, not to pid 1.
pub fn set_child_subreaper() -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// prctl(PR_SET_PDEATHSIG): the signal this process gets when its parent thread dies.
pub fn set_parent_death_signal(signal: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// prctl(PR_SET_NO_NEW_PRIVS): execve never grants privileges again (setuid bits, file caps).
/// Required before an unprivileged process may install a seccomp filter.
pub fn set_no_new_privs() -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// The kernel's `struct sock_fprog` (linux/filter.h), over seccompiler's instruction type
/// (libc's has the same layout but is a different Rust type).
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const seccompiler::sock_filter,
}

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog): add a filter to the calling thread. No
/// allocation: the program is borrowed, the header lives on the stack.
pub fn seccomp_set_mode_filter(program: &[seccompiler::sock_filter]) -> Result<(), Errno> {
    let len = libc::c_ushort::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
    let header = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    // SAFETY: `header` is a correctly laid-out sock_fprog (repr(C), and seccompiler's
    // sock_filter is the kernel's repr(C) struct) pointing at `len` live instructions borrowed
    // for the duration of the call; the kernel copies the program before returning and keeps
    // no pointer into our memory. Flags 0: only this thread is affected.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &header as *const SockFprog,
        )
    };
    Errno::result(ret).map(drop)
}
