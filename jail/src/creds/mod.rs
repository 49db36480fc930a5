//! The privilege drop a payload (or an exec-as-user hook) applies to itself between clone and
//! execve: rlimits, bounding set, groups, gid, uid, capabilities, no_new_privs, then a check
//! that nothing is left. Prepared as plain values; applied with raw syscalls only.

use crate::caps::CapSet;
use crate::sys;
use nix::errno::Errno;

mod step;
pub use step::{DropStep, Ids, Leftover, Resource};

/// Capability numbers (linux/capability.h) the drop checks for.
const CAP_SETGID: u32 = 6;
const CAP_SETPCAP: u32 = 8;

/// One resource limit (RLIMIT_* number, soft, hard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Who the process becomes and what it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrivilegeDrop {
    /// Supplementary groups after the drop (none by default).
    pub groups: Vec<u32>,
    /// None: keep the current gid/uid (root of the jail, or the emperor's in classic mode).
    pub gid: Option<u32>,
    pub uid: Option<u32>,
    /// Capabilities kept (effective, permitted, inheritable, ambient, bounding); all others go.
    pub keep_caps: CapSet,
    pub rlimits: Vec<Rlimit>,
    /// setgroups(2) is denied in our user namespace (see
    /// [`crate::userns::write_maps_from_parent`]): the groups stay as they are. Filled in by
    /// [`crate::launch::Launch::drop_privileges`].
    pub groups_locked: bool,
}

/// Which step of the drop failed, for the error report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropFailure {
    pub step: DropStep,
    pub errno: Errno,
}

fn fail(step: DropStep) -> impl Fn(Errno) -> DropFailure {
    move |errno| DropFailure { step, errno }
}

/// The check found privileges left: a failure of its own (EPERM), naming them.
fn left(leftover: Leftover) -> Result<(), DropFailure> {
    if leftover.is_empty() {
        return Ok(());
    }
    Err(DropFailure {
        step: DropStep::Verify(leftover),
        errno: Errno::EPERM,
    })
}

impl PrivilegeDrop {
    /// Whether the drop keeps the uid and gid: then it changes no id the kernel compares when
    /// it commits the new credentials, so the memory's dumpable flag stays as it was (dropping
    /// capabilities, groups, rlimits and setting no_new_privs leave it alone).
    pub fn keeps_ids(&self) -> bool {
        self.uid.is_none() && self.gid.is_none()
    }

    /// Apply in the current (single-threaded) process. Async-signal-safe: raw syscalls on the
    /// prepared fields, no allocation.
    pub fn apply(&self, last_cap: u32) -> Result<(), DropFailure> {
        for limit in &self.rlimits {
            // Never above the current hard limit: raising it needs CAP_SYS_RESOURCE in the
            // initial user namespace, which no vassal has, and a ceiling is only a ceiling.
            let (_, current_hard) = sys::getrlimit(limit.resource)
                .map_err(fail(DropStep::Getrlimit(limit.resource)))?;
            let hard = limit.hard.min(current_hard);
            let soft = limit.soft.min(hard);
            sys::setrlimit(limit.resource, soft, hard).map_err(fail(DropStep::Setrlimit {
                resource: limit.resource,
                soft,
                hard,
            }))?;
        }
        // What we may change depends on what we hold: a runtime started by an ordinary user
        // has no capability, nothing in its bounding set can ever be used again (no_new_privs
        // below stops file capabilities), and its groups are its user's.
        let (held, _, _) = sys::capget().map_err(fail(DropStep::Capget))?;
        let can_shrink_bounding = held & (1 << CAP_SETPCAP) != 0;
        let can_set_groups = held & (1 << CAP_SETGID) != 0 && !self.groups_locked;
        // The bounding set can only shrink while we still hold CAP_SETPCAP, i.e. before setuid.
        if can_shrink_bounding {
            shrink_bounding_set(self.keep_caps, last_cap)?;
        }
        clear_ambient()?;
        // Keep permitted capabilities across setuid so `cap = ...` survives the uid change.
        set_keepcaps(true)?;
        if can_set_groups || !self.groups.is_empty() {
            sys::setgroups(&self.groups).map_err(fail(DropStep::Setgroups(self.groups.len())))?;
        }
        if let Some(gid) = self.gid {
            sys::setresgid(gid).map_err(fail(DropStep::Setresgid(gid)))?;
        }
        if let Some(uid) = self.uid {
            sys::setresuid(uid).map_err(fail(DropStep::Setresuid(uid)))?;
        }
        let keep = self.keep_caps;
        sys::capset(keep.0, keep.0, keep.0).map_err(fail(DropStep::Capset(keep)))?;
        for cap in (0..=last_cap).filter(|&cap| keep.contains(cap)) {
            let raise = libc::PR_CAP_AMBIENT_RAISE as u64;
            sys::prctl(libc::PR_CAP_AMBIENT, raise, u64::from(cap))
                .map_err(fail(DropStep::AmbientRaise(cap)))?;
        }
        set_keepcaps(false)?;
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(fail(DropStep::NoNewPrivs))?;
        self.verify(last_cap, can_shrink_bounding)
    }

