//! Who the payload becomes and what it may use: the privilege drop, rlimits and cgroup
//! limits, each clamped to the admin's ceilings.

use super::*;

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

pub(super) fn privilege_drop(
    config: &Config,
    context: &JailContext,
) -> Result<PrivilegeDrop, PolicyError> {
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
pub(super) fn cgroup_limits(
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
