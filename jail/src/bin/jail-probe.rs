//! jail-probe: run as a vassal's payload, try every escape a tenant would try, and report each
//! attempt: `PASS name: EACCES` when it failed as it must, `FAIL name: succeeded` otherwise.
//! Exit status 0 only when every attempt failed. With `--control`, run as root outside any
//! jail, only the attempts a jail is responsible for are judged, and they must succeed there:
//! that proves the probes can tell an escape from a refusal (rule 9 of DESIGN.md).
//!
//! Usage: jail-probe [--control] [--emperor-pid PID] [--other-pid PID] [--other-home DIR]
//!                   [--setuid-binary PATH]

use std::ffi::CString;

/// One attempt's outcome: Ok(()) if the act succeeded, Err(errno) if it failed.
type Outcome = Result<(), i32>;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(ret: i64) -> Outcome {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in probe paths")
}

fn open(path: &str, flags: i32) -> Outcome {
    let p = cstr(path);
    // SAFETY: a NUL-terminated path; the fd, if any, is closed at once.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd >= 0 {
        // SAFETY: we own fd.
        unsafe { libc::close(fd) };
    }
    check(fd as i64)
}

fn raw(nr: libc::c_long, a: u64, b: u64, c: u64, d: u64, e: u64) -> Outcome {
    // SAFETY: every probe passes integers or null/invalid pointers the kernel validates; a
    // syscall that succeeds here only affects this throwaway process.
    check(unsafe { libc::syscall(nr, a, b, c, d, e) })
}

struct Options {
    control: bool,
    emperor_pid: Option<i32>,
    other_pid: Option<i32>,
    other_home: Option<String>,
    setuid_binary: Option<String>,
}

fn parse_options() -> Options {
    let mut options = Options {
        control: false,
        emperor_pid: None,
        other_pid: None,
        other_home: None,
        setuid_binary: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--control" => options.control = true,
            "--emperor-pid" => options.emperor_pid = args.next().and_then(|v| v.parse().ok()),
            "--other-pid" => options.other_pid = args.next().and_then(|v| v.parse().ok()),
            "--other-home" => options.other_home = args.next(),
            "--setuid-binary" => options.setuid_binary = args.next(),
            other => eprintln!("jail-probe: ignoring unknown argument {other:?}"),
        }
    }
    options
}

/// Run one attempt in a forked child, so an attempt that succeeds (a mount, a new user
/// namespace, setuid) changes nothing for the next ones; the child reports through its exit
/// status: 0 for success, else the errno.
fn isolated(attempt: impl FnOnce() -> Outcome) -> Outcome {
    // SAFETY: the probe is single-threaded, so the child may run ordinary code.
    match unsafe { libc::fork() } {
        -1 => Err(errno()),
        0 => {
            let code = match attempt() {
                Ok(()) => 0,
                Err(e) => e.clamp(1, 255),
            };
            // SAFETY: leave the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        child => {
            let mut status = 0;
            // SAFETY: waiting for our own child into a local.
            unsafe { libc::waitpid(child, &mut status, 0) };
            match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
                Some(0) => Ok(()),
                Some(code) => Err(code),
                None => Err(libc::EINTR),
            }
        }
    }
}

