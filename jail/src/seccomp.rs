//! Seccomp profiles: which system calls a vassal may make.
//!
//! The default profile is an allowlist (in the spirit of Docker's default profile and systemd's
//! `@system-service`): a call it does not list gets ENOSYS, the answer a program already
//! handles for a kernel too old to know the call, so new kernel syscalls are denied until
//! someone adds them here (a denylist misses them: Flatpak CVE-2021-41133). The allowlist
//! is one BPF program ([`search`]): a binary search over syscall numbers, and in front of it
//! the few calls allowed only with certain arguments (see [`ArgRule`]), whose other forms get
//! an errno of their own (EPERM, EAFNOSUPPORT).
//!
//! Everything is compiled by [`build`] before any clone; [`Filter::install_in_child`] then only
//! makes two raw syscalls (prctl, seccomp) on the prepared program, so the child of a clone may
//! call it before execve.

#[rustfmt::skip]
mod allow;
mod search;

use crate::sys;
use allow::Syscall;
use nix::errno::Errno;
use search::Test;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Which seccomp filter a vassal runs under (`seccomp = ...` in its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// An allowlist wide enough for real services (nginx, busybox, coreutils, python, Go and
    /// Rust servers), ENOSYS for anything else; nested namespaces, kernel loading, mounts,
    /// tracing other processes, bpf, io_uring, keyrings and clock setting are not in it.
    #[default]
    Default,
    /// `Default` without SysV IPC, POSIX message queues, kernel AIO, memory locking, NUMA
    /// placement, scheduler tuning and the remaining process inspection (get_robust_list,
    /// remap_file_pages); sockets only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK.
    Strict,
    /// No filter at all. Only for classic mode: the caller refuses it for tenants.
    Unconfined,
}

impl Profile {
    /// The name used in configs and printed by `emperor check`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Strict => "strict",
            Profile::Unconfined => "none",
        }
    }
}

impl FromStr for Profile {
    type Err = SeccompError;

    /// `default`, `strict`, or `none` / `unconfined`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "default" => Ok(Profile::Default),
            "strict" => Ok(Profile::Strict),
            "none" | "unconfined" => Ok(Profile::Unconfined),
            other => Err(SeccompError::UnknownProfile(other.to_string())),
        }
    }
}

impl fmt::Display for Profile {
    /// The profile's config name (`default`, `strict`, `none`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile that could not be named.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The config named a profile that does not exist.
    #[error("unknown seccomp profile {0:?} (expected default, strict or none)")]
    UnknownProfile(String),
}

/// A compiled profile, ready to install: one program.
#[derive(Debug, Clone)]
pub struct Filter {
    profile: Profile,
    program: Vec<libc::sock_filter>,
}

/// Compile `profile` for the architecture being built. `None` for [`Profile::Unconfined`].
/// Call this before the clone: it allocates. A profile compiled once in this process (or
/// before the fork that made it, see [`build_ahead`]) is not compiled again: the program
/// depends on the profile alone.
pub fn build(profile: Profile) -> Option<Filter> {
    let mut compiled = COMPILED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(filter) = compiled.iter().find(|f| f.profile == profile) {
        return Some(filter.clone());
    }
    let filter = compile(profile)?;
    compiled.push(filter.clone());
    Some(filter)
}

/// Compile `profile` now, for this process's later copies (the clone server's runtimes).
pub fn build_ahead(profile: Profile) {
    drop(build(profile));
}

/// The profiles this process compiled, at most one program each.
static COMPILED: std::sync::Mutex<Vec<Filter>> = std::sync::Mutex::new(Vec::new());

fn compile(profile: Profile) -> Option<Filter> {
    let policy = Policy::of(profile)?;
    Some(Filter {
        profile,
        program: policy.program(),
    })
}

/// One line for `emperor check`: what the profile allows and what it answers otherwise.
pub fn describe(profile: Profile) -> String {
    let Some(policy) = Policy::of(profile) else {
        return "none: no seccomp filter (classic mode only, refused for tenants)".to_string();
    };
    let arg_rules: Vec<String> = policy
        .arg_rules
        .iter()
        .map(|rule| format!("{} ({:?})", rule.summary, rule.refusal))
        .collect();
    format!(
        "{profile}: allowlist of {} syscalls for {} ({}), ENOSYS otherwise, other \
         architectures killed; {}",
        policy.syscall_count(),
        std::env::consts::ARCH,
        policy.groups.join(", "),
        arg_rules.join("; "),
    )
}

impl Filter {
    /// The profile this filter was compiled from.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Set no_new_privs and install the filter on the calling thread, which keeps it across
    /// execve. Async-signal-safe (no allocation, no locks: prctl and seccomp on programs built
    /// before the clone), so it is meant for the child between clone and execve; it must be
    /// the last jail step before exec, since it forbids mount, setns and the like.
    pub fn install_in_child(&self) -> Result<(), Errno> {
        sys::set_no_new_privs()?;
        sys::seccomp_set_mode_filter(&self.program)
    }

    /// The same as [`Filter::install_in_child`], for the current thread of an ordinary
    /// process (tests, a vassal runtime about to exec its payload). Other threads are not
    /// filtered.
    pub fn install_here(&self) -> Result<(), Errno> {
        self.install_in_child()
    }
}

