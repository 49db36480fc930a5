//! Namespaces: names as uWSGI's `emperor-use-clone` / `unshare` spell them, unshare(2) for the
//! ones the runtime enters itself, the hostname, and the loopback of a new network namespace.

use crate::error::SysError;
use crate::sys;
use nix::sched::CloneFlags;
use std::fmt;
use std::str::FromStr;

/// A set of namespaces, as CLONE_NEW* bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Namespaces(pub u64);

const TABLE: [(&str, i32); 7] = [
    ("fs", libc::CLONE_NEWNS),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("pid", libc::CLONE_NEWPID),
    ("uts", libc::CLONE_NEWUTS),
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

impl Namespaces {
    pub const NONE: Namespaces = Namespaces(0);
    pub const MOUNT: Namespaces = Namespaces(libc::CLONE_NEWNS as u64);
    pub const NET: Namespaces = Namespaces(libc::CLONE_NEWNET as u64);
    pub const PID: Namespaces = Namespaces(libc::CLONE_NEWPID as u64);
    pub const UTS: Namespaces = Namespaces(libc::CLONE_NEWUTS as u64);
    pub const USER: Namespaces = Namespaces(libc::CLONE_NEWUSER as u64);

    pub fn contains(self, other: Namespaces) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn union(self, other: Namespaces) -> Namespaces {
        Namespaces(self.0 | other.0)
    }

    pub fn without(self, other: Namespaces) -> Namespaces {
        Namespaces(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown namespace {0:?} (known: fs, mount, mnt, ns, net, ipc, pid, uts, user, cgroup)")]
pub struct UnknownNamespace(pub String);

impl FromStr for Namespaces {
    type Err = UnknownNamespace;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut set = Namespaces::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let canonical = match name {
                "mount" | "mnt" | "ns" => "fs",
                other => other,
            };
            let flag = TABLE
                .iter()
                .find(|(n, _)| *n == canonical)
                .map(|(_, f)| *f as u64)
                .ok_or_else(|| UnknownNamespace(name.to_string()))?;
            set.0 |= flag;
        }
        Ok(set)
    }
}

impl fmt::Display for Namespaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = TABLE
            .iter()
            .filter(|(_, flag)| self.0 & *flag as u64 != 0)
            .map(|(n, _)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// unshare(2) the calling process into new namespaces.
pub fn unshare(namespaces: Namespaces) -> Result<(), SysError> {
    nix::sched::unshare(CloneFlags::from_bits_truncate(namespaces.0 as i32))
        .map_err(|e| SysError::new("unshare", e))?;
    if namespaces.0 & libc::CLONE_NEWUSER as u64 != 0 {
        crate::userns::forget_own_namespace();
    }
    Ok(())
}

pub fn set_hostname(name: &str) -> Result<(), SysError> {
    nix::unistd::sethostname(name).map_err(|e| SysError::new("sethostname", e))
}

/// Bring `lo` up: a new network namespace starts with it down.
pub fn loopback_up() -> Result<(), SysError> {
    sys::interface_up(c"lo").map_err(|(call, e)| SysError::with_path(call, "lo", e))
}

/// The namespace inode a process is in, as /proc/PID/ns/NAME shows it (`net:[4026531840]`).
pub fn namespace_id(pid: u32, name: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .ok()
        .map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uwsgi_names_parse_and_print() {
        let ns: Namespaces = "fs,net,ipc,pid,uts".parse().unwrap();
        assert_eq!(ns.to_string(), "fs,net,ipc,pid,uts");
        assert_eq!("mount".parse::<Namespaces>().unwrap(), Namespaces::MOUNT);
        assert!(ns.contains(Namespaces::PID));
        assert!(!ns.contains(Namespaces::USER));
        assert_eq!(
            "time".parse::<Namespaces>(),
            Err(UnknownNamespace("time".into()))
        );
    }
}
