//! Policy: a vassal's config and the emperor's mode become a jail plan. Every refusal (tyrant
//! mode, options a tenant may not use, ceilings) happens here, before anything is done; pure
//! and unit-tested. `emperor check` prints the result.

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

/// A set of TCP ports, as `8000-8999,9090`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortList(pub Vec<(u16, u16)>);

impl PortList {
    pub fn contains(&self, port: u16) -> bool {
        self.0
            .iter()
            .any(|&(low, high)| (low..=high).contains(&port))
    }
}

impl std::str::FromStr for PortList {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{p:?} is not a port number"))
        };
        let mut ranges = Vec::new();
        for item in text.split(',').filter(|i| !i.trim().is_empty()) {
            let range = match item.split_once('-') {
                Some((low, high)) => (port(low)?, port(high)?),
                None => (port(item)?, port(item)?),
            };
            if range.0 > range.1 {
                return Err(format!("{item:?}: the range is empty"));
            }
            ranges.push(range);
        }
        Ok(PortList(ranges))
    }
}

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|&(low, high)| {
                if low == high {
                    low.to_string()
                } else {
                    format!("{low}-{high}")
                }
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

/// The options that bind a listening socket for the payload. The runtime binds them all the
/// same way (before the net namespace and the drop), so they differ only in name.
pub const SOCKET_OPTIONS: [&str; 3] = ["socket", "http-socket", "shared-socket"];

/// Where a vassal socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
    /// Linux abstract namespace (`@name`).
    Abstract(String),
}

/// One socket the runtime binds and hands to every payload it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// `file:line`, for errors.
    pub place: String,
    pub option: String,
    pub value: String,
    pub address: SocketAddress,
}

/// `host:port`, `:port` (every IPv4 address), `[v6]:port`, a UNIX path, or `@abstract`.
pub fn parse_socket_address(value: &str) -> Result<SocketAddress, String> {
    if let Some(name) = value.strip_prefix('@') {
        if name.is_empty() {
            return Err("an abstract socket needs a name after @".into());
        }
        return Ok(SocketAddress::Abstract(name.to_string()));
    }
    if value.contains('/') || !value.contains(':') {
        if value.is_empty() {
            return Err("empty address".into());
        }
        return Ok(SocketAddress::Unix(PathBuf::from(value)));
    }
    let (host, port) = value.rsplit_once(':').expect("contains ':'");
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host {
        "" | "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        other => other
            .parse()
            .map_err(|_| format!("{other:?} is not an IP address (host names are not resolved)"))?,
    };
    Ok(SocketAddress::Tcp(std::net::SocketAddr::new(ip, port)))
}

/// The option naming the socket the emperor holds for an on-demand vassal.
pub const ON_DEMAND_OPTION: &str = "on-demand-socket";
/// The option naming a socket the emperor holds and shares between every vassal naming it
/// (a pool): a connection waits in its backlog for whichever vassal accepts first.
pub const POOL_OPTION: &str = "pool-socket";
/// The option giving how long an on-demand vassal may stay idle before the emperor stops it.
pub const IDLE_OPTION: &str = "idle";

/// The vassal's sockets: its `on-demand-socket` first (fd 3 for the payload), then the
/// others in config order; in tyrant mode a TCP port must be in the admin's
/// `--emperor-tyrant-ports`.
pub fn sockets(config: &Config, context: &JailContext) -> Result<Vec<SocketSpec>, PolicyError> {
    let mut specs: Vec<SocketSpec> = on_demand_socket(config, context)?.into_iter().collect();
    if let Some(pool) = pool_socket(config, context)? {
        if let Some(on_demand) = specs.first() {
            let entry = config.get(POOL_OPTION).expect("just read");
            return Err(refuse(
                entry,
                format!(
                    "a vassal is either on demand or in a pool (on-demand-socket at {})",
                    on_demand.place
                ),
            ));
        }
        specs.push(pool);
    }
    let is_socket = |key: &str| SOCKET_OPTIONS.contains(&key.replace('_', "-").as_str());
    for entry in config.entries.iter().filter(|e| is_socket(&e.key)) {
        specs.push(socket_spec(entry, context)?);
    }
    Ok(specs)
}

