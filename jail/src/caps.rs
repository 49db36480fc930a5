//! Capability sets as plain bit masks, named as in capabilities(7).

use std::str::FromStr;

/// A set of capabilities, bit N = capability number N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

/// The names uWSGI's `cap` option accepts, in kernel order (capability number = index).
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// Highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap). Every launch
/// asks, so the first answer read is kept: the kernel's number never changes while it runs.
pub fn last_cap() -> u32 {
    static READ: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(&cap) = READ.get() {
        return cap;
    }
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(|cap| *READ.get_or_init(|| cap))
        .unwrap_or(NAMES.len() as u32 - 1)
}

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, cap: u32) -> CapSet {
        CapSet(self.0 | (1 << cap))
    }

    pub fn names(self) -> Vec<String> {
        (0..64u32)
            .filter(|&c| self.contains(c))
            .map(|c| {
                NAMES
                    .get(c as usize)
                    .map_or(c.to_string(), |n| n.to_string())
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown capability {0:?}")]
pub struct UnknownCap(pub String);

impl FromStr for CapSet {
    type Err = UnknownCap;

    /// A comma list of names (with or without `cap_`, any case) or numbers.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut set = CapSet::EMPTY;
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let name = item.to_ascii_lowercase();
            let name = name.strip_prefix("cap_").unwrap_or(&name);
            let number = match NAMES.iter().position(|n| *n == name) {
                Some(i) => i as u32,
                None => name
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n < 64)
                    .ok_or_else(|| UnknownCap(item.to_string()))?,
            };
            set = set.with(number);
        }
        Ok(set)
    }
}

impl std::fmt::Display for CapSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&self.names().join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse_as_uwsgi_spells_them() {
        let set: CapSet = "setgid,setuid".parse().unwrap();
        assert_eq!(set, CapSet((1 << 6) | (1 << 7)));
        assert_eq!(
            "CAP_NET_BIND_SERVICE, 10".parse::<CapSet>().unwrap(),
            CapSet(1 << 10)
        );
        assert_eq!(set.to_string(), "setgid,setuid");
        assert_eq!("".parse::<CapSet>().unwrap().to_string(), "none");
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(
            "setuid,fly".parse::<CapSet>(),
            Err(UnknownCap("fly".into()))
        );
    }
}