/// CLONE_NEW* flags: a jailed process may not make nested namespaces (a fresh user namespace
/// hands out the capabilities behind CVE-2022-0185, CVE-2021-22555 and many others).
/// CLONE_NEWTIME (0x80) shares bits with the exit signal in clone(2), but no signal is that
/// high, so it only ever matches a namespace request.
const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u32;

/// Terminal ioctls that push input into a terminal or drive the console
/// (CVE-2017-5226, CVE-2019-10063).
const TERMINAL_INJECTION: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

/// personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
/// and 0xffffffff (query). Everything else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) turns
/// off a hardening.
const SAFE_PERSONALITIES: &[u32] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// AF_VSOCK talks to the hypervisor or host, outside every namespace (Docker refuses it too).
const HOST_SOCKET_FAMILIES: &[u32] = &[libc::AF_VSOCK as u32];

/// The socket families `strict` keeps: local, IP, and netlink (getaddrinfo and `ip` need it).
const STRICT_SOCKET_FAMILIES: &[u32] = &[
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
    libc::AF_NETLINK as u32,
];

/// A syscall allowed only when one argument passes a test; its refused forms get `refusal`.
/// Arguments are compared as 32 bits: every argument checked here is an int or unsigned int
/// in the kernel, which ignores the upper half (so `TIOCSTI | 1 << 32` is still TIOCSTI).
#[derive(Debug, Clone, Copy)]
struct ArgRule {
    syscall: Syscall,
    arg: u8,
    test: Test<'static>,
    refusal: Errno,
    summary: &'static str,
}

/// The argument-checked calls of a profile.
fn arg_rules(profile: Profile) -> Vec<ArgRule> {
    let socket = match profile {
        Profile::Strict => ArgRule {
            syscall: ("SYS_socket", libc::SYS_socket),
            arg: 0,
            test: Test::Only(STRICT_SOCKET_FAMILIES),
            refusal: Errno::EAFNOSUPPORT,
            summary: "socket only AF_UNIX/AF_INET/AF_INET6/AF_NETLINK",
        },
        _ => ArgRule {
            syscall: ("SYS_socket", libc::SYS_socket),
            arg: 0,
            test: Test::Not(HOST_SOCKET_FAMILIES),
            refusal: Errno::EAFNOSUPPORT,
            summary: "socket except AF_VSOCK",
        },
    };
    vec![
        ArgRule {
            syscall: ("SYS_clone", libc::SYS_clone),
            arg: 0,
            test: Test::NoFlag(NAMESPACE_FLAGS),
            refusal: Errno::EPERM,
            summary: "clone without namespace flags",
        },
        ArgRule {
            syscall: ("SYS_ioctl", libc::SYS_ioctl),
            arg: 1,
            test: Test::Not(TERMINAL_INJECTION),
            refusal: Errno::EPERM,
            summary: "ioctl without TIOCSTI/TIOCLINUX, request compared as 32 bits",
        },
        ArgRule {
            syscall: ("SYS_personality", libc::SYS_personality),
            arg: 0,
            test: Test::Only(SAFE_PERSONALITIES),
            refusal: Errno::EPERM,
            summary: "personality only 0/0x8/0x20000/0x20008/0xffffffff",
        },
        socket,
    ]
}

/// A profile as plain data: the calls allowed outright and the argument-checked ones.
struct Policy {
    groups: Vec<&'static str>,
    plain: BTreeMap<i64, &'static str>,
    arg_rules: Vec<ArgRule>,
}

impl Policy {
    /// `None` for the unconfined profile.
    fn of(profile: Profile) -> Option<Policy> {
        let strict = match profile {
            Profile::Unconfined => return None,
            Profile::Default => false,
            Profile::Strict => true,
        };
        let groups: Vec<&allow::Group> = allow::GROUPS
            .iter()
            .filter(|group| group.in_strict || !strict)
            .collect();
        let plain = groups
            .iter()
            .flat_map(|group| group.calls)
            .map(|&(name, number)| (number, name))
            .collect();
        Some(Policy {
            groups: groups.iter().map(|group| group.name).collect(),
            plain,
            arg_rules: arg_rules(profile),
        })
    }

    /// How many syscalls are allowed at all (outright or with an argument check).
    fn syscall_count(&self) -> usize {
        self.plain.len() + self.arg_rules.len()
    }

    /// Allow what is listed, ENOSYS for the rest, kill a foreign architecture; the
    /// argument-checked calls allowed in the forms their test passes, their errno otherwise.
    fn program(&self) -> Vec<libc::sock_filter> {
        let number = |n: i64| u32::try_from(n).expect("syscall numbers are small");
        let plain = self.plain.keys().map(|&n| number(n)).collect();
        let checked: Vec<search::Checked> = self
            .arg_rules
            .iter()
            .map(|rule| search::Checked {
                nr: number(rule.syscall.1),
                arg: rule.arg,
                test: rule.test,
                refused: libc::SECCOMP_RET_ERRNO | rule.refusal as u32,
            })
            .collect();
        search::compile(
            &plain,
            &checked,
            AUDIT_ARCH,
            search::Verdicts {
                allowed: libc::SECCOMP_RET_ALLOW,
                refused: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
                foreign: libc::SECCOMP_RET_KILL_PROCESS,
            },
        )
    }
}

/// The same architecture as the kernel reports it to a filter (linux/audit.h: the ELF
/// machine, 64-bit, little-endian).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

#[cfg(test)]
#[allow(unsafe_code)]
mod tests;
