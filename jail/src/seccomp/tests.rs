//! Profiles against the real kernel. Every filtered probe runs in a forked child (the test
//! process stays unfiltered); denied calls get harmless bad arguments, so without the filter
//! they fail with EFAULT/EBADF/EINVAL/EPERM (or succeed harmlessly) and with it with ENOSYS,
//! in the style of bubblewrap's try-syscall. The same probes run without the filter must not
//! give ENOSYS, so these tests can fail.

use super::*;
use std::ffi::CString;

/// Exit code of a child whose probe panicked.
const PANICKED: i32 = 101;

/// Run `probe` in a forked child and return its exit code (128 + signal if it was killed).
fn in_child(probe: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the test binary has other threads; the child only runs `probe` (raw syscalls,
    // and glibc's malloc, which fork leaves usable) and then `_exit`s, never returning into
    // the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(probe)).unwrap_or(PANICKED);
        // SAFETY: leave at once, without the harness's destructors or atexit handlers.
        unsafe { libc::_exit(code) }
    }
    wait_for(pid)
}

/// Reap `pid`: its exit code, or 128 + the signal that killed it.
fn wait_for(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, writing its status into a local.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == pid {
            break;
        }
        assert_eq!(Errno::last(), Errno::EINTR, "waitpid {pid}");
    }
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// A raw syscall with integer (or null pointer) arguments; returns 0 on success or the errno.
fn errno_of_call(number: libc::c_long, args: [libc::c_long; 6]) -> i32 {
    // SAFETY: every caller passes integers and null pointers only: the kernel validates them
    // and writes no memory of ours.
    let ret =
        unsafe { libc::syscall(number, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if ret == -1 {
        Errno::last_raw()
    } else {
        0
    }
}

fn install(profile: Profile) {
    let filter = build(profile).expect("a filter");
    filter.install_here().expect("install filter");
}

/// A denied syscall with arguments that make it fail (or do nothing) without the filter.
struct Probe {
    name: &'static str,
    number: libc::c_long,
    args: [libc::c_long; 6],
    /// Behind a kernel config option (CONFIG_KEXEC, CONFIG_IO_URING, ...): a kernel built
    /// without it answers ENOSYS itself, so the negative control cannot ask for more.
    optional: bool,
}

const fn probe(name: &'static str, number: libc::c_long, args: [libc::c_long; 6]) -> Probe {
    Probe {
        name,
        number,
        args,
        optional: false,
    }
}

const fn optional(name: &'static str, number: libc::c_long, args: [libc::c_long; 6]) -> Probe {
    Probe {
        optional: true,
        ..probe(name, number, args)
    }
}

const NEWUSER: libc::c_long = libc::CLONE_NEWUSER as libc::c_long;

const DENIED_PROBES: &[Probe] = &[
    optional("bpf", libc::SYS_bpf, [0xffff, 0, 0, 0, 0, 0]),
    optional(
        "perf_event_open",
        libc::SYS_perf_event_open,
        [0, 0, -1, -1, 0, 0],
    ),
    optional("keyctl", libc::SYS_keyctl, [0xffff, 0, 0, 0, 0, 0]),
    optional("add_key", libc::SYS_add_key, [0, 0, 0, 0, 0, 0]),
    optional(
        "userfaultfd",
        libc::SYS_userfaultfd,
        [0xffff_ffff, 0, 0, 0, 0, 0],
    ),
    optional(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        [-1, 0, 0, 0, 0, 0],
    ),
    optional(
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        [-1, 0, 0, 0, -1, 0],
    ),
    // 0x10000 segments (more than KEXEC_SEGMENT_MAX) and an unknown flag: EINVAL or EPERM
    // before anything is loaded or unloaded.
    optional(
        "kexec_load",
        libc::SYS_kexec_load,
        [0, 0x10000, 0, 0x8000, 0, 0],
    ),
    // A zero-length image is refused (ENOEXEC) before anything is loaded.
    optional("init_module", libc::SYS_init_module, [0, 0, 0, 0, 0, 0]),
    probe("mount", libc::SYS_mount, [0, 0, 0, 0, 0, 0]),
    probe("fsopen", libc::SYS_fsopen, [0, 0, 0, 0, 0, 0]),
    probe("open_tree", libc::SYS_open_tree, [-1, 0, 0, 0, 0, 0]),
    probe("move_mount", libc::SYS_move_mount, [-1, 0, -1, 0, 0, 0]),
    probe("pivot_root", libc::SYS_pivot_root, [0, 0, 0, 0, 0, 0]),
    probe("chroot", libc::SYS_chroot, [0, 0, 0, 0, 0, 0]),
    // Without the filter this may succeed: the child is then alone in a new user namespace,
    // which harms nothing.
    probe("unshare", libc::SYS_unshare, [NEWUSER, 0, 0, 0, 0, 0]),
    probe("setns", libc::SYS_setns, [-1, 0, 0, 0, 0, 0]),
    // PTRACE_GETREGS on pid 0, which is nobody's tracee: ESRCH.
    probe("ptrace", libc::SYS_ptrace, [12, 0, 0, 0, 0, 0]),
    optional(
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        [0, 0, 0, 0, 0, 1],
    ),
    probe("pidfd_getfd", libc::SYS_pidfd_getfd, [-1, 0, 0, 0, 0, 0]),
    optional(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        [0, 0, 0, 0, 0, 0],
    ),
    // A null clone_args of size 0: EINVAL.
    probe("clone3", libc::SYS_clone3, [0, 0, 0, 0, 0, 0]),
    // Wrong magic numbers: EPERM or EINVAL, never a reboot.
    probe("reboot", libc::SYS_reboot, [0, 0, 0, 0, 0, 0]),
    optional("swapon", libc::SYS_swapon, [0, 0, 0, 0, 0, 0]),
    probe(
        "clock_settime",
        libc::SYS_clock_settime,
        [0xffff, 0, 0, 0, 0, 0],
    ),
    #[cfg(target_arch = "x86_64")]
    optional("iopl", libc::SYS_iopl, [4, 0, 0, 0, 0, 0]),
];

/// Give up root, so the negative control can do no harm even if a probe's arguments were
/// wrong. Ignored if we are not root to begin with.
fn become_nobody() {
    // SAFETY: integer arguments only.
    unsafe { libc::setresuid(65534, 65534, 65534) };
}

#[test]
fn seccomp_denied_syscalls_get_enosys() {
    for profile in [Profile::Default, Profile::Strict] {
        for probe in DENIED_PROBES {
            let errno = in_child(|| {
                install(profile);
                errno_of_call(probe.number, probe.args)
            });
            assert_eq!(
                errno,
                libc::ENOSYS,
                "{profile}: {} under the filter",
                probe.name
            );
        }
    }
}

#[test]
fn seccomp_denied_probes_reach_the_kernel_without_filter() {
    let mut compiled_out = Vec::new();
    for probe in DENIED_PROBES {
        let errno = in_child(|| {
            become_nobody();
            errno_of_call(probe.number, probe.args)
        });
        if errno == libc::ENOSYS && probe.optional {
            compiled_out.push(probe.name);
            continue;
        }
        assert_ne!(
            errno,
            libc::ENOSYS,
            "control: {} gave ENOSYS unfiltered",
            probe.name
        );
    }
    if !compiled_out.is_empty() {
        eprintln!("not built into this kernel, control skipped: {compiled_out:?}");
    }
    assert!(
        compiled_out.len() < DENIED_PROBES.len() / 2,
        "{compiled_out:?}"
    );
}

/// clone(2) with `flags` (no new stack: fork-like); 0 if a child was made (and reaped).
fn clone_errno(flags: u64) -> i32 {
    // SAFETY: without CLONE_VM the child gets a copy of our memory and stack, and `_exit`s at
    // once; the parent reaps it below.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags as libc::c_long, 0, 0, 0, 0) };
    match pid {
        -1 => Errno::last_raw(),
        // SAFETY: the clone child leaves at once.
        0 => unsafe { libc::_exit(42) },
        pid => {
            assert_eq!(wait_for(pid as libc::pid_t), 42);
            0
        }
    }
}

#[test]
fn seccomp_clone_with_namespace_flags_is_refused_but_fork_works() {
    let code = in_child(|| {
        install(Profile::Default);
        // Each namespace flag on its own.
        for bit in (0..32).filter(|bit| NAMESPACE_FLAGS & 1 << bit != 0) {
            if clone_errno(1 << bit | libc::SIGCHLD as u64) != libc::EPERM {
                return 10 + bit;
            }
        }
        if clone_errno(libc::SIGCHLD as u64) != 0 {
            return 2;
        }
        0
    });
    assert_eq!(
        code, 0,
        "clone under the filter (10 + n: the namespace flag 1 << n was not refused)"
    );
}

#[test]
fn seccomp_clone_newuser_works_without_filter() {
    let code = in_child(|| clone_errno(libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64));
    assert_eq!(code, 0, "control: clone(CLONE_NEWUSER) failed unfiltered");
}

/// ioctl(fd, request, arg) with the request passed as a full 64-bit register.
fn ioctl_errno(fd: libc::c_int, request: u64, arg: *mut libc::c_int) -> i32 {
    // SAFETY: `arg` points to a live c_int; TIOCSTI reads one byte from it, FIONREAD writes
    // one int into it.
    let ret = unsafe { libc::syscall(libc::SYS_ioctl, fd, request, arg) };
    if ret == -1 {
        Errno::last_raw()
    } else {
        0
    }
}

/// Bits above 32 that the kernel ignores in an ioctl request (CVE-2019-10063).
const HIGH_BITS: u64 = 0xdead_beef_0000_0000;

/// TIOCSTI plain and with high bits, TIOCLINUX, then FIONREAD on a pipe holding 3 bytes.
/// Returns the errnos of the three refused requests and the FIONREAD result.
fn terminal_ioctl_probes() -> ([i32; 3], Result<libc::c_int, i32>) {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the local array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let mut byte: libc::c_int = b'x' as libc::c_int;
    let refused = [
        ioctl_errno(fds[0], libc::TIOCSTI, &mut byte),
        ioctl_errno(fds[0], libc::TIOCSTI | HIGH_BITS, &mut byte),
        ioctl_errno(fds[0], libc::TIOCLINUX, &mut byte),
    ];
    // SAFETY: writes 3 bytes of a static string into our own pipe.
    assert_eq!(unsafe { libc::write(fds[1], b"abc".as_ptr().cast(), 3) }, 3);
    let mut available: libc::c_int = 0;
    let fionread = match ioctl_errno(fds[0], libc::FIONREAD | HIGH_BITS, &mut available) {
        0 => Ok(available),
        errno => Err(errno),
    };
    (refused, fionread)
}

#[test]
fn seccomp_terminal_injection_ioctls_are_refused_even_with_high_bits() {
    let code = in_child(|| {
        install(Profile::Default);
        match terminal_ioctl_probes() {
            ([libc::EPERM, libc::EPERM, libc::EPERM], Ok(3)) => 0,
            ([libc::EPERM, libc::EPERM, libc::EPERM], _) => 2,
            _ => 1,
        }
    });
    assert_eq!(
        code, 0,
        "1: a TIOCSTI/TIOCLINUX was not EPERM, 2: FIONREAD failed"
    );
}

#[test]
fn seccomp_terminal_ioctl_probes_reach_the_kernel_without_filter() {
    let code = in_child(|| match terminal_ioctl_probes() {
        ([libc::ENOTTY, libc::ENOTTY, _], Ok(3)) => 0,
        _ => 1,
    });
    assert_eq!(
        code, 0,
        "control: TIOCSTI on a pipe should be ENOTTY unfiltered"
    );
}

#[test]
fn seccomp_personality_allows_only_safe_values() {
    const ADDR_NO_RANDOMIZE: libc::c_long = 0x0040000;
    let code = in_child(|| {
        install(Profile::Default);
        if errno_of_call(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]) != 0 {
            return 1;
        }
        if errno_of_call(libc::SYS_personality, [ADDR_NO_RANDOMIZE, 0, 0, 0, 0, 0]) != libc::EPERM {
            return 2;
        }
        0
    });
    assert_eq!(code, 0, "1: query refused, 2: ADDR_NO_RANDOMIZE not EPERM");
}

fn socket_errno(family: libc::c_int) -> i32 {
    // SAFETY: integer arguments; a created socket is closed at once.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Errno::last_raw();
    }
    // SAFETY: closing the fd just created.
    unsafe { libc::close(fd) };
    0
}

