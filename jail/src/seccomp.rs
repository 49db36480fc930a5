//! Seccomp profiles: which system calls a vassal may make.
//!
//! The default profile is an allowlist (in the spirit of Docker's default profile and systemd's
//! `@system-service`): a call it does not list gets ENOSYS, the answer a program already
//! handles for a kernel too old to know the call, so new kernel syscalls are denied until
//! someone adds them here (a denylist misses them: Flatpak CVE-2021-41133). The allowlist
//! judges the syscall number only, as a binary search ([`search`]). A few calls are allowed
//! only with certain arguments (see [`ArgRule`]): small refusal filters compiled by seccompiler
//! and stacked after the allowlist refuse exactly their other forms, each with its errno
//! (EPERM, EAFNOSUPPORT).
//!
//! Everything is compiled by [`build`] before any clone; [`Filter::install_in_child`] then only
//! makes two kinds of raw syscalls (prctl, seccomp) on the prepared programs, so the child of a
//! clone may call it before execve.

#[rustfmt::skip]
mod allow;
mod search;

use crate::sys;
use allow::Syscall;
use nix::errno::Errno;
use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
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

/// A profile that could not be named or compiled.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The config named a profile that does not exist.
    #[error("unknown seccomp profile {0:?} (expected default, strict or none)")]
    UnknownProfile(String),
    /// seccompiler refused a rule or the whole program (too long, bad argument index).
    #[error("seccomp profile {profile}: cannot compile the {part}: {source}")]
    Compile {
        profile: Profile,
        part: &'static str,
        source: BackendError,
    },
}

/// A compiled profile, ready to install: the allowlist first, then the refusal filters.
#[derive(Debug, Clone)]
pub struct Filter {
    profile: Profile,
    programs: Vec<BpfProgram>,
}

/// Compile `profile` for the architecture being built. `None` for [`Profile::Unconfined`].
/// Call this before the clone: it allocates.
pub fn build(profile: Profile) -> Result<Option<Filter>, SeccompError> {
    let Some(policy) = Policy::of(profile) else {
        return Ok(None);
    };
    let compile_error = |part| {
        move |source| SeccompError::Compile {
            profile,
            part,
            source,
        }
    };
    let mut programs = vec![policy.allowlist()];
    programs.extend(policy.refusals().map_err(compile_error("refusal filter"))?);
    Ok(Some(Filter { profile, programs }))
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
        // The allowlist goes first: the kernel runs the newest filter first and, among equal
        // actions, keeps the first answer, so a refusal filter's EPERM wins over ENOSYS.
        for program in &self.programs {
            sys::seccomp_set_mode_filter(program)?;
        }
        Ok(())
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
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWTIME as u64,
];

/// Terminal ioctls that push input into a terminal or drive the console
/// (CVE-2017-5226, CVE-2019-10063).
const TERMINAL_INJECTION: &[u64] = &[libc::TIOCSTI, libc::TIOCLINUX];

/// personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
/// and 0xffffffff (query). Everything else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) turns
/// off a hardening.
const SAFE_PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// AF_VSOCK talks to the hypervisor or host, outside every namespace (Docker refuses it too).
const HOST_SOCKET_FAMILIES: &[u64] = &[libc::AF_VSOCK as u64];

/// The socket families `strict` keeps: local, IP, and netlink (getaddrinfo and `ip` need it).
const STRICT_SOCKET_FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64,
];