/// One escape attempt, run later in a child of its own.
type Attempt = (&'static str, Box<dyn FnOnce() -> Outcome>);

fn attempt(name: &'static str, act: impl FnOnce() -> Outcome + 'static) -> Attempt {
    (name, Box::new(act))
}

/// Every attempt, named as the escape table of research/sandbox-anchors.md names it.
fn attempts(options: &Options) -> Vec<Attempt> {
    let mut list = vec![
        attempt("read /etc/shadow", || open("/etc/shadow", libc::O_RDONLY)),
        attempt("create a file in /etc", || {
            open("/etc/jail-probe-was-here", libc::O_WRONLY | libc::O_CREAT)
        }),
        attempt("open /proc/1/root/etc/shadow", || {
            open("/proc/1/root/etc/shadow", libc::O_RDONLY)
        }),
        attempt("open /proc/self/exe for writing", || {
            open("/proc/self/exe", libc::O_WRONLY)
        }),
        attempt("open /proc/1/exe for writing", || {
            open("/proc/1/exe", libc::O_WRONLY)
        }),
        attempt("mount a tmpfs", mount_tmpfs),
        attempt("unshare a user namespace", || {
            raw(libc::SYS_unshare, libc::CLONE_NEWUSER as u64, 0, 0, 0, 0)
        }),
        attempt("unshare a mount namespace", || {
            raw(libc::SYS_unshare, libc::CLONE_NEWNS as u64, 0, 0, 0, 0)
        }),
        attempt("setuid(0)", setuid_root),
        attempt("keyctl (join a session keyring)", || {
            raw(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0)
        }),
        attempt("add_key", add_key),
        attempt("bpf (create a map)", bpf_map),
        attempt("perf_event_open", perf_event_open),
        attempt("userfaultfd", || raw(libc::SYS_userfaultfd, 0, 0, 0, 0, 0)),
        attempt("ptrace the jail's init", || {
            raw(libc::SYS_ptrace, libc::PTRACE_SEIZE as u64, 1, 0, 0, 0)
        }),
        attempt("init_module", || {
            raw(libc::SYS_init_module, 0, 0, cstr("").as_ptr() as u64, 0, 0)
        }),
        attempt("raise CAP_SYS_ADMIN into effective", raise_sys_admin),
    ];
    if let Some(pid) = options.emperor_pid {
        list.push(attempt("signal the emperor", move || {
            raw(libc::SYS_kill, pid as u64, 0, 0, 0, 0)
        }));
        list.push(attempt("ptrace the emperor", move || {
            raw(
                libc::SYS_ptrace,
                libc::PTRACE_SEIZE as u64,
                pid as u64,
                0,
                0,
                0,
            )
        }));
    }
    if let Some(pid) = options.other_pid {
        list.push(attempt("signal another tenant's process", move || {
            raw(libc::SYS_kill, pid as u64, 0, 0, 0, 0)
        }));
    }
    if let Some(home) = options.other_home.clone() {
        let file = format!("{home}/jail-probe-was-here");
        list.push(attempt("list another tenant's home", move || {
            open(&home, libc::O_RDONLY | libc::O_DIRECTORY)
        }));
        list.push(attempt("write into another tenant's home", move || {
            open(&file, libc::O_WRONLY | libc::O_CREAT)
        }));
    }
    if let Some(binary) = options.setuid_binary.clone() {
        list.push(attempt("gain root through a setuid binary", move || {
            setuid_gains_root(&binary)
        }));
    }
    list.push(attempt("leaked fds beyond 0-3", leaked_fds));
    list
}

const KEYCTL_JOIN_SESSION_KEYRING: u64 = 1;
// ptrace attempts use PTRACE_SEIZE: unlike PTRACE_ATTACH it does not stop the tracee, so a
// control run (outside any jail) that succeeds in tracing the real init does not freeze it.
/// Not an answer of the kernel: the attempt means nothing here (reported, never a pass).
const MEANINGLESS: i32 = 255;

/// setuid(0) proves something only from a uid that is not 0 already.
fn setuid_root() -> Outcome {
    // SAFETY: no arguments.
    if unsafe { libc::getuid() } == 0 {
        return Err(MEANINGLESS);
    }
    raw(libc::SYS_setuid, 0, 0, 0, 0, 0)
}

/// Mount a tmpfs on a scratch directory of our own (never over a path anyone uses: in the
/// control run, outside any jail, it succeeds), and unmount it at once.
fn mount_tmpfs() -> Outcome {
    let dir = std::env::temp_dir().join(format!("jail-probe-mnt-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&dir) {
        return Err(e.raw_os_error().unwrap_or(libc::EIO));
    }
    let target = cstr(&dir.display().to_string());
    let (src, fstype) = (cstr("tmpfs"), cstr("tmpfs"));
    // SAFETY: NUL-terminated strings and a null data pointer.
    let result = check(unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    } as i64);
    if result.is_ok() {
        // SAFETY: a NUL-terminated path we just mounted on.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_dir(&dir);
    result
}

fn add_key() -> Outcome {
    let (kind, description, payload) = (cstr("user"), cstr("jail-probe"), b"x");
    raw(
        libc::SYS_add_key,
        kind.as_ptr() as u64,
        description.as_ptr() as u64,
        payload.as_ptr() as u64,
        payload.len() as u64,
        libc::KEY_SPEC_PROCESS_KEYRING as u64,
    )
}

fn bpf_map() -> Outcome {
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
    let attr: [u32; 16] = [
        1, /* BPF_MAP_TYPE_HASH */
        4, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    raw(
        libc::SYS_bpf,
        0, /* BPF_MAP_CREATE */
        attr.as_ptr() as u64,
        std::mem::size_of_val(&attr) as u64,
        0,
        0,
    )
}

fn perf_event_open() -> Outcome {
    // struct perf_event_attr: type SOFTWARE, size, config CPU_CLOCK; the rest zero.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    raw(
        libc::SYS_perf_event_open,
        attr.as_ptr() as u64,
        0,
        u64::MAX,
        u64::MAX,
        0,
    )
}

/// capset asking for CAP_SYS_ADMIN: fails unless it is already permitted.
fn raise_sys_admin() -> Outcome {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let bit = 1u32 << 21; // CAP_SYS_ADMIN
    let data: [u32; 6] = [bit, bit, 0, 0, 0, 0];
    raw(
        libc::SYS_capset,
        &header as *const Header as u64,
        data.as_ptr() as u64,
        0,
        0,
        0,
    )
}

/// Run `BINARY -c 'exit $(id -u)'`-like: a setuid-root copy of busybox running `id -u`; the
/// act "succeeds" if it prints 0.
fn setuid_gains_root(binary: &str) -> Outcome {
    match std::process::Command::new(binary)
        .args(["id", "-u"])
        .output()
    {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "0" => Ok(()),
        Ok(_) => Err(libc::EPERM),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// Any open fd above 3 (the protocol socket) is a leak.
fn leaked_fds() -> Outcome {
    let entries = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries,
        Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
    };
    let leaked: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|&fd: &i32| fd > 3)
        .collect();
    // read_dir itself holds one fd.
    if leaked.len() > 1 {
        Ok(())
    } else {
        Err(libc::EBADF)
    }
}

/// Attempts a jail is responsible for: outside a jail (the control) they must succeed.
const CONTROL_MUST_SUCCEED: [&str; 6] = [
    "read /etc/shadow",
    "mount a tmpfs",
    "unshare a user namespace",
    "keyctl (join a session keyring)",
    "bpf (create a map)",
    "setuid(0)",
];

fn errno_name(errno: i32) -> String {
    match errno {
        MEANINGLESS => "not meaningful here (already uid 0)".to_string(),
        e => nix::errno::Errno::from_raw(e).to_string(),
    }
}

fn main() {
    let options = parse_options();
    let mut failures = 0;
    for (name, act) in attempts(&options) {
        let outcome = isolated(act);
        let judged = !options.control || CONTROL_MUST_SUCCEED.contains(&name);
        let (verdict, detail) = match (&outcome, options.control) {
            (Err(e), false) => ("PASS", errno_name(*e)),
            (Ok(()), false) => ("FAIL", "succeeded".to_string()),
            (Ok(()), true) => ("PASS", "succeeded outside a jail".to_string()),
            (Err(e), true) => (
                "FAIL",
                format!("{}: must succeed outside a jail", errno_name(*e)),
            ),
        };
        let verdict = if !judged || outcome == Err(MEANINGLESS) {
            "INFO"
        } else {
            verdict
        };
        if verdict == "FAIL" {
            failures += 1;
        }
        println!("{verdict} {name}: {detail}");
    }
    println!("jail-probe: {failures} failed");
    std::process::exit(if failures == 0 { 0 } else { 1 });
}
