//! The syscall lists behind the profiles, in named groups (after systemd's `@group` sets and
//! Docker's default profile). A syscall in no group is answered ENOSYS by the filter; the few
//! that are allowed only with certain arguments (clone, ioctl, personality, socket) live in
//! `super::ArgRule`, not here.
//!
//! Numbers come from `libc::SYS_*` for the architecture being compiled, so the table is per
//! architecture by construction; calls newer than the pinned libc are spelled out below with
//! their numbers from the unified syscall table (the same on x86_64 and aarch64 from 403 up).

/// A system call: its name (as `SYS_name`) and its number on the target architecture.
pub(crate) type Syscall = (&'static str, i64);

/// `syscalls![SYS_read, SYS_write]` -> `&[("SYS_read", libc::SYS_read), ...]`.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name as i64)),*]
    };
}

/// A named set of syscalls that belong together, and whether `strict` keeps it.
pub(crate) struct Group {
    pub name: &'static str,
    pub in_strict: bool,
    pub calls: &'static [Syscall],
}

/// Every group of the default profile; `strict` keeps those with `in_strict`.
pub(crate) const GROUPS: &[Group] = &[
    Group { name: "basic-io", in_strict: true, calls: BASIC_IO },
    Group { name: "file-system", in_strict: true, calls: FILE_SYSTEM },
    Group { name: "xattr", in_strict: true, calls: XATTR },
    Group { name: "io-event", in_strict: true, calls: IO_EVENT },
    Group { name: "memory", in_strict: true, calls: MEMORY },
    Group { name: "process", in_strict: true, calls: PROCESS },
    Group { name: "credentials", in_strict: true, calls: CREDENTIALS },
    Group { name: "signal", in_strict: true, calls: SIGNAL },
    Group { name: "timer", in_strict: true, calls: TIMER },
    Group { name: "network-io", in_strict: true, calls: NETWORK_IO },
    Group { name: "self-sandboxing", in_strict: true, calls: SELF_SANDBOXING },
    Group { name: "newer-than-libc", in_strict: true, calls: NEWER_THAN_LIBC },
    #[cfg(target_arch = "x86_64")]
    Group { name: "x86_64-legacy", in_strict: true, calls: X86_64_LEGACY },
    // Below: what `strict` leaves out. Each is used by some real services, none by most.
    Group { name: "sysv-ipc", in_strict: false, calls: SYSV_IPC },
    Group { name: "posix-mqueue", in_strict: false, calls: POSIX_MQUEUE },
    Group { name: "legacy-aio", in_strict: false, calls: LEGACY_AIO },
    Group { name: "memlock", in_strict: false, calls: MEMLOCK },
    Group { name: "numa", in_strict: false, calls: NUMA },
    Group { name: "scheduler-tuning", in_strict: false, calls: SCHEDULER_TUNING },
    Group { name: "process-inspection", in_strict: false, calls: PROCESS_INSPECTION },
];

/// Reading and writing on descriptors one already has.
const BASIC_IO: &[Syscall] = syscalls![
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv,
    SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_lseek, SYS_close, SYS_close_range, SYS_dup,
    SYS_dup3, SYS_fcntl, SYS_sendfile, SYS_splice, SYS_tee, SYS_vmsplice, SYS_copy_file_range,
    SYS_pipe2,
];

/// Paths, directories, metadata, syncing; mknod of devices is still gated by CAP_MKNOD and
/// nodev mounts.
const FILE_SYSTEM: &[Syscall] = syscalls![
    SYS_openat, SYS_openat2, SYS_faccessat, SYS_faccessat2, SYS_newfstatat, SYS_fstat,
    SYS_statx, SYS_statfs, SYS_fstatfs, SYS_getdents64, SYS_getcwd, SYS_chdir, SYS_fchdir,
    SYS_mkdirat, SYS_unlinkat, SYS_renameat, SYS_renameat2, SYS_linkat, SYS_symlinkat,
    SYS_readlinkat, SYS_fchmod, SYS_fchmodat, SYS_fchown, SYS_fchownat, SYS_umask,
    SYS_truncate, SYS_ftruncate, SYS_fallocate, SYS_fadvise64, SYS_utimensat, SYS_mknodat,
    SYS_flock, SYS_fsync, SYS_fdatasync, SYS_sync, SYS_syncfs, SYS_sync_file_range,
    SYS_readahead, SYS_inotify_init1, SYS_inotify_add_watch, SYS_inotify_rm_watch,
    SYS_memfd_create,
];