fn socket_spec(entry: &Entry, context: &JailContext) -> Result<SocketSpec, PolicyError> {
    let address = parse_socket_address(&entry.value).map_err(|e| refuse(entry, e))?;
    if let SocketAddress::Tcp(addr) = &address {
        if context.tyrant && !context.tyrant_ports.contains(addr.port()) {
            return Err(refuse(
                entry,
                format!(
                    "port {} is not allowed in tyrant mode (the emperor's --emperor-tyrant-ports is {:?})",
                    addr.port(),
                    context.tyrant_ports.to_string()
                ),
            ));
        }
    }
    Ok(SocketSpec {
        place: entry.origin.to_string(),
        option: entry.key.clone(),
        value: entry.value.clone(),
        address,
    })
}

/// The config's `on-demand-socket`, judged like any socket option; at most one.
fn on_demand_socket(
    config: &Config,
    context: &JailContext,
) -> Result<Option<SocketSpec>, PolicyError> {
    held_socket(
        config,
        context,
        ON_DEMAND_OPTION,
        "one on-demand socket per vassal",
    )
}

/// The config's `pool-socket` (the socket its pool shares, held by the emperor); at most one.
pub fn pool_socket(
    config: &Config,
    context: &JailContext,
) -> Result<Option<SocketSpec>, PolicyError> {
    held_socket(config, context, POOL_OPTION, "one pool socket per vassal")
}

fn held_socket(
    config: &Config,
    context: &JailContext,
    option: &str,
    one: &str,
) -> Result<Option<SocketSpec>, PolicyError> {
    let mut entries = config.get_all(option);
    let Some(first) = entries.next() else {
        return Ok(None);
    };
    if let Some(second) = entries.next() {
        return Err(refuse(
            second,
            format!("{one} (the first is at {})", first.origin),
        ));
    }
    socket_spec(first, context).map(Some)
}

/// What the emperor needs to run a vassal on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDemand {
    /// The socket the emperor binds and holds, and hands to each payload.
    pub socket: SocketSpec,
    /// Stop the vassal after this long without a connection (`idle`); None: never.
    pub idle: Option<std::time::Duration>,
}