    /// Never infer the result of a drop: read it back (bubblewrap CVE-2020-5291), and name
    /// whatever is left.
    fn verify(&self, last_cap: u32, bounding_shrunk: bool) -> Result<(), DropFailure> {
        let (uids, gids) = sys::getres_ids();
        let mut leftover = Leftover {
            uids: self.uid.and_then(|uid| Ids::unless_all(uid, uids)),
            gids: self.gid.and_then(|gid| Ids::unless_all(gid, gids)),
            ..Leftover::default()
        };
        let (effective, permitted, _) = match sys::capget() {
            Ok(caps) => caps,
            // Ids left say more than a failed capget.
            Err(_) if !leftover.is_empty() => return left(leftover),
            Err(e) => return Err(fail(DropStep::Capget)(e)),
        };
        let keep = self.keep_caps.0;
        leftover.effective = CapSet(effective & !keep);
        leftover.permitted = CapSet(permitted & !keep);
        if bounding_shrunk {
            leftover.bounding = bounding_set(last_cap, self.keep_caps);
        }
        left(leftover)
    }
}

/// The unprivileged emperor: become `uid`/`gid` keeping exactly `keep` (setuid,setgid for
/// tyrant mode) as effective and permitted capabilities — never inheritable or ambient, so
/// no child inherits them — and verify it. Call while single-threaded.
pub fn become_unprivileged(
    uid: u32,
    gid: u32,
    keep: CapSet,
    last_cap: u32,
) -> Result<(), DropFailure> {
    shrink_bounding_set(keep, last_cap)?;
    clear_ambient()?;
    set_keepcaps(true)?;
    sys::setgroups(&[]).map_err(fail(DropStep::Setgroups(0)))?;
    sys::setresgid(gid).map_err(fail(DropStep::Setresgid(gid)))?;
    sys::setresuid(uid).map_err(fail(DropStep::Setresuid(uid)))?;
    sys::capset(keep.0, keep.0, 0).map_err(fail(DropStep::Capset(keep)))?;
    set_keepcaps(false)?;
    let (uids, gids) = sys::getres_ids();
    let (effective, permitted, inheritable) = sys::capget().map_err(fail(DropStep::Capget))?;
    left(Leftover {
        uids: Ids::unless_all(uid, uids),
        gids: Ids::unless_all(gid, gids),
        effective: CapSet(effective & !keep.0),
        permitted: CapSet(permitted & !keep.0),
        inheritable: CapSet(inheritable),
        bounding: CapSet::EMPTY,
        missing: CapSet(keep.0 & !(effective & permitted)),
    })
}

/// Drop every capability but `keep` from the bounding set (needs CAP_SETPCAP).
fn shrink_bounding_set(keep: CapSet, last_cap: u32) -> Result<(), DropFailure> {
    for cap in (0..=last_cap).filter(|&c| !keep.contains(c)) {
        match sys::prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0) {
            // EINVAL: a capability this kernel does not know.
            Ok(_) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(fail(DropStep::BoundingDrop(cap))(e)),
        }
    }
    Ok(())
}

/// The capabilities but `keep` still in the bounding set.
pub(crate) fn bounding_set(last_cap: u32, keep: CapSet) -> CapSet {
    (0..=last_cap)
        .filter(|&cap| !keep.contains(cap))
        .filter(|&cap| sys::prctl(libc::PR_CAPBSET_READ, u64::from(cap), 0) == Ok(1))
        .fold(CapSet::EMPTY, CapSet::with)
}

fn clear_ambient() -> Result<(), DropFailure> {
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    )
    .map(drop)
    .map_err(fail(DropStep::AmbientClear))
}

fn set_keepcaps(on: bool) -> Result<(), DropFailure> {
    sys::prctl(libc::PR_SET_KEEPCAPS, u64::from(on), 0)
        .map(drop)
        .map_err(fail(DropStep::KeepCaps(on)))
}

impl std::fmt::Display for DropFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.errno)
    }
}

#[cfg(test)]
mod tests;