#[test]
fn seccomp_socket_families() {
    let code = in_child(|| {
        install(Profile::Default);
        // Never reaches the kernel, so no vsock module is loaded on the host.
        if socket_errno(libc::AF_VSOCK) != libc::EAFNOSUPPORT {
            return 1;
        }
        if socket_errno(libc::AF_INET6) == libc::EAFNOSUPPORT || socket_errno(libc::AF_NETLINK) != 0
        {
            return 2;
        }
        0
    });
    assert_eq!(
        code, 0,
        "default: 1: vsock allowed, 2: inet6/netlink refused"
    );
    let code = in_child(|| {
        install(Profile::Strict);
        match (socket_errno(libc::AF_PACKET), socket_errno(libc::AF_UNIX)) {
            (libc::EAFNOSUPPORT, 0) => 0,
            _ => 1,
        }
    });
    assert_eq!(code, 0, "strict must refuse AF_PACKET and allow AF_UNIX");
    let code = in_child(|| match socket_errno(libc::AF_PACKET) {
        libc::EAFNOSUPPORT => 1,
        _ => 0,
    });
    assert_eq!(
        code, 0,
        "control: AF_PACKET is EAFNOSUPPORT even unfiltered"
    );
}

/// Open, write, read back and remove a file at `path`; true if all worked.
fn file_round_trip(path: &CString) -> bool {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated path; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600) };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 5];
    // SAFETY: write and pread on our fd with local buffers of the given lengths.
    let ok = unsafe {
        libc::write(fd, b"hello".as_ptr().cast(), 5) == 5
            && libc::pread(fd, buf.as_mut_ptr().cast(), 5, 0) == 5
    };
    // SAFETY: closing and unlinking what we created.
    unsafe {
        libc::close(fd);
        libc::unlink(path.as_ptr());
    }
    ok && &buf == b"hello"
}