/// The config's on-demand settings, or None for a vassal started at once. `idle` without
/// `on-demand-socket` is ignored (the caller may warn): only a socket the emperor holds lets
/// it start a stopped vassal again.
pub fn on_demand(config: &Config, context: &JailContext) -> Result<Option<OnDemand>, PolicyError> {
    let Some(socket) = on_demand_socket(config, context)? else {
        return Ok(None);
    };
    let idle = match config.get(IDLE_OPTION) {
        Some(entry) => {
            let seconds = entry
                .value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .ok_or_else(|| {
                    refuse(
                        entry,
                        format!("{:?} is not a number of seconds above 0", entry.value),
                    )
                })?;
            Some(std::time::Duration::from_secs_f64(seconds))
        }
        None => None,
    };
    Ok(Some(OnDemand { socket, idle }))
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

/// `bind-mount[-ro] = SRC[:DST]`, `tmpfs = DST[:SIZE]`, `pivot-root`/`chroot = DIR`, and /proc
/// for a pid namespace the runtime is pid 1 of. Targets are under the new root if any.
fn mounts(
    config: &Config,
    namespaces: Namespaces,
    cloned: Namespaces,
    tyrant: bool,
) -> Result<Vec<Step>, PolicyError> {
    let mount_options = [
        "bind-mount",
        "bind-mount-ro",
        "tmpfs",
        "pivot-root",
        "chroot",
    ];
    let wanted: Vec<&Entry> = config
        .entries
        .iter()
        .filter(|e| mount_options.contains(&crate::config::normalize_key(&e.key).as_str()))
        .collect();
    let own_proc = cloned.contains(Namespaces::PID) && namespaces.contains(Namespaces::MOUNT);
    if wanted.is_empty() && !own_proc {
        return Ok(Vec::new());
    }
    if !namespaces.contains(Namespaces::MOUNT) {
        return Err(refuse(
            wanted[0],
            "needs a mount namespace (emperor-use-clone or unshare = fs)",
        ));
    }
    let new_root = config
        .get("pivot-root")
        .or_else(|| config.get("chroot"))
        .map(|e| PathBuf::from(&e.value));
    let inside = |path: &str| -> PathBuf {
        match &new_root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        }
    };
    let mut steps = vec![Step::MakeMountsPrivate];
    for entry in &wanted {
        let key = crate::config::normalize_key(&entry.key);
        match key.as_str() {
            "bind-mount" | "bind-mount-ro" => {
                let (source, target) = entry
                    .value
                    .split_once(':')
                    .unwrap_or((&entry.value, &entry.value));
                if !Path::new(source).is_absolute() || !Path::new(target).is_absolute() {
                    return Err(refuse(entry, "paths must be absolute (SRC[:DST])"));
                }
                steps.push(Step::BindMount {
                    source: PathBuf::from(source),
                    target: inside(target),
                    read_only: key == "bind-mount-ro",
                    nosuid_nodev: tyrant,
                });
            }
            "tmpfs" => {
                let (target, size) = match entry.value.split_once(':') {
                    Some((t, s)) => (
                        t,
                        Some(
                            parse_size(s)
                                .ok_or_else(|| refuse(entry, format!("bad size {s:?}")))?,
                        ),
                    ),
                    None => (entry.value.as_str(), None),
                };
                steps.push(Step::Tmpfs {
                    target: inside(target),
                    size,
                });
            }
            _ => {}
        }
    }
    if let Some(root) = &new_root {
        steps.push(Step::PivotRoot(root.clone()));
    }
    if own_proc {
        steps.push(Step::MountProc(PathBuf::from("/proc")));
    }
    Ok(steps)
}

/// `64M`, `1G`, `4096`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn privilege_drop(config: &Config, context: &JailContext) -> Result<PrivilegeDrop, PolicyError> {
    let uid = config.get("uid").map(|e| resolve_id(e, true)).transpose()?;
    let gid = match config.get("gid") {
        Some(e) => Some(resolve_id(e, false)?),
        None => uid.and_then(primary_gid_of),
    };
    let keep_caps = match config.get("cap") {
        Some(entry) => entry
            .value
            .parse::<CapSet>()
            .map_err(|e| refuse(entry, e.to_string()))?,
        None => CapSet::EMPTY,
    };
    Ok(PrivilegeDrop {
        groups: Vec::new(),
        gid,
        uid,
        keep_caps,
        rlimits: rlimits(config, context)?,
        groups_locked: false,
    })
}

/// A number, or a name from /etc/passwd (/etc/group for gids).
fn resolve_id(entry: &Entry, user: bool) -> Result<u32, PolicyError> {
    if let Ok(n) = entry.value.trim().parse::<u32>() {
        return Ok(n);
    }
    let name = entry.value.trim();
    let found = if user {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    } else {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    };
    found.ok_or_else(|| {
        refuse(
            entry,
            format!("no such {} {name:?}", if user { "user" } else { "group" }),
        )
    })
}

fn primary_gid_of(uid: u32) -> Option<u32> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.gid.as_raw())
}

