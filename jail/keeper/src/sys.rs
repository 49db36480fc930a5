//! The raw system calls the keeper makes, for x86_64 and aarch64 (no libc here). Each wrapper
//! returns the kernel's answer; a negative return is `-errno`.

use core::arch::asm;

pub const EINTR: i32 = 4;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const KILL: usize = 62;
    pub const RT_SIGPENDING: usize = 127;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const PRCTL: usize = 157;
    pub const EXIT_GROUP: usize = 231;
    pub const WAITID: usize = 247;
    pub const PPOLL: usize = 271;
    pub const SIGNALFD4: usize = 289;
    pub const EXECVEAT: usize = 322;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const KILL: usize = 129;
    pub const RT_SIGPENDING: usize = 136;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const PRCTL: usize = 167;
    pub const EXIT_GROUP: usize = 94;
    pub const WAITID: usize = 95;
    pub const PPOLL: usize = 73;
    pub const SIGNALFD4: usize = 74;
    pub const EXECVEAT: usize = 281;
}

/// A system call with up to five arguments.
///
/// # Safety
/// The arguments must be what system call `n` expects: any pointer among them valid for the
/// reads and writes that call makes.
#[cfg(target_arch = "x86_64")]
unsafe fn syscall(n: usize, a: [usize; 5]) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux system call convention; rcx and r11 are clobbered by the
    // instruction, memory by the kernel (the caller's contract covers what it touches).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// # Safety
/// As the x86_64 version.
#[cfg(target_arch = "aarch64")]
unsafe fn syscall(n: usize, a: [usize; 5]) -> isize {
    let ret: isize;
    // SAFETY: the aarch64 Linux system call convention (x8 the number, x0-x4 arguments).
    unsafe {
        asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4],
            options(nostack),
        );
    }
    ret
}

/// `ret` as a result: the value, or the errno.
fn result(ret: isize) -> Result<usize, i32> {
    match ret {
        r if r < 0 => Err(-r as i32),
        r => Ok(r as usize),
    }
}

/// The kernel's sigset_t is 8 bytes on both architectures.
const SIGSET_SIZE: usize = 8;

pub fn blocked_signals() -> Result<u64, i32> {
    let mut set = 0u64;
    // SAFETY: no new set (NULL), the old one written to a u64 we own.
    let ret = unsafe {
        syscall(
            nr::RT_SIGPROCMASK,
            [0, 0, &mut set as *mut u64 as usize, SIGSET_SIZE, 0],
        )
    };
    result(ret).map(|_| set)
}

pub fn block(set: u64) -> Result<(), i32> {
    const SIG_BLOCK: usize = 0;
    // SAFETY: the set is read from a u64 we own; no old set asked for.
    let ret = unsafe {
        syscall(
            nr::RT_SIGPROCMASK,
            [SIG_BLOCK, &set as *const u64 as usize, 0, SIGSET_SIZE, 0],
        )
    };
    result(ret).map(drop)
}

pub fn signalfd(set: u64) -> Result<i32, i32> {
    const SFD_NONBLOCK: usize = 0o4000;
    const SFD_CLOEXEC: usize = 0o2000000;
    // SAFETY: a new signalfd (-1) for the set read from a u64 we own.
    let ret = unsafe {
        syscall(
            nr::SIGNALFD4,
            [
                usize::MAX,
                &set as *const u64 as usize,
                SIGSET_SIZE,
                SFD_NONBLOCK | SFD_CLOEXEC,
                0,
            ],
        )
    };
    result(ret).map(|fd| fd as i32)
}

pub fn pending_signals() -> u64 {
    let mut set = 0u64;
    // SAFETY: writes one sigset to a u64 we own. It cannot fail with a valid pointer.
    unsafe {
        syscall(
            nr::RT_SIGPENDING,
            [&mut set as *mut u64 as usize, SIGSET_SIZE, 0, 0, 0],
        )
    };
    set
}

/// Take the pending signals of `set` (blocked ones) off the pending list, without waiting.
pub fn take_pending(set: u64) {
    let now = [0i64; 2];
    // SAFETY: the set and a zero timespec read from locals; no siginfo asked for.
    unsafe {
        syscall(
            nr::RT_SIGTIMEDWAIT,
            [
                &set as *const u64 as usize,
                0,
                now.as_ptr() as usize,
                SIGSET_SIZE,
                0,
            ],
        )
    };
}