const XATTR: &[Syscall] = syscalls![
    SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr, SYS_listxattr, SYS_llistxattr, SYS_flistxattr,
    SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_removexattr, SYS_lremovexattr,
    SYS_fremovexattr,
];

/// Waiting for descriptors: what every event loop (nginx, Go, tokio, asyncio) is built on.
const IO_EVENT: &[Syscall] = syscalls![
    SYS_ppoll, SYS_pselect6, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait,
    SYS_epoll_pwait2, SYS_eventfd2, SYS_signalfd4, SYS_timerfd_create, SYS_timerfd_settime,
    SYS_timerfd_gettime,
];

/// The process's own address space. mseal and pkeys only restrict it further.
const MEMORY: &[Syscall] = syscalls![
    SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise, SYS_mincore,
    SYS_msync, SYS_membarrier, SYS_pkey_mprotect, SYS_pkey_alloc, SYS_pkey_free, SYS_mseal,
];

/// Starting, running and ending processes and threads (clone is in `ArgRule`).
const PROCESS: &[Syscall] = syscalls![
    SYS_execve, SYS_execveat, SYS_exit, SYS_exit_group, SYS_wait4, SYS_waitid, SYS_getpid,
    SYS_getppid, SYS_gettid, SYS_getpgid, SYS_setpgid, SYS_getsid, SYS_setsid,
    SYS_set_tid_address, SYS_set_robust_list, SYS_rseq, SYS_futex, SYS_futex_waitv, SYS_prctl,
    SYS_sched_yield, SYS_sched_getaffinity, SYS_sched_setaffinity, SYS_sched_getparam,
    SYS_sched_getscheduler, SYS_sched_get_priority_max, SYS_sched_get_priority_min,
    SYS_sched_rr_get_interval, SYS_sched_getattr, SYS_getpriority, SYS_setpriority,
    SYS_ioprio_get, SYS_getrlimit, SYS_setrlimit, SYS_prlimit64, SYS_getrusage, SYS_times,
    SYS_sysinfo, SYS_uname, SYS_getcpu, SYS_getrandom, SYS_capget, SYS_capset,
    SYS_pidfd_open, SYS_restart_syscall,
];

/// Reading and changing one's own ids. Changing them is still gated by CAP_SETUID/SETGID in the
/// jail's user namespace; nginx and postgres drop to a worker user with these.
const CREDENTIALS: &[Syscall] = syscalls![
    SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getresuid, SYS_getresgid,
    SYS_getgroups, SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid,
    SYS_setresgid, SYS_setgroups, SYS_setfsuid, SYS_setfsgid,
];

/// Signals to oneself and to processes one may signal (the pid namespace bounds which).
const SIGNAL: &[Syscall] = syscalls![
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending,
    SYS_rt_sigtimedwait, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo, SYS_rt_sigsuspend,
    SYS_sigaltstack, SYS_kill, SYS_tkill, SYS_tgkill, SYS_pidfd_send_signal,
];

/// Reading clocks and arming timers; setting the clock is denied (see `DENIED`).
const TIMER: &[Syscall] = syscalls![
    SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_nanosleep, SYS_gettimeofday,
    SYS_getitimer, SYS_setitimer, SYS_timer_create, SYS_timer_settime, SYS_timer_gettime,
    SYS_timer_getoverrun, SYS_timer_delete,
];

/// Sockets once created (socket itself is in `ArgRule`: its family is checked).
const NETWORK_IO: &[Syscall] = syscalls![
    SYS_socketpair, SYS_connect, SYS_accept, SYS_accept4, SYS_bind, SYS_listen,
    SYS_getsockname, SYS_getpeername, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg,
    SYS_sendmmsg, SYS_recvmmsg, SYS_shutdown, SYS_setsockopt, SYS_getsockopt,
];

