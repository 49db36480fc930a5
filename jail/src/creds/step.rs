//! The steps of a privilege drop as values, so a failure names the call and its argument
//! (`setresuid(1000): EPERM`) and a failed check names what was left. Plain `Copy` data: the
//! child of a clone builds them without allocating, and a launch reports them to its parent.

use crate::caps::CapSet;
use std::fmt;

/// One call of the drop, with its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropStep {
    Getrlimit(u32),
    Setrlimit {
        resource: u32,
        soft: u64,
        hard: u64,
    },
    Capget,
    /// prctl(PR_CAPBSET_DROP) of one capability.
    BoundingDrop(u32),
    AmbientClear,
    /// prctl(PR_SET_KEEPCAPS) on or off.
    KeepCaps(bool),
    /// setgroups(2) with this many groups.
    Setgroups(usize),
    Setresgid(u32),
    Setresuid(u32),
    /// capset(2): these as effective and permitted.
    Capset(CapSet),
    AmbientRaise(u32),
    NoNewPrivs,
    /// The check after the drop found privileges left.
    Verify(Leftover),
}

/// What the check after a drop found that was not asked for: ids that are not the asked ones,
/// capabilities beyond the kept ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leftover {
    pub uids: Option<Ids>,
    pub gids: Option<Ids>,
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
    /// Capabilities still in the bounding set.
    pub bounding: CapSet,
    /// Capabilities asked for that are not held (an unprivileged emperor's setuid,setgid).
    pub missing: CapSet,
}

/// Real, effective and saved ids as getresuid(2)/getresgid(2) read them, and the one asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub asked: u32,
    pub held: [u32; 3],
}

impl Ids {
    /// `Some` when any of `held` is not `asked`.
    pub fn unless_all(asked: u32, held: (u32, u32, u32)) -> Option<Ids> {
        let held = [held.0, held.1, held.2];
        (held != [asked; 3]).then_some(Ids { asked, held })
    }
}

impl Leftover {
    pub fn is_empty(&self) -> bool {
        *self == Leftover::default()
    }
}

/// RLIMIT_* names in kernel order (the generic numbering x86_64 and aarch64 share).
const RLIMIT_NAMES: [&str; 16] = [
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
];

/// A resource limit's number as its name: `RLIMIT_NOFILE`.
pub struct Resource(pub u32);

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RLIMIT_NAMES.get(self.0 as usize) {
            Some(name) => write!(f, "RLIMIT_{name}"),
            None => write!(f, "resource {}", self.0),
        }
    }
}

/// One capability's number as its name: `net_bind_service`.
fn cap(number: u32) -> CapSet {
    CapSet::EMPTY.with(number.min(63))
}

impl fmt::Display for DropStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DropStep::Getrlimit(resource) => write!(f, "getrlimit({})", Resource(resource)),
            DropStep::Setrlimit {
                resource,
                soft,
                hard,
            } => write!(f, "setrlimit({}, {soft}, {hard})", Resource(resource)),
            DropStep::Capget => f.write_str("capget()"),
            DropStep::BoundingDrop(c) => write!(f, "prctl(PR_CAPBSET_DROP, {})", cap(c)),
            DropStep::AmbientClear => f.write_str("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"),
            DropStep::KeepCaps(on) => write!(f, "prctl(PR_SET_KEEPCAPS, {})", u8::from(on)),
            DropStep::Setgroups(0) => f.write_str("setgroups([])"),
            DropStep::Setgroups(n) => write!(f, "setgroups({n} groups)"),
            DropStep::Setresgid(gid) => write!(f, "setresgid({gid})"),
            DropStep::Setresuid(uid) => write!(f, "setresuid({uid})"),
            DropStep::Capset(kept) => write!(f, "capset({kept})"),
            DropStep::AmbientRaise(c) => write!(f, "prctl(PR_CAP_AMBIENT_RAISE, {})", cap(c)),
            DropStep::NoNewPrivs => f.write_str("prctl(PR_SET_NO_NEW_PRIVS, 1)"),
            DropStep::Verify(left) => write!(f, "verify the drop: {left}"),
        }
    }
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (kind, ids) in [("uids", self.uids), ("gids", self.gids)] {
            if let Some(Ids {
                asked,
                held: [r, e, s],
            }) = ids
            {
                parts.push(format!(
                    "{kind} {r},{e},{s} (real, effective, saved) where {asked} was asked"
                ));
            }
        }
        for (set, caps) in [
            ("effective", self.effective),
            ("permitted", self.permitted),
            ("inheritable", self.inheritable),
            ("bounding", self.bounding),
        ] {
            if !caps.is_empty() {
                parts.push(format!("{set} capabilities {caps} left"));
            }
        }
        if !self.missing.is_empty() {
            parts.push(format!("capabilities {} missing", self.missing));
        }
        if parts.is_empty() {
            f.write_str("nothing left")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}