/// socket + bind on 127.0.0.1:0 + getsockname; true if the kernel picked a port.
fn bind_loopback() -> bool {
    // SAFETY: integer arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let addr_ptr = &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr;
    // SAFETY: bind and getsockname on our socket with a local sockaddr_in of `len` bytes.
    let ok = unsafe {
        libc::bind(fd, addr_ptr, len) == 0
            && libc::listen(fd, 1) == 0
            && libc::getsockname(fd, addr_ptr, &mut len) == 0
    };
    // SAFETY: closing our socket.
    unsafe { libc::close(fd) };
    ok && addr.sin_port != 0
}

/// Filter mode, no_new_privs, and one filter: each filter is a BPF program the kernel
/// compiles, runs and frees on its own (`Seccomp_filters`, Linux 5.9 and later).
fn status_shows_filter_and_no_new_privs() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.contains("\nSeccomp:\t2\n")
        && status.contains("\nNoNewPrivs:\t1\n")
        && status.contains("\nSeccomp_filters:\t1\n")
}

#[test]
fn seccomp_ordinary_calls_work_under_filter() {
    let path = std::env::temp_dir().join(format!("jail-seccomp-{}", std::process::id()));
    let path = CString::new(path.into_os_string().into_encoded_bytes()).unwrap();
    for profile in [Profile::Default, Profile::Strict] {
        let code = in_child(|| {
            install(profile);
            // SAFETY: no arguments.
            let checks = [
                unsafe { libc::getpid() } > 0,
                file_round_trip(&path),
                bind_loopback(),
                status_shows_filter_and_no_new_privs(),
            ];
            checks
                .iter()
                .position(|ok| !ok)
                .map_or(0, |index| 1 + index as i32)
        });
        assert_eq!(
            code, 0,
            "{profile}: 1 getpid, 2 file, 3 bind, 4 /proc status"
        );
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    let pointers = strings.iter().map(|s| s.as_ptr());
    pointers.chain(std::iter::once(std::ptr::null())).collect()
}

/// A program and its argv, prepared before any fork.
struct Program {
    path: CString,
    argv: Vec<CString>,
}

impl Program {
    fn new(argv: &[&str]) -> Program {
        let argv: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
        Program {
            path: argv[0].clone(),
            argv,
        }
    }

    /// fork + execve, then the exit code; 127 if execve failed.
    fn fork_exec(&self) -> i32 {
        let argv = null_terminated(&self.argv);
        let envp = [
            c"PATH=/usr/sbin:/usr/bin:/sbin:/bin".as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: the child only calls execve on prepared pointers and `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: NUL-terminated path, NULL-terminated argv/envp arrays, all alive.
            unsafe {
                libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127)
            }
        }
        wait_for(pid)
    }

    /// posix_spawn: glibc tries clone3 first and falls back to clone on ENOSYS.
    fn spawn(&self) -> i32 {
        let argv = null_terminated(&self.argv);
        let envp = [std::ptr::null_mut()];
        let mut pid = 0;
        // SAFETY: NUL-terminated path, NULL-terminated argv/envp; no file actions/attributes.
        let ret = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr() as *const *mut libc::c_char,
                envp.as_ptr(),
            )
        };
        if ret != 0 {
            return 200 + ret;
        }
        wait_for(pid)
    }
}

#[test]
fn seccomp_real_programs_run_under_filter() {
    let true_program = Program::new(&["/bin/true"]);
    let pipeline = Program::new(&["/bin/sh", "-c", "echo hi | cat > /dev/null"]);
    for profile in [Profile::Default, Profile::Strict] {
        let code = in_child(|| {
            install(profile);
            let results = [
                true_program.fork_exec(),
                pipeline.fork_exec(),
                true_program.spawn(),
            ];
            results
                .iter()
                .position(|&code| code != 0)
                .map_or(0, |index| 10 * (1 + index as i32) + results[index].min(9))
        });
        assert_eq!(
            code, 0,
            "{profile}: 1x /bin/true, 2x sh pipeline, 3x posix_spawn"
        );
    }
}

/// getpid through the 32-bit `int 0x80` entry: the filter sees AUDIT_ARCH_I386.
#[cfg(target_arch = "x86_64")]
fn i386_getpid() -> i32 {
    let mut ret: i32 = 20; // __NR_getpid in the i386 table
                           // SAFETY: getpid takes no arguments and touches no memory; the 32-bit entry clobbers
                           // only eax (declared) and r8-r11 (declared).
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("eax") ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_foreign_architecture_is_killed() {
    // SAFETY: no arguments.
    let ia32_works = in_child(|| (i386_getpid() == unsafe { libc::getpid() }) as i32) == 1;
    if !ia32_works {
        eprintln!("skipped: this kernel has no 32-bit syscall entry");
        return;
    }
    let code = in_child(|| {
        install(Profile::Default);
        i386_getpid();
        0
    });
    assert_eq!(
        code,
        128 + libc::SIGSYS,
        "an i386 syscall must kill the process"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_x32_syscall_numbers_get_enosys() {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    let code = in_child(|| {
        install(Profile::Default);
        errno_of_call(X32_SYSCALL_BIT | libc::SYS_getpid, [0; 6])
    });
    assert_eq!(code, libc::ENOSYS);
}

#[test]
fn seccomp_profile_names_round_trip() {
    for (name, profile) in [
        ("default", Profile::Default),
        ("strict", Profile::Strict),
        ("none", Profile::Unconfined),
        ("unconfined", Profile::Unconfined),
    ] {
        assert_eq!(name.parse::<Profile>().unwrap(), profile);
        assert_eq!(profile.to_string().parse::<Profile>().unwrap(), profile);
    }
    let error = "lax".parse::<Profile>().unwrap_err().to_string();
    assert!(error.contains("\"lax\""), "{error}");
}

#[test]
fn seccomp_unconfined_builds_no_filter() {
    assert!(build(Profile::Unconfined).is_none());
    assert!(describe(Profile::Unconfined).starts_with("none:"));
}

#[test]
fn seccomp_profiles_compile_within_the_kernel_limit() {
    for profile in [Profile::Default, Profile::Strict] {
        let filter = build(profile).unwrap();
        assert_eq!(filter.profile(), profile);
        assert!(filter.program.len() <= 4096);
    }
}

#[test]
fn seccomp_a_profile_built_again_is_the_program_compiled_first() {
    build_ahead(Profile::Strict);
    for profile in [Profile::Default, Profile::Strict] {
        let again = build(profile).unwrap();
        let compiled = compile(profile).unwrap();
        assert_eq!(again.profile(), profile);
        let words = |f: &Filter| -> Vec<(u16, u8, u8, u32)> {
            f.program
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect()
        };
        assert_eq!(words(&again), words(&compiled), "{profile}");
    }
}

fn allowed_numbers(profile: Profile) -> std::collections::BTreeSet<i64> {
    let policy = Policy::of(profile).unwrap();
    let checked = policy.arg_rules.iter().map(|rule| rule.syscall.1);
    policy.plain.keys().copied().chain(checked).collect()
}

#[test]
fn seccomp_no_profile_allows_a_denied_syscall() {
    for profile in [Profile::Default, Profile::Strict] {
        let allowed = allowed_numbers(profile);
        for (name, number) in allow::DENIED {
            assert!(!allowed.contains(number), "{profile} allows {name}");
        }
    }
}

#[test]
fn seccomp_argument_checked_calls_are_in_no_plain_group() {
    let policy = Policy::of(Profile::Default).unwrap();
    for rule in &policy.arg_rules {
        assert!(
            !policy.plain.contains_key(&rule.syscall.1),
            "{}",
            rule.syscall.0
        );
    }
}

#[test]
fn seccomp_no_syscall_is_listed_twice() {
    let mut seen = BTreeMap::new();
    for group in allow::GROUPS {
        for (name, number) in group.calls {
            let earlier = seen.insert(*number, (*name, group.name));
            assert!(
                earlier.is_none(),
                "{name} in {} and {earlier:?}",
                group.name
            );
        }
    }
}

#[test]
fn seccomp_strict_is_narrower_than_default() {
    let default = allowed_numbers(Profile::Default);
    let strict = allowed_numbers(Profile::Strict);
    assert!(strict.is_subset(&default));
    assert!(!strict.contains(&libc::SYS_shmget));
    assert!(!strict.contains(&libc::SYS_get_robust_list));
    assert!(default.contains(&libc::SYS_shmget));
}

#[test]
fn seccomp_describe_names_the_argument_checks() {
    let text = describe(Profile::Default);
    let count = allowed_numbers(Profile::Default).len();
    assert!(
        text.starts_with(&format!("default: allowlist of {count} syscalls")),
        "{text}"
    );
    assert!(
        text.contains("clone without namespace flags (EPERM"),
        "{text}"
    );
    assert!(text.contains("TIOCSTI"), "{text}");
}