/// A program may confine itself further: seccomp filters only ever add restrictions (and need
/// no_new_privs, which the jail has set), landlock likewise. Our own second filter (the one
/// that answers EPERM) is installed with this seccomp(2) after the allowlist.
const SELF_SANDBOXING: &[Syscall] = syscalls![
    SYS_seccomp, SYS_landlock_create_ruleset, SYS_landlock_add_rule, SYS_landlock_restrict_self,
];

/// Harmless calls newer than the pinned libc (numbers from the kernel's unified table):
/// cachestat, map_shadow_stack (glibc with CET shadow stacks), futex2 wake/wait/requeue.
const NEWER_THAN_LIBC: &[Syscall] = &[
    ("SYS_cachestat", 451),
    ("SYS_map_shadow_stack", 453),
    ("SYS_futex_wake", 454),
    ("SYS_futex_wait", 455),
    ("SYS_futex_requeue", 456),
];

/// x86_64 keeps the pre-`*at` calls that aarch64 never had; busybox and older binaries use them.
#[cfg(target_arch = "x86_64")]
const X86_64_LEGACY: &[Syscall] = syscalls![
    SYS_open, SYS_creat, SYS_stat, SYS_lstat, SYS_access, SYS_getdents, SYS_mkdir, SYS_rmdir,
    SYS_unlink, SYS_rename, SYS_link, SYS_symlink, SYS_readlink, SYS_chmod, SYS_chown,
    SYS_lchown, SYS_utime, SYS_utimes, SYS_futimesat, SYS_mknod, SYS_pipe, SYS_dup2, SYS_poll,
    SYS_select, SYS_epoll_create, SYS_epoll_wait, SYS_eventfd, SYS_signalfd, SYS_inotify_init,
    SYS_fork, SYS_vfork, SYS_pause, SYS_alarm, SYS_time, SYS_arch_prctl,
];

/// System V shared memory, semaphores, message queues (confined by the IPC namespace).
const SYSV_IPC: &[Syscall] = syscalls![
    SYS_shmget, SYS_shmat, SYS_shmdt, SYS_shmctl, SYS_semget, SYS_semop, SYS_semtimedop,
    SYS_semctl, SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl,
];

const POSIX_MQUEUE: &[Syscall] = syscalls![
    SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive, SYS_mq_notify,
    SYS_mq_getsetattr,
];

/// Kernel AIO (io_setup..), used by databases; io_uring is denied outright.
const LEGACY_AIO: &[Syscall] = syscalls![
    SYS_io_setup, SYS_io_destroy, SYS_io_getevents, SYS_io_submit, SYS_io_cancel,
];

/// Pinning memory (bounded by RLIMIT_MEMLOCK).
const MEMLOCK: &[Syscall] = syscalls![
    SYS_mlock, SYS_mlock2, SYS_munlock, SYS_mlockall, SYS_munlockall,
];

/// NUMA placement of one's own memory (moving other processes' pages is denied).
const NUMA: &[Syscall] = syscalls![SYS_mbind, SYS_set_mempolicy, SYS_get_mempolicy];

/// Changing scheduling policy and I/O priority (raising either needs CAP_SYS_NICE).
const SCHEDULER_TUNING: &[Syscall] = syscalls![
    SYS_sched_setparam, SYS_sched_setscheduler, SYS_sched_setattr, SYS_ioprio_set,
];

/// The little process tracing the default profile keeps: reading another thread's robust
/// futex list (ptrace-checked, once an info leak, CVE-2014-3153's neighbourhood) and the
/// deprecated remap_file_pages.
const PROCESS_INSPECTION: &[Syscall] = syscalls![SYS_get_robust_list, SYS_remap_file_pages];