/// rlimits from the config, clamped to the admin's ceilings (and, for tenants, to safe
/// defaults where the admin set none).
fn rlimits(config: &Config, context: &JailContext) -> Result<Vec<Rlimit>, PolicyError> {
    let mut ceilings = context.ceilings;
    if context.tyrant {
        ceilings.processes = ceilings.processes.or(TENANT_DEFAULT_CEILINGS.processes);
        ceilings.open_files = ceilings.open_files.or(TENANT_DEFAULT_CEILINGS.open_files);
    }
    let number = |key: &str, scale: u64| -> Result<Option<u64>, PolicyError> {
        match config.get(key) {
            Some(entry) => entry
                .value
                .trim()
                .parse::<u64>()
                .map(|n| Some(n.saturating_mul(scale)))
                .map_err(|_| refuse(entry, format!("expected a number, got {:?}", entry.value))),
            None => Ok(None),
        }
    };
    let clamp = |own: Option<u64>, ceiling: Option<u64>| match (own, ceiling) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut limits = Vec::new();
    let mut push = |resource: u32, value: Option<u64>| {
        if let Some(v) = value {
            limits.push(Rlimit {
                resource,
                soft: v,
                hard: v,
            });
        }
    };
    push(
        libc::RLIMIT_AS,
        clamp(number("limit-as", 1 << 20)?, ceilings.address_space),
    );
    push(
        libc::RLIMIT_NPROC,
        clamp(number("limit-nproc", 1)?, ceilings.processes),
    );
    push(
        libc::RLIMIT_NOFILE,
        clamp(number("max-fd", 1)?, ceilings.open_files),
    );
    push(libc::RLIMIT_FSIZE, number("limit-fsize", 1 << 20)?);
    push(
        libc::RLIMIT_CORE,
        number("limit-core", 1)?.or(context.tyrant.then_some(0)),
    );
    Ok(limits)
}

/// `memory-max = SIZE`, `pids-max = N`, `cpu-max = QUOTA PERIOD` (µs), `cpu-weight = N`.
fn cgroup_limits(
    config: &Config,
    context: &JailContext,
) -> Result<jail::cgroup::Limits, PolicyError> {
    let keys = ["memory-max", "pids-max", "cpu-max", "cpu-weight"];
    let Some(first) = keys.iter().find_map(|k| config.get(k)) else {
        return Ok(jail::cgroup::Limits::default());
    };
    if context.cgroup_fd.is_none() {
        return Err(refuse(
            first,
            "no cgroup v2 hierarchy for vassals (the emperor has no --emperor-cgroup)",
        ));
    }
    let number = |key: &str| -> Result<Option<u64>, PolicyError> {
        config
            .get(key)
            .map(|e| {
                e.value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| refuse(e, format!("expected a number, got {:?}", e.value)))
            })
            .transpose()
    };
    let memory_max = config
        .get("memory-max")
        .map(|e| {
            parse_size(&e.value).ok_or_else(|| {
                refuse(
                    e,
                    format!("expected a size such as 256M, got {:?}", e.value),
                )
            })
        })
        .transpose()?;
    let cpu_max = config
        .get("cpu-max")
        .map(|e| {
            let mut parts = e.value.split_whitespace().map(str::parse::<u64>);
            match (parts.next(), parts.next().unwrap_or(Ok(100_000))) {
                (Some(Ok(quota)), Ok(period)) => Ok((quota, period)),
                _ => Err(refuse(e, "expected QUOTA [PERIOD] in microseconds")),
            }
        })
        .transpose()?;
    Ok(jail::cgroup::Limits {
        memory_max,
        pids_max: number("pids-max")?,
        cpu_max,
        cpu_weight: number("cpu-weight")?,
    })
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

impl fmt::Display for VassalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "namespaces: {}", self.namespaces)?;
        for (i, item) in self.setup.iter().enumerate() {
            match item {
                SetupItem::Jail(step) => writeln!(f, "  {:>2}. {step}", i + 1)?,
                SetupItem::HookAsRoot(cmd) => writeln!(f, "  {:>2}. exec-as-root: {cmd}", i + 1)?,
            }
        }
        if self.privileged_payload {
            writeln!(
                f,
                "payload: privileged (runs as the jail's root, before the drop)"
            )?;
            return Ok(());
        }
        if self.payload_as_owner {
            writeln!(
                f,
                "payload: in a user namespace of its own, as the owner's uid and gid"
            )?;
        }
        let id = |v: Option<u32>| v.map_or("unchanged".to_string(), |n| n.to_string());
        writeln!(
            f,
            "drop: uid {}, gid {}, groups none, caps {}",
            id(self.drop.uid),
            id(self.drop.gid),
            self.drop.keep_caps
        )?;
        for limit in &self.drop.rlimits {
            writeln!(
                f,
                "  rlimit {}: {}",
                rlimit_name(limit.resource),
                limit.hard
            )?;
        }
        writeln!(f, "no_new_privs: yes")?;
        writeln!(f, "seccomp: {}", jail::seccomp::describe(self.seccomp))?;
        for hook in &self.user_hooks {
            writeln!(f, "exec-as-user: {hook}")?;
        }
        if self.cgroup != jail::cgroup::Limits::default() {
            writeln!(
                f,
                "cgroup (payload, below the admin's ceilings): {:?}",
                self.cgroup
            )?;
        }
        Ok(())
    }
}

