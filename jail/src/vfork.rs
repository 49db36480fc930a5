//! A clone that shares the parent's memory until the child execs (CLONE_VM|CLONE_VFORK, as
//! glibc's posix_spawn and Go's os/exec do): the kernel then copies none of the parent's page
//! tables, and the parent takes no copy-on-write faults afterwards. A fork-like clone of an
//! emperor whose heap grows with its vassals costs time in proportion to that heap, which
//! made starting N vassals grow as N squared.
//!
//! The child runs on a stack of its own (below), while the parent thread is suspended in the
//! kernel until the child has exec'ed or exited, so the child may read the parent's prepared
//! values in place. x86_64 only: elsewhere [`AVAILABLE`] is false and launches copy.

use crate::error::{Errno, SysError};
use crate::sys::CloneArgs;
use std::ffi::c_void;
use std::os::fd::{OwnedFd, RawFd};

/// Whether this architecture has the clone below.
pub const AVAILABLE: bool = cfg!(target_arch = "x86_64");

/// Bytes of stack the child gets. It runs a few small frames of system calls; what it does
/// not touch is never backed by memory (MAP_NORESERVE).
const STACK_SIZE: usize = 256 * 1024;

/// An anonymous mapping for the child's stack, with an inaccessible page below it so an
/// overflow kills the child instead of writing into the parent's memory.
#[derive(Debug)]
pub struct ChildStack {
    mapping: *mut c_void,
    len: usize,
    guard: usize,
}

impl ChildStack {
    pub fn new() -> Result<Self, SysError> {
        // SAFETY: sysconf with a valid name has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let guard = usize::try_from(page).unwrap_or(4096);
        let len = STACK_SIZE + guard;
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks; nothing
        // else refers to it.
        let mapping = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mapping == libc::MAP_FAILED {
            return Err(SysError::new("mmap the child's stack", Errno::last()));
        }
        let stack = ChildStack {
            mapping,
            len,
            guard,
        };
        // SAFETY: the lowest page of the mapping made above, which nothing uses yet.
        if unsafe { libc::mprotect(mapping, guard, libc::PROT_NONE) } != 0 {
            return Err(SysError::new(
                "mprotect the child's stack guard",
                Errno::last(),
            ));
        }
        Ok(stack)
    }

    /// The lowest usable address and the size, as clone_args wants them. The top
    /// (lowest + size) is page-aligned, so 16-byte aligned as the ABI requires.
    fn bounds(&self) -> (u64, u64) {
        (self.mapping as u64 + self.guard as u64, STACK_SIZE as u64)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once. A child that used it has exec'ed
        // or exited before its clone returned (CLONE_VFORK), so nothing runs on it any more.
        unsafe { libc::munmap(self.mapping, self.len) };
    }
}

/// All signals blocked in this thread until dropped, so a signal cannot run one of the
/// parent's handlers in the child while it shares the parent's memory (the child inherits
/// the mask and unblocks once it has reset every handler to the default).
pub struct SignalsBlocked {
    old: nix::sys::signal::SigSet,
}

impl SignalsBlocked {
    pub fn new() -> Result<Self, SysError> {
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
        let mut old = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        )
        .map_err(|e| SysError::new("pthread_sigmask (block all)", e))?;
        Ok(SignalsBlocked { old })
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        use nix::sys::signal::{pthread_sigmask, SigmaskHow};
        // Restoring a mask this thread had cannot fail.
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// The child's first Rust frame: `arg` is what the parent passed; it never returns.
type ChildEntry = extern "C" fn(arg: *const c_void) -> !;

/// What the child runs, and on what: the parent keeps it in its frame until the child has
/// exec'ed or exited.
struct Entry<'a, T> {
    child: &'a T,
    run: fn(&T) -> !,
}

/// The first frame of a child sharing the parent's memory.
#[cfg(target_arch = "x86_64")]
extern "C" fn trampoline<T>(arg: *const c_void) -> ! {
    // SAFETY: `clone_sharing_memory` passes a pointer to a live `Entry<T>` in its frame, which
    // the suspended parent keeps in place until this child has exec'ed or exited.
    let entry = unsafe { &*(arg as *const Entry<'_, T>) };
    (entry.run)(entry.child)
}

/// clone3 with CLONE_VM|CLONE_VFORK|CLONE_PIDFD added to `args`, the child running
/// `run(child)` on a stack of its own with every signal blocked. Returns the child's pid and
/// pidfd once it has exec'ed or exited.
///
/// # Safety
/// `run` must run only async-signal-safe code (raw system calls on values prepared before
/// the clone), change nothing of the shared memory but its own stack and buffers the parent
/// no longer reads, never return, and never change what lives in the memory descriptor
/// (credentials, which reset the dumpable flag; prctls of the mm).
#[cfg(target_arch = "x86_64")]
pub unsafe fn clone_sharing_memory<T>(
    args: &mut CloneArgs,
    child: &T,
    run: fn(&T) -> !,
) -> Result<(libc::pid_t, OwnedFd), SysError> {
    let stack = ChildStack::new()?;
    let _blocked = SignalsBlocked::new()?;
    let entry = Entry { child, run };
    let mut pidfd: RawFd = -1;
    args.flags |= libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut RawFd as u64;
    // SAFETY: the caller keeps the contract above for `run`; `entry` and `pidfd` live in this
    // frame, which stays put while the kernel suspends the thread until the child's execve or
    // exit.
    let pid = unsafe {
        clone3_sharing_memory(
            args,
            &stack,
            trampoline::<T>,
            &entry as *const Entry<'_, T> as *const c_void,
        )
    };
    args.pidfd = 0;
    let pid = pid.map_err(|e| SysError::new("clone3 (CLONE_VM|CLONE_VFORK)", e))?;
    // SAFETY: the clone succeeded, so the kernel stored a new pidfd in the local.
    Ok((pid, unsafe { crate::sys::take_pidfd(pidfd) }))
}

#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn clone_sharing_memory<T>(
    _: &mut CloneArgs,
    _: &T,
    _: fn(&T) -> !,
) -> Result<(libc::pid_t, OwnedFd), SysError> {
    unreachable!("vfork::AVAILABLE is false on this architecture")
}

/// clone3 with CLONE_VM|CLONE_VFORK added to `args`, the child running `entry(arg)` on
/// `stack`. Returns the child's pid once it has exec'ed or exited.
///
/// # Safety
/// As [`clone_sharing_memory`]; `arg` must stay valid until this returns, which it does,
/// since the parent is suspended until then.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_sharing_memory(
    args: &mut CloneArgs,
    stack: &ChildStack,
    entry: ChildEntry,
    arg: *const c_void,
) -> Result<libc::pid_t, Errno> {
    args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
    (args.stack, args.stack_size) = stack.bounds();
    let ret: i64;
    // SAFETY: clone3 on a valid clone_args of the size passed. In the parent, `syscall`
    // clobbers only rax (the result), rcx and r11. The child starts at the next instruction
    // with the parent's registers but rax = 0 and rsp at the top of `stack`: it clears the
    // frame pointer (the end of any backtrace), calls `entry(arg)` with the 16-byte aligned
    // stack the ABI wants at a call, and never comes back (ud2 would trap if it did). The
    // asm may read and write memory: the kernel writes the pidfd, the child its own values.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        Err(Errno::from_raw(-ret as i32))
    } else {
        Ok(ret as libc::pid_t)
    }
}