/// Never allowed by any profile; the tests check that no group contains one of these. Why,
/// by group:
/// - kernel code and boot: loading modules or a new kernel is a host takeover;
/// - keyrings are not namespaced (a tenant could read or fill other tenants' keys);
/// - bpf, perf_event_open, userfaultfd, io_uring: the largest recent kernel attack surface
///   (many of the container escapes of 2020-2024 start with one of them);
/// - file handles: open_by_handle_at walks around mount and chroot boundaries ("Shocker");
/// - mounts, old and new API (CVE-2021-41133 was a denylist that missed the new one), roots;
/// - host-wide state: swap, reboot, the clock, process accounting, quotas, the kernel log;
/// - direct hardware access: iopl, ioperm;
/// - reaching into other processes: ptrace (CVE-2019-13272), process_vm_*, kcmp, pidfd_getfd;
/// - namespaces: unshare and setns (nested namespaces are refused by default; clone with a
///   namespace flag is refused in `ArgRule`); clone3 so that its flags, behind a pointer the
///   filter cannot read, are never trusted: glibc falls back to clone on ENOSYS;
/// - obsolete calls nothing needs: uselib, ustat, sysfs, _sysctl, nfsservctl, vhangup,
///   lookup_dcookie, modify_ldt (CVE-2015-5157 class), and the LSM self-attribute calls.
#[cfg_attr(not(test), allow(dead_code))] // read by the tests and by docs/seccomp.md's reader
pub(crate) const DENIED: &[Syscall] = &{
    const COMMON: &[Syscall] = syscalls![
        SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module,
        SYS_delete_module, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_bpf,
        SYS_perf_event_open, SYS_userfaultfd, SYS_io_uring_setup, SYS_io_uring_enter,
        SYS_io_uring_register, SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_mount,
        SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_move_mount, SYS_open_tree, SYS_fsopen,
        SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_mount_setattr, SYS_swapon, SYS_swapoff,
        SYS_reboot, SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex,
        SYS_acct, SYS_quotactl, SYS_quotactl_fd, SYS_syslog, SYS_ptrace, SYS_process_vm_readv,
        SYS_process_vm_writev, SYS_kcmp, SYS_pidfd_getfd, SYS_process_madvise,
        SYS_process_mrelease, SYS_unshare, SYS_setns, SYS_clone3, SYS_lookup_dcookie,
        SYS_vhangup, SYS_nfsservctl, SYS_move_pages, SYS_migrate_pages, SYS_fanotify_init,
        SYS_memfd_secret, SYS_sethostname, SYS_setdomainname,
    ];
    #[cfg(target_arch = "x86_64")]
    const ARCH: &[Syscall] = syscalls![
        SYS_iopl, SYS_ioperm, SYS_uselib, SYS_ustat, SYS_sysfs, SYS__sysctl, SYS_modify_ldt,
        SYS_afs_syscall,
    ];
    #[cfg(not(target_arch = "x86_64"))]
    const ARCH: &[Syscall] = &[];
    // Removed from the kernel or newer than libc; spelled out so the list documents them.
    const NEWER: &[Syscall] = &[
        #[cfg(target_arch = "x86_64")]
        ("SYS_create_module", 174),
        #[cfg(target_arch = "x86_64")]
        ("SYS_get_kernel_syms", 177),
        #[cfg(target_arch = "x86_64")]
        ("SYS_query_module", 178),
        ("SYS_statmount", 457),
        ("SYS_listmount", 458),
        ("SYS_lsm_get_self_attr", 459),
        ("SYS_lsm_set_self_attr", 460),
        ("SYS_lsm_list_modules", 461),
    ];
    concat_syscalls::<{ COMMON.len() + ARCH.len() + NEWER.len() }>([COMMON, ARCH, NEWER])
};

/// Join three syscall lists in a const context.
#[cfg_attr(not(test), allow(dead_code))]
const fn concat_syscalls<const N: usize>(parts: [&[Syscall]; 3]) -> [Syscall; N] {
    let mut out: [Syscall; N] = [("", 0); N];
    let mut at = 0;
    let mut part = 0;
    while part < parts.len() {
        let mut i = 0;
        while i < parts[part].len() {
            out[at] = parts[part][i];
            at += 1;
            i += 1;
        }
        part += 1;
    }
    out
}