fn rlimit_name(resource: u32) -> &'static str {
    match resource {
        r if r == libc::RLIMIT_AS => "address space (limit-as)",
        r if r == libc::RLIMIT_NPROC => "processes (limit-nproc)",
        r if r == libc::RLIMIT_NOFILE => "open files (max-fd)",
        r if r == libc::RLIMIT_FSIZE => "file size (limit-fsize)",
        r if r == libc::RLIMIT_CORE => "core size (limit-core)",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn config(lines: &[(&str, &str)]) -> Config {
        let entries = lines
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Entry {
                key: key.to_string(),
                value: value.to_string(),
                origin: Origin {
                    file: PathBuf::from("app.ini"),
                    line: Some(i + 2),
                },
            })
            .collect();
        Config {
            path: PathBuf::from("app.ini"),
            entries,
        }
    }

    fn tyrant() -> JailContext {
        JailContext {
            tyrant: true,
            cloned: Namespaces::USER,
            ..JailContext::default()
        }
    }

    #[test]
    fn options_that_act_as_the_emperor_are_refused_to_tenants_by_name() {
        let err = plan(&config(&[("exec-as-emperor", "touch /x")]), &tyrant()).unwrap_err();
        assert_eq!(err.to_string(), "app.ini:2: option \"exec-as-emperor\": not allowed in tyrant mode: it would act on the host as the emperor");
        assert!(
            plan(
                &config(&[("exec-as-emperor", "touch /x")]),
                &JailContext::default()
            )
            .is_ok(),
            "classic mode trusts its configs"
        );
    }

    #[test]
    fn a_tenant_cannot_turn_seccomp_off_but_an_admin_can() {
        let err = plan(&config(&[("seccomp", "none")]), &tyrant()).unwrap_err();
        assert_eq!(err.option, "seccomp");
        assert_eq!(
            plan(&config(&[("seccomp", "none")]), &JailContext::default())
                .unwrap()
                .seccomp,
            Profile::Unconfined
        );
        assert_eq!(
            plan(&config(&[]), &tyrant()).unwrap().seccomp,
            Profile::Default
        );
    }

    #[test]
    fn hostname_needs_a_uts_namespace() {
        let err = plan(&config(&[("hostname", "h")]), &JailContext::default()).unwrap_err();
        assert!(err.reason.contains("uts namespace"), "{err}");
        let context = JailContext {
            emperor_namespaces: "uts".parse().unwrap(),
            cloned: "uts".parse().unwrap(),
            ..Default::default()
        };
        let steps = plan(&config(&[("hostname", "h")]), &context).unwrap().setup;
        assert!(steps.contains(&SetupItem::Jail(Step::SetHostname("h".into()))));
    }

    #[test]
    fn net_is_entered_by_the_runtime_after_the_clone_and_lo_comes_up() {
        let use_clone: Namespaces = "fs,net,pid".parse().unwrap();
        let context = JailContext {
            emperor_namespaces: use_clone,
            cloned: cloned_namespaces(use_clone, false),
            ..Default::default()
        };
        let steps = plan(&config(&[]), &context).unwrap().setup;
        assert_eq!(steps[0], SetupItem::Jail(Step::Unshare(Namespaces::NET)));
        assert_eq!(steps[1], SetupItem::Jail(Step::LoopbackUp));
        assert!(
            steps.contains(&SetupItem::Jail(Step::MountProc(PathBuf::from("/proc")))),
            "pid 1 of a new pid namespace gets its /proc"
        );
    }

    #[test]
    fn a_vassals_own_pid_namespace_goes_to_its_payload_and_needs_fs() {
        let err = plan(&config(&[("unshare", "pid")]), &JailContext::default()).unwrap_err();
        assert!(err.reason.contains("mount namespace"), "{err}");
        let p = plan(&config(&[("unshare", "fs,pid")]), &JailContext::default()).unwrap();
        assert_eq!(p.payload_namespaces, Namespaces::PID);
        assert!(p.payload_mounts_proc);
    }

    #[test]
    fn mounts_go_under_the_new_root_and_the_pivot_comes_last() {
        let context = JailContext {
            emperor_namespaces: Namespaces::MOUNT,
            cloned: Namespaces::MOUNT,
            ..Default::default()
        };
        let p = plan(
            &config(&[
                ("pivot-root", "/srv/root"),
                ("bind-mount-ro", "/usr"),
                ("tmpfs", "/tmp:16M"),
            ]),
            &context,
        )
        .unwrap();
        let mounts: Vec<Step> = p
            .setup
            .into_iter()
            .filter_map(|i| {
                if let SetupItem::Jail(s) = i {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            &mounts[mounts.len() - 4..],
            &[
                Step::MakeMountsPrivate,
                Step::BindMount {
                    source: "/usr".into(),
                    target: "/srv/root/usr".into(),
                    read_only: true,
                    nosuid_nodev: false
                },
                Step::Tmpfs {
                    target: "/srv/root/tmp".into(),
                    size: Some(16 << 20)
                },
                Step::PivotRoot("/srv/root".into()),
            ]
        );
    }

    #[test]
    fn tenant_limits_are_the_lower_of_theirs_and_the_admins() {
        let mut context = tyrant();
        context.ceilings.processes = Some(100);
        let p = plan(
            &config(&[("limit-nproc", "5000"), ("max-fd", "64")]),
            &context,
        )
        .unwrap();
        let limit = |r| {
            p.drop
                .rlimits
                .iter()
                .find(|l| l.resource == r)
                .map(|l| l.hard)
        };
        assert_eq!(limit(libc::RLIMIT_NPROC), Some(100));
        assert_eq!(limit(libc::RLIMIT_NOFILE), Some(64));
        assert_eq!(limit(libc::RLIMIT_CORE), Some(0));
    }

    #[test]
    fn cgroup_limits_need_a_cgroup_from_the_emperor() {
        let err = plan(&config(&[("memory-max", "64M")]), &JailContext::default()).unwrap_err();
        assert!(err.reason.contains("cgroup v2"), "{err}");
        let context = JailContext {
            cgroup_fd: Some(4),
            ..Default::default()
        };
        assert_eq!(
            plan(&config(&[("memory-max", "64M")]), &context)
                .unwrap()
                .cgroup
                .memory_max,
            Some(64 << 20)
        );
    }

    #[test]
    fn cloned_namespaces_leave_net_to_the_runtime() {
        let all: Namespaces = "fs,net,ipc,pid,uts".parse().unwrap();
        assert_eq!(cloned_namespaces(all, false).to_string(), "fs,ipc,pid,uts");
        assert_eq!(
            cloned_namespaces(all, true).to_string(),
            "fs,ipc,pid,uts,user"
        );
    }

    #[test]
    fn socket_addresses_parse_as_uwsgi_writes_them() {
        let tcp = |text: &str| SocketAddress::Tcp(text.parse().unwrap());
        assert_eq!(parse_socket_address(":8080"), Ok(tcp("0.0.0.0:8080")));
        assert_eq!(
            parse_socket_address("127.0.0.1:80"),
            Ok(tcp("127.0.0.1:80"))
        );
        assert_eq!(
            parse_socket_address("localhost:81"),
            Ok(tcp("127.0.0.1:81"))
        );
        assert_eq!(parse_socket_address("[::1]:82"), Ok(tcp("[::1]:82")));
        assert_eq!(
            parse_socket_address("/run/app.sock"),
            Ok(SocketAddress::Unix("/run/app.sock".into()))
        );
        assert_eq!(
            parse_socket_address("@app"),
            Ok(SocketAddress::Abstract("app".into()))
        );
        assert!(parse_socket_address("127.0.0.1:http").is_err());
        assert!(parse_socket_address("example.com:80").is_err());
        assert!(parse_socket_address("@").is_err());
    }

    #[test]
    fn tyrant_ports_are_the_admins_list() {
        let list: PortList = "8000-8999, 9090".parse().unwrap();
        assert!(list.contains(8000) && list.contains(8999) && list.contains(9090));
        assert!(!list.contains(7999) && !list.contains(9000) && !list.contains(80));
        assert_eq!(list.to_string(), "8000-8999,9090");
        assert!("9000-8000".parse::<PortList>().is_err());
        assert!("http".parse::<PortList>().is_err());
        assert_eq!("".parse::<PortList>(), Ok(PortList::default()));
    }

    #[test]
    fn a_tyrant_may_bind_only_listed_tcp_ports() {
        let mut context = tyrant();
        context.tyrant_ports = "9000".parse().unwrap();
        let ok = config(&[("socket", "127.0.0.1:9000"), ("http-socket", "/tmp/x.sock")]);
        assert_eq!(sockets(&ok, &context).unwrap().len(), 2);
        let denied = config(&[("shared-socket", ":80")]);
        let error = sockets(&denied, &context).unwrap_err();
        assert_eq!(error.option, "shared-socket");
        assert!(error.reason.contains("port 80"), "{error}");
        assert!(error.reason.contains("--emperor-tyrant-ports"), "{error}");
        // Classic mode: any port.
        assert!(sockets(&denied, &JailContext::default()).is_ok());
    }

    #[test]
    fn the_on_demand_socket_comes_first_and_obeys_the_tyrant_ports() {
        let mut context = tyrant();
        context.tyrant_ports = "9000".parse().unwrap();
        let ok = config(&[
            ("socket", "/tmp/own.sock"),
            ("on-demand-socket", "127.0.0.1:9000"),
            ("idle", "2.5"),
        ]);
        let specs = sockets(&ok, &context).unwrap();
        assert_eq!(specs[0].option, "on-demand-socket");
        assert_eq!(specs[1].option, "socket");
        let od = on_demand(&ok, &context).unwrap().unwrap();
        assert_eq!(od.idle, Some(std::time::Duration::from_millis(2500)));
        assert_eq!(od.socket.value, "127.0.0.1:9000");

        let denied = config(&[("on-demand-socket", ":8080")]);
        let error = on_demand(&denied, &context).unwrap_err();
        assert_eq!(error.option, "on-demand-socket");
        assert!(
            error
                .to_string()
                .starts_with("app.ini:2: option \"on-demand-socket\": port 8080"),
            "{error}"
        );
        assert!(
            on_demand(&denied, &JailContext::default()).is_ok(),
            "classic: any port"
        );
    }

    #[test]
    fn idle_must_be_positive_seconds_and_one_on_demand_socket_is_the_limit() {
        let bad = config(&[("on-demand-socket", "@x"), ("idle", "soon")]);
        assert_eq!(
            on_demand(&bad, &JailContext::default()).unwrap_err().option,
            "idle"
        );
        let zero = config(&[("on-demand-socket", "@x"), ("idle", "0")]);
        assert!(on_demand(&zero, &JailContext::default()).is_err());
        let two = config(&[("on-demand-socket", "@x"), ("on-demand-socket", "@y")]);
        let error = on_demand(&two, &JailContext::default()).unwrap_err();
        assert!(error.reason.contains("one on-demand socket"), "{error}");
        let plain = config(&[("idle", "5")]);
        assert_eq!(on_demand(&plain, &JailContext::default()), Ok(None));
    }
}
