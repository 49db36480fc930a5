//! Thin wrappers over the raw system calls that nix does not cover (clone3, pidfd_send_signal,
//! close_range, seccomp) and the few libc calls the child side of a launch needs. Each is a
//! single syscall on plain values: async-signal-safe, no allocation, so the child of a clone
//! may call them before execve even when the parent had other threads.

use nix::errno::Errno;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

mod child;
mod creds;
mod fork;
pub use child::*;
pub use creds::*;
pub use fork::*;

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

/// What a clone returned: in the child, nothing; in the parent, the child's pid and pidfd.
#[derive(Debug)]
pub enum Cloned {
    Child,
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// clone3(2) without CLONE_VM: fork-like, the child continues on a copy of the stack. Adds
/// CLONE_PIDFD: the parent gets the child's pidfd.
///
/// # Safety
/// The caller must make the child run only async-signal-safe code until it execs or exits:
/// other threads of the parent do not exist in the child and may have held locks (malloc's).
pub unsafe fn clone3(args: &mut CloneArgs) -> Result<Cloned, Errno> {
    let mut pidfd: RawFd = -1;
    args.flags |= libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut RawFd as u64;
    // SAFETY: `args` is a valid, exclusively borrowed clone_args of the size we pass, whose
    // pidfd field points to a local that outlives the call; without CLONE_VM/CLONE_SETTLS
    // the child gets a private copy of memory, so no stack is shared. The caller upholds the
    // async-signal-safety contract documented above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    args.pidfd = 0;
    match Errno::result(ret)? {
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: pid as libc::pid_t,
            // SAFETY: the clone succeeded, so CLONE_PIDFD made the kernel store a new pidfd
            // in the local, and nothing else has its number.
            pidfd: unsafe { take_pidfd(pidfd) },
        }),
    }
}

/// Own the pidfd CLONE_PIDFD made the kernel store for a clone that succeeded.
///
/// # Safety
/// `raw` must be the number the kernel stored for that clone, taken once.
pub(crate) unsafe fn take_pidfd(raw: RawFd) -> OwnedFd {
    assert!(raw >= 0, "clone3 with CLONE_PIDFD returned no pidfd");
    // SAFETY: the kernel installed this fd in our table for the clone just made; the caller
    // takes it once, so nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
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

/// close_range(2) of every fd from `first` up but `kept` (sorted) and `also_kept`, as a gap
/// between them at a time. Async-signal-safe: no allocation.
pub fn close_from_except(first: u32, kept: &[RawFd], also_kept: RawFd) -> Result<(), Errno> {
    let mut from = first;
    let mut close_until = |fd: RawFd| -> Result<(), Errno> {
        let Ok(fd) = u32::try_from(fd) else {
            return Ok(());
        };
        if fd >= from {
            if fd > from {
                close_range(from, fd - 1)?;
            }
            from = fd + 1;
        }
        Ok(())
    };
    // The two lists merged in order, without allocating.
    let mut also = Some(also_kept);
    for &fd in kept {
        if let Some(extra) = also.filter(|&extra| extra < fd) {
            close_until(extra)?;
            also = None;
        }
        close_until(fd)?;
    }
    if let Some(extra) = also {
        close_until(extra)?;
    }
    close_range(from, u32::MAX)
}

/// close_range(2) of fds `first` to `last`.
fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments. The caller holds no Rust owner of these numbers that
    // it will use again (a child closing what it does not keep).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    Errno::result(ret).map(drop)
}

/// close_range(2) with CLOSE_RANGE_UNSHARE from `first` to the last fd: a process that shares
/// its fd table (CLONE_FILES) gets a private one holding only the fds below `first`; the
/// shared table, and every fd in it, stays the other process's, untouched.
pub fn unshare_fds_below(first: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments; the kernel swaps in the new table for this process
    // only, and no memory of ours refers to the fds dropped from it (the child holds raw fd
    // numbers below `first` only).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    };
    Errno::result(ret).map(drop)
}

