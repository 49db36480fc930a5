//! The privilege drop a payload (or an exec-as-user hook) applies to itself between clone and
//! execve: rlimits, bounding set, groups, gid, uid, capabilities, no_new_privs, then a check
//! that nothing is left. Prepared as plain values; applied with raw syscalls only.

use crate::caps::CapSet;
use crate::sys;
use nix::errno::Errno;

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
    pub step: &'static str,
    pub errno: Errno,
}

fn fail(step: &'static str) -> impl Fn(Errno) -> DropFailure {
    move |errno| DropFailure { step, errno }
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
            let (_, current_hard) = sys::getrlimit(limit.resource).map_err(fail("getrlimit"))?;
            let hard = limit.hard.min(current_hard);
            sys::setrlimit(limit.resource, limit.soft.min(hard), hard)
                .map_err(fail("setrlimit"))?;
        }
        // What we may change depends on what we hold: a runtime started by an ordinary user
        // has no capability, nothing in its bounding set can ever be used again (no_new_privs
        // below stops file capabilities), and its groups are its user's.
        let (held, _, _) = sys::capget().map_err(fail("capget"))?;
        let can_shrink_bounding = held & (1 << CAP_SETPCAP) != 0;
        let can_set_groups = held & (1 << CAP_SETGID) != 0 && !self.groups_locked;
        // The bounding set can only shrink while we still hold CAP_SETPCAP, i.e. before setuid.
        if can_shrink_bounding {
            shrink_bounding_set(self.keep_caps, last_cap)?;
        }
        clear_ambient()?;
        // Keep permitted capabilities across setuid so `cap = ...` survives the uid change.
        sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
        if can_set_groups || !self.groups.is_empty() {
            sys::setgroups(&self.groups).map_err(fail("setgroups"))?;
        }
        if let Some(gid) = self.gid {
            sys::setresgid(gid).map_err(fail("setresgid"))?;
        }
        if let Some(uid) = self.uid {
            sys::setresuid(uid).map_err(fail("setresuid"))?;
        }
        let keep = self.keep_caps.0;
        sys::capset(keep, keep, keep).map_err(fail("capset"))?;
        for cap in 0..=last_cap {
            if self.keep_caps.contains(cap) {
                sys::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as u64,
                    u64::from(cap),
                )
                .map_err(fail("prctl(PR_CAP_AMBIENT_RAISE)"))?;
            }
        }
        sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(fail("prctl(PR_SET_NO_NEW_PRIVS)"))?;
        self.verify(last_cap, can_shrink_bounding)
    }

    /// Never infer the result of a drop: read it back (bubblewrap CVE-2020-5291).
    fn verify(&self, last_cap: u32, bounding_shrunk: bool) -> Result<(), DropFailure> {
        let ((ru, eu, su), (rg, eg, sg)) = sys::getres_ids();
        let leftover = Err(DropFailure {
            step: "verify the drop",
            errno: Errno::EPERM,
        });
        if let Some(uid) = self.uid {
            if (ru, eu, su) != (uid, uid, uid) {
                return leftover;
            }
        }
        if let Some(gid) = self.gid {
            if (rg, eg, sg) != (gid, gid, gid) {
                return leftover;
            }
        }
        let (effective, permitted, _) = sys::capget().map_err(fail("capget"))?;
        if effective & !self.keep_caps.0 != 0 || permitted & !self.keep_caps.0 != 0 {
            return leftover;
        }
        for cap in (0..=last_cap).filter(|_| bounding_shrunk) {
            if !self.keep_caps.contains(cap)
                && sys::prctl(libc::PR_CAPBSET_READ, u64::from(cap), 0) == Ok(1)
            {
                return leftover;
            }
        }
        Ok(())
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
    sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
    sys::setgroups(&[]).map_err(fail("setgroups"))?;
    sys::setresgid(gid).map_err(fail("setresgid"))?;
    sys::setresuid(uid).map_err(fail("setresuid"))?;
    sys::capset(keep.0, keep.0, 0).map_err(fail("capset"))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
    let ((ru, eu, su), (rg, eg, sg)) = sys::getres_ids();
    let (effective, permitted, inheritable) = sys::capget().map_err(fail("capget"))?;
    if (ru, eu, su) != (uid, uid, uid)
        || (rg, eg, sg) != (gid, gid, gid)
        || effective != keep.0
        || permitted != keep.0
        || inheritable != 0
    {
        return Err(DropFailure {
            step: "verify the drop",
            errno: Errno::EPERM,
        });
    }
    Ok(())
}

/// Drop every capability but `keep` from the bounding set (needs CAP_SETPCAP).
fn shrink_bounding_set(keep: CapSet, last_cap: u32) -> Result<(), DropFailure> {
    for cap in (0..=last_cap).filter(|&c| !keep.contains(c)) {
        match sys::prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0) {
            // EINVAL: a capability this kernel does not know.
            Ok(_) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(fail("prctl(PR_CAPBSET_DROP)")(e)),
        }
    }
    Ok(())
}

fn clear_ambient() -> Result<(), DropFailure> {
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    )
    .map(drop)
    .map_err(fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"))
}

impl std::fmt::Display for DropFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.errno)
    }
}