/// A pollfd, as the kernel reads and writes it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PollFd {
    fd: i32,
    events: i16,
    pub revents: i16,
}

impl PollFd {
    pub fn new(fd: i32) -> Self {
        const POLLIN: i16 = 1;
        PollFd {
            fd,
            events: POLLIN,
            revents: 0,
        }
    }
}

/// Block until one of `fds` is readable or hung up (no timeout).
pub fn poll(fds: &mut [PollFd]) -> Result<(), i32> {
    // SAFETY: the kernel writes the revents of fds.len() pollfds we own; no timeout, no mask.
    let ret = unsafe {
        syscall(
            nr::PPOLL,
            [fds.as_mut_ptr() as usize, fds.len(), 0, 0, SIGSET_SIZE],
        )
    };
    result(ret).map(drop)
}

const P_ALL: usize = 0;
const P_PID: usize = 1;
const WNOHANG: usize = 1;
const WEXITED: usize = 4;
const WNOWAIT: usize = 0x0100_0000;

/// A child that has exited (left unreaped), if any.
pub fn exited_child() -> Option<i32> {
    // siginfo_t is 128 bytes; si_pid is at byte 16 on both architectures.
    let mut info = [0i32; 32];
    // SAFETY: the kernel writes one siginfo_t into the 128 bytes we own; no rusage.
    let ret = unsafe {
        syscall(
            nr::WAITID,
            [
                P_ALL,
                0,
                info.as_mut_ptr() as usize,
                WEXITED | WNOHANG | WNOWAIT,
                0,
            ],
        )
    };
    match result(ret) {
        Ok(_) if info[4] > 0 => Some(info[4]),
        _ => None,
    }
}

/// Collect exited child `pid`.
pub fn reap(pid: i32) {
    let mut info = [0i32; 32];
    // SAFETY: as in exited_child, for one pid.
    unsafe {
        syscall(
            nr::WAITID,
            [
                P_PID,
                pid as usize,
                info.as_mut_ptr() as usize,
                WEXITED | WNOHANG,
                0,
            ],
        )
    };
}

/// SIGKILL the payload's process group (it leads one) and the payload itself.
pub fn kill_group(pid: i32) {
    const SIGKILL: usize = 9;
    // SAFETY: kill(2) takes no pointers.
    unsafe {
        syscall(nr::KILL, [(-pid) as usize, SIGKILL, 0, 0, 0]);
        syscall(nr::KILL, [pid as usize, SIGKILL, 0, 0, 0]);
    }
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH); returns only on failure, with the errno.
pub fn execute(fd: i32, argv: *const *const u8, envp: *const *const u8) -> i32 {
    const AT_EMPTY_PATH: usize = 0x1000;
    let empty = b"\0";
    // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated strings (the tail of
    // our own argv, and our envp, as the kernel gave them); the path is an empty C string.
    let ret = unsafe {
        syscall(
            nr::EXECVEAT,
            [
                fd as usize,
                empty.as_ptr() as usize,
                argv as usize,
                envp as usize,
                AT_EMPTY_PATH,
            ],
        )
    };
    -(ret as i32)
}

/// PR_SET_DUMPABLE 0: no one without CAP_SYS_PTRACE reads or traces this process.
pub fn not_dumpable() {
    const PR_SET_DUMPABLE: usize = 4;
    // SAFETY: integer arguments only.
    unsafe { syscall(nr::PRCTL, [PR_SET_DUMPABLE, 0, 0, 0, 0]) };
}

/// This process's name in /proc (`comm`), at most 15 bytes and a NUL.
pub fn set_name(name: &[u8]) {
    const PR_SET_NAME: usize = 15;
    // SAFETY: the name is a NUL-terminated string we own; the kernel copies 16 bytes at most.
    unsafe { syscall(nr::PRCTL, [PR_SET_NAME, name.as_ptr() as usize, 0, 0, 0]) };
}

pub fn write_stderr(bytes: &[u8]) {
    // SAFETY: the kernel reads bytes.len() bytes we own.
    unsafe { syscall(nr::WRITE, [2, bytes.as_ptr() as usize, bytes.len(), 0, 0]) };
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes no pointer, and it does not return: the code after it is
    // never reached.
    unsafe {
        syscall(nr::EXIT_GROUP, [code as usize, 0, 0, 0, 0]);
        core::hint::unreachable_unchecked()
    }
}