/// The kernel's `struct sigaction` for rt_sigaction(2) on x86_64 and aarch64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Reset every signal (1-64) to its default action and unblock all signals, so a new program
/// starts clean (uWSGI 2.0 leaves SIGTERM/SIGHUP/SIGPIPE ignored in its payloads). Raw
/// rt_sigaction, because glibc's wrappers refuse its reserved signals 32 and 33, which an
/// ignored disposition inherited from our own parent would otherwise carry into the payload.
/// Async-signal-safe: only system calls.
pub fn reset_signals() {
    let default = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid kernel sigaction (SIG_DFL, no flags) and a null old-action pointer;
        // the sigset size is the kernel's 8 bytes.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    let empty: u64 = 0;
    // SAFETY: a zero kernel sigset of the kernel's size; the old set is not requested.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
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

/// prctl(2) with integer arguments only.
pub fn prctl(option: i32, arg2: u64, arg3: u64) -> Result<i32, Errno> {
    // SAFETY: every option we pass takes integer arguments, no pointers.
    let ret = unsafe {
        libc::prctl(
            option,
            arg2 as libc::c_ulong,
            arg3 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    Errno::result(ret)
}

/// setrlimit(2) for one resource.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: a pointer to a live rlimit; the resource number is checked by the kernel.
    let ret = unsafe { libc::setrlimit(resource as _, &limit) };
    Errno::result(ret).map(drop)
}

/// getrlimit(2) for one resource: (soft, hard).
pub fn getrlimit(resource: u32) -> Result<(u64, u64), Errno> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a pointer to a live rlimit the kernel fills.
    let ret = unsafe { libc::getrlimit(resource as _, &mut limit) };
    Errno::result(ret).map(|_| (limit.rlim_cur, limit.rlim_max))
}

/// chdir(2) to a prepared C string.
pub fn chdir(dir: &std::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: a NUL-terminated string that outlives the call.
    let ret = unsafe { libc::chdir(dir.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// Set IFF_UP on an interface through SIOCGIFFLAGS / SIOCSIFFLAGS on a throwaway socket.
pub fn interface_up(name: &std::ffi::CStr) -> Result<(), (&'static str, Errno)> {
    // SAFETY: plain integer arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(("socket", Errno::last()));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in request.ifr_name.iter_mut().zip(name.to_bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `request` is a valid ifreq naming the interface; the kernel fills ifru_flags.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) < 0 {
            Err(("ioctl(SIOCGIFFLAGS)", Errno::last()))
        } else {
            request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) < 0 {
                Err(("ioctl(SIOCSIFFLAGS)", Errno::last()))
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: we own fd.
    unsafe { libc::close(fd) };
    result
}

/// The kernel's `struct open_how` for openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2) relative to `dir` with RESOLVE_* flags; returns the new fd.
pub fn openat2(
    dir: RawFd,
    path: &std::ffi::CStr,
    flags: u64,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    let how = OpenHow {
        flags,
        mode: 0,
        resolve,
    };
    // SAFETY: a NUL-terminated path and an open_how of the size we pass, both alive for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = Errno::result(ret)? as RawFd;
    // SAFETY: openat2 returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// pread(2) into `buf` from `offset` of `fd`.
pub fn pread(fd: RawFd, buf: &mut [u8], offset: i64) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable memory of its length for the call; a number that is not an
    // open fd fails with EBADF.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset) };
    Errno::result(n).map(|n| n as usize)
}

/// pwrite(2) of `buf` at `offset` of `fd`.
pub fn pwrite(fd: RawFd, buf: &[u8], offset: i64) -> Result<usize, Errno> {
    // SAFETY: `buf` is readable memory of its length for the call; a number that is not an
    // open fd (or one open read-only) fails with EBADF.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) };
    Errno::result(n).map(|n| n as usize)
}

/// openat(2) relative to `dir` (no mode: for files that exist); returns the new fd.
pub fn openat(dir: RawFd, path: &std::ffi::CStr, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: a NUL-terminated path alive for the call; integer arguments otherwise.
    let fd = Errno::result(unsafe { libc::openat(dir, path.as_ptr(), flags) })?;
    // SAFETY: openat returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// mount("proc", "/proc", "proc", nosuid|nodev|noexec): async-signal-safe, for a child that is
/// pid 1 of a new pid namespace and must see its own processes.
pub fn mount_proc_at_slash_proc() -> Result<(), Errno> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: static NUL-terminated strings and a null data pointer.
    let ret = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    Errno::result(ret).map(drop)
}

/// prctl(PR_SET_NO_NEW_PRIVS): execve never grants privileges again (setuid bits, file caps).
/// Required before an unprivileged process may install a seccomp filter.
pub fn set_no_new_privs() -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog): add a filter to the calling thread. No
/// allocation: the program is borrowed, the header lives on the stack.
pub fn seccomp_set_mode_filter(program: &[libc::sock_filter]) -> Result<(), Errno> {
    let len = libc::c_ushort::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
    let header = libc::sock_fprog {
        len,
        // The kernel only reads the program; the field is `*mut` in the C header alone.
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `header` is libc's sock_fprog (the kernel's layout) pointing at `len` live
    // instructions borrowed for the duration of the call; the kernel copies the program before
    // returning, never writes through the pointer and keeps no pointer into our memory.
    // Flags 0: only this thread is affected.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &header as *const libc::sock_fprog,
        )
    };
    Errno::result(ret).map(drop)
}

/// _exit(2): end this process now, running no exit handlers and flushing no buffers (a forked
/// worker must not flush or tear down what is its parent's).
pub fn exit_now(status: i32) -> ! {
    // SAFETY: _exit takes no pointer and never returns; it is async-signal-safe.
    unsafe { libc::_exit(status) }
}

/// sysconf(_SC_NPROCESSORS_ONLN): the CPUs online; None when glibc cannot tell.
pub fn online_cpus() -> Option<u64> {
    // SAFETY: sysconf with a valid name has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(cpus).ok().filter(|&n| n > 0)
}

/// malloc_trim(0): hand every whole free page of the allocator's heap back to the kernel (the
/// top of the heap by brk, free pages inside it by MADV_DONTNEED).
pub fn trim_heap() {
    // SAFETY: no pointer is passed; glibc walks its own arenas under their locks, and only
    // releases memory no live allocation holds.
    unsafe { libc::malloc_trim(0) };
}

/// How much of the main thread's stack below the caller is left alone by
/// [`discard_stack_below_caller`]: this function's own frame, the madvise call's, and margin.
const STACK_KEPT_BELOW_CALLER: usize = 8 * 1024;
/// How deep below that the discarded range reaches (deeper than any set-up goes).
/// Both are multiples of any page size.
const STACK_DISCARDED: usize = 1024 * 1024;

/// madvise(MADV_DONTNEED) the main thread's stack pages below the caller's frame: memory a
/// deep set-up dirtied once and that no live frame uses any more. They read back as zero
/// pages when a later call goes that deep again. On any thread but the main one, nothing.
#[inline(never)]
pub fn discard_stack_below_caller() {
    // SAFETY: integer arguments only.
    let (pid, tid, page) = unsafe {
        (
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let Ok(page) = usize::try_from(page) else {
        return;
    };
    if i64::from(pid) != tid || !page.is_power_of_two() {
        return;
    }
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    let top = (here & !(page - 1)).saturating_sub(STACK_KEPT_BELOW_CALLER);
    let bottom = top.saturating_sub(STACK_DISCARDED);
    // SAFETY: [bottom, top) lies below this function's frame with 8 KiB to spare, on the
    // main thread's stack, which grows down: no live frame is there (the callee frames below
    // ours, madvise's own, are inside the kept 8 KiB), and the range holds no live data
    // (x86-64's red zone is 128 bytes below a leaf's stack pointer; we are not a leaf and
    // keep 8 KiB). What else could sit within 1 MiB below the main stack: nothing the kernel
    // maps on its own (it puts the mmap base at least 128 MiB below the stack top and keeps
    // a guard gap below a stack), and this process maps nothing MAP_FIXED there; the part of
    // the range the stack never grew into is unmapped, which madvise reports (ENOMEM, ignored)
    // after it has discarded the mapped part. Discarded stack pages read back as zeroes.
    let _ = unsafe {
        libc::madvise(
            bottom as *mut libc::c_void,
            top - bottom,
            libc::MADV_DONTNEED,
        )
    };
}
