//! Policy: a vassal's config and the emperor's mode become a jail plan. Every refusal (tyrant
//! mode, options a tenant may not use, ceilings) happens here, before anything is done; pure
//! and unit-tested. `emperor check` prints the result.

mod display;
pub mod known_options;
mod limits;
mod mounts;
pub mod payload;
mod sockets;
pub mod timings;
pub mod uwsgi;

pub use limits::parse_size;
use limits::{cgroup_limits, privilege_drop};
use mounts::mounts;
pub use sockets::*;
#[cfg(test)]
mod tests;

use crate::config::{Config, Entry};
use jail::caps::CapSet;
use jail::creds::{PrivilegeDrop, Rlimit};
use jail::ns::Namespaces;
use jail::plan::Step;
use jail::seccomp::Profile;
use std::fmt;
use std::path::{Path, PathBuf};

/// What the emperor decided for every vassal (passed to the runtime on its command line,
/// never from the tenant's config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JailContext {
    /// Namespaces the emperor asks for every vassal (`emperor-use-clone`).
    pub emperor_namespaces: Namespaces,
    /// Namespaces the clone already created (the others the runtime enters itself).
    pub cloned: Namespaces,
    pub tyrant: bool,
    /// Admin ceilings a tenant can only lower.
    pub ceilings: Ceilings,
    /// The payload's cgroup v2 directory (an fd from the emperor), if cgroups are in use.
    pub cgroup_fd: Option<i32>,
    /// Host TCP ports a tyrant vassal may bind (`--emperor-tyrant-ports`); none when unset.
    pub tyrant_ports: PortList,
    /// The listening socket the emperor holds for `on-demand-socket` (an inherited fd).
    pub held_fd: Option<i32>,
}

/// Upper bounds set by the emperor's admin; in tyrant mode a vassal gets min(own, ceiling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ceilings {
    pub address_space: Option<u64>,
    pub processes: Option<u64>,
    pub open_files: Option<u64>,
}

/// The namespaces the emperor's clone creates for a vassal: all it asks for but `net` (entered
/// by the runtime once its sockets are bound), plus a user namespace when one is needed
/// (tyrant mode, an unprivileged emperor, or `user` asked for).
pub fn cloned_namespaces(use_clone: Namespaces, user_namespace: bool) -> Namespaces {
    let cloned = use_clone.without(Namespaces::NET);
    if user_namespace || use_clone.contains(Namespaces::USER) {
        cloned.union(Namespaces::USER)
    } else {
        cloned
    }
}

/// Tasks a tenant's vassal may have when the admin set no `--vassal-pids-max`.
pub const TENANT_DEFAULT_PIDS: u64 = 1024;

/// Safe defaults for tenants when the admin set no ceiling.
pub const TENANT_DEFAULT_CEILINGS: Ceilings = Ceilings {
    address_space: None,
    processes: Some(1024),
    open_files: Some(8192),
};

/// What the runtime does before the payload, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupItem {
    Jail(Step),
    /// `exec-as-root`: a shell command run as the jail's root, before the mounts' end state.
    HookAsRoot(String),
}

/// Everything a vassal's jail is, decided before anything is done.
#[derive(Debug, Clone, PartialEq)]
pub struct VassalPlan {
    pub namespaces: Namespaces,
    pub setup: Vec<SetupItem>,
    /// Namespaces the payload is cloned into (a vassal's own `unshare = pid`).
    pub payload_namespaces: Namespaces,
    /// Mount /proc in the payload's child (its own pid namespace).
    pub payload_mounts_proc: bool,
    /// `privileged-binary-patch`: the payload keeps the jail's root and capabilities.
    pub privileged_payload: bool,
    /// Tyrant mode, no `uid` of its own: the payload runs as its owner inside the jail too,
    /// in a user namespace of its own whose owner uid maps to the jail's root (the owner).
    pub payload_as_owner: bool,
    pub drop: PrivilegeDrop,
    pub seccomp: Profile,
    pub user_hooks: Vec<String>,
    /// The vassal's own cgroup limits, below the admin's (cgroup.max files of its payload).
    pub cgroup: jail::cgroup::Limits,
    /// Listening sockets, bound by the runtime before its jail and passed to the payload.
    pub sockets: Vec<SocketSpec>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{place}: option \"{option}\": {reason}")]
pub struct PolicyError {
    pub place: String,
    pub option: String,
    pub reason: String,
}

fn refuse(entry: &Entry, reason: impl Into<String>) -> PolicyError {
    PolicyError {
        place: entry.origin.to_string(),
        option: entry.key.clone(),
        reason: reason.into(),
    }
}