/// How an argument decides whether a call is allowed.
#[derive(Debug, Clone, Copy)]
enum ArgTest {
    /// Allowed when none of these flag bits is set.
    NoFlag(&'static [u64]),
    /// Allowed unless the argument is one of these values.
    Not(&'static [u64]),
    /// Allowed only when the argument is one of these values.
    Only(&'static [u64]),
}

/// A syscall allowed only when one argument passes a test; its refused forms get `refusal`.
/// Arguments are compared as 32 bits: every argument checked here is an int or unsigned int
/// in the kernel, which ignores the upper half (so `TIOCSTI | 1 << 32` is still TIOCSTI).
#[derive(Debug, Clone, Copy)]
struct ArgRule {
    syscall: Syscall,
    arg: u8,
    test: ArgTest,
    refusal: Errno,
    summary: &'static str,
}

impl ArgRule {
    /// Rules (any of which matching) under which the call is refused: every form the test
    /// does not allow (the allowlist lets all of them through by number).
    fn refused_when(&self) -> Result<Vec<SeccompRule>, BackendError> {
        match self.test {
            ArgTest::NoFlag(bits) => bits
                .iter()
                .map(|&bit| self.rule(&[(SeccompCmpOp::MaskedEq(bit), bit)]))
                .collect(),
            ArgTest::Not(values) => values
                .iter()
                .map(|&value| self.rule(&[(SeccompCmpOp::Eq, value)]))
                .collect(),
            ArgTest::Only(values) => Ok(vec![self.rule(&not_any_of(values))?]),
        }
    }

    /// One rule: all of `comparisons` on this rule's argument, as 32 bits.
    fn rule(&self, comparisons: &[(SeccompCmpOp, u64)]) -> Result<SeccompRule, BackendError> {
        let conditions = comparisons
            .iter()
            .map(|(op, value)| {
                SeccompCondition::new(self.arg, SeccompCmpArgLen::Dword, op.clone(), *value)
            })
            .collect::<Result<_, _>>()?;
        SeccompRule::new(conditions)
    }
}

fn not_any_of(values: &[u64]) -> Vec<(SeccompCmpOp, u64)> {
    values
        .iter()
        .map(|&value| (SeccompCmpOp::Ne, value))
        .collect()
}

/// The argument-checked calls of a profile.
fn arg_rules(profile: Profile) -> Vec<ArgRule> {
    let socket = match profile {
        Profile::Strict => ArgRule {
            syscall: ("SYS_socket", libc::SYS_socket),
            arg: 0,
            test: ArgTest::Only(STRICT_SOCKET_FAMILIES),
            refusal: Errno::EAFNOSUPPORT,
            summary: "socket only AF_UNIX/AF_INET/AF_INET6/AF_NETLINK",
        },
        _ => ArgRule {
            syscall: ("SYS_socket", libc::SYS_socket),
            arg: 0,
            test: ArgTest::Not(HOST_SOCKET_FAMILIES),
            refusal: Errno::EAFNOSUPPORT,
            summary: "socket except AF_VSOCK",
        },
    };
    vec![
        ArgRule {
            syscall: ("SYS_clone", libc::SYS_clone),
            arg: 0,
            test: ArgTest::NoFlag(NAMESPACE_FLAGS),
            refusal: Errno::EPERM,
            summary: "clone without namespace flags",
        },
        ArgRule {
            syscall: ("SYS_ioctl", libc::SYS_ioctl),
            arg: 1,
            test: ArgTest::Not(TERMINAL_INJECTION),
            refusal: Errno::EPERM,
            summary: "ioctl without TIOCSTI/TIOCLINUX, request compared as 32 bits",
        },
        ArgRule {
            syscall: ("SYS_personality", libc::SYS_personality),
            arg: 0,
            test: ArgTest::Only(SAFE_PERSONALITIES),
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

    /// Allow what is listed, ENOSYS for the rest, kill a foreign architecture. The
    /// argument-checked calls are allowed here by number: their refused forms are the
    /// refusal filters' to answer.
    fn allowlist(&self) -> BpfProgram {
        let numbers = self
            .plain
            .keys()
            .chain(self.arg_rules.iter().map(|rule| &rule.syscall.1))
            .map(|&number| u32::try_from(number).expect("syscall numbers are small"))
            .collect();
        search::compile(
            &numbers,
            AUDIT_ARCH,
            search::Verdicts {
                allowed: libc::SECCOMP_RET_ALLOW,
                refused: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
                foreign: libc::SECCOMP_RET_KILL_PROCESS,
            },
        )
    }

    /// One program per refusal errno: the refused forms of the argument-checked calls get that
    /// errno, everything else passes on to the allowlist's verdict.
    fn refusals(&self) -> Result<Vec<BpfProgram>, BackendError> {
        let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
        for rule in &self.arg_rules {
            by_errno
                .entry(rule.refusal as i32)
                .or_default()
                .insert(rule.syscall.1, rule.refused_when()?);
        }
        by_errno
            .into_iter()
            .map(|(errno, rules)| {
                compile(
                    rules,
                    SeccompAction::Allow,
                    SeccompAction::Errno(errno as u32),
                )
            })
            .collect()
    }
}

/// The architecture being compiled: the filter checks the caller's audit arch against it.
#[cfg(target_arch = "x86_64")]
const TARGET_ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const TARGET_ARCH: TargetArch = TargetArch::aarch64;

/// The same architecture as the kernel reports it to a filter (linux/audit.h: the ELF
/// machine, 64-bit, little-endian).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, BackendError> {
    SeccompFilter::new(rules, mismatch, matched, TARGET_ARCH)?.try_into()
}

#[cfg(test)]
mod tests;