/// Options that act on the host as the emperor: a tenant may never use them.
const TENANT_FORBIDDEN: [&str; 8] = [
    "exec-as-emperor",
    "hook-as-emperor",
    "mount-as-emperor",
    "umount-as-emperor",
    "call-as-emperor",
    "emperor",
    "emperor-use-clone",
    "binary-path",
];

pub fn plan(config: &Config, context: &JailContext) -> Result<VassalPlan, PolicyError> {
    if context.tyrant {
        if let Some(entry) = TENANT_FORBIDDEN.iter().find_map(|o| config.get(o)) {
            return Err(refuse(
                entry,
                "not allowed in tyrant mode: it would act on the host as the emperor",
            ));
        }
    }
    let own = match config.get("unshare") {
        Some(entry) => entry
            .value
            .parse::<Namespaces>()
            .map_err(|e| refuse(entry, e.to_string()))?,
        None => Namespaces::NONE,
    };
    let namespaces = context.emperor_namespaces.union(own).union(context.cloned);
    let deferred = namespaces.without(context.cloned);
    let payload_namespaces = deferred.0 & Namespaces::PID.0;
    if payload_namespaces != 0 && !namespaces.contains(Namespaces::MOUNT) {
        let entry = config.get("unshare").expect("pid came from the vassal");
        return Err(refuse(
            entry,
            "a pid namespace needs a mount namespace (add fs) to get its own /proc",
        ));
    }
    let mut setup = Vec::new();
    let runtime_unshares = Namespaces(deferred.0 & !Namespaces::PID.0 & !Namespaces::USER.0);
    if !runtime_unshares.is_empty() {
        setup.push(SetupItem::Jail(Step::Unshare(runtime_unshares)));
    }
    if namespaces.contains(Namespaces::NET) {
        setup.push(SetupItem::Jail(Step::LoopbackUp));
    }
    setup.push(SetupItem::Jail(Step::NotDumpable));
    for entry in config.get_all("exec-as-root") {
        setup.push(SetupItem::HookAsRoot(entry.value.clone()));
    }
    if let Some(entry) = config.get("hostname") {
        if !namespaces.contains(Namespaces::UTS) {
            return Err(refuse(entry, "needs a uts namespace (emperor-use-clone or unshare = uts), else it would rename the host"));
        }
        setup.push(SetupItem::Jail(Step::SetHostname(entry.value.clone())));
    }
    setup.extend(
        mounts(config, namespaces, context.cloned, context.tyrant)?
            .into_iter()
            .map(SetupItem::Jail),
    );
    let (drop, seccomp) = (
        privilege_drop(config, context)?,
        seccomp_profile(config, context.tyrant)?,
    );
    Ok(VassalPlan {
        namespaces,
        setup,
        payload_namespaces: Namespaces(payload_namespaces),
        payload_mounts_proc: payload_namespaces != 0,
        privileged_payload: config.get("privileged-binary-patch-arg").is_some()
            || config.get("privileged-binary-patch").is_some(),
        payload_as_owner: context.tyrant
            && drop.uid.is_none()
            && drop.gid.is_none()
            && config.get("privileged-binary-patch-arg").is_none()
            && config.get("privileged-binary-patch").is_none(),
        drop,
        seccomp,
        user_hooks: config
            .get_all("exec-as-user")
            .map(|e| e.value.clone())
            .collect(),
        cgroup: cgroup_limits(config, context)?,
        sockets: sockets(config, context)?,
    })
}

/// The option a jail step comes from, for error messages.
pub fn option_of(step: &Step) -> &'static str {
    match step {
        Step::Unshare(_) | Step::LoopbackUp | Step::MountProc(_) => "emperor-use-clone / unshare",
        Step::SetHostname(_) => "hostname",
        Step::MakeMountsPrivate => "bind-mount / tmpfs / pivot-root",
        Step::BindMount {
            read_only: true, ..
        } => "bind-mount-ro",
        Step::BindMount { .. } => "bind-mount",
        Step::Tmpfs { .. } => "tmpfs",
        Step::PivotRoot(_) => "pivot-root",
        Step::NotDumpable => "(always)",
    }
}

fn seccomp_profile(config: &Config, tyrant: bool) -> Result<Profile, PolicyError> {
    let Some(entry) = config.get("seccomp") else {
        return Ok(Profile::Default);
    };
    let profile: Profile = entry
        .value
        .parse()
        .map_err(|e: jail::seccomp::SeccompError| refuse(entry, e.to_string()))?;
    if tyrant && profile == Profile::Unconfined {
        return Err(refuse(entry, "a tenant cannot turn the seccomp filter off"));
    }
    Ok(profile)
}
