//! User namespaces from the parent's side: the emperor writes a held child's uid and gid maps
//! before letting it go, so the vassal runtime never runs without them.

use crate::error::SysError;
use nix::unistd::Pid;
use std::fmt;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};

/// One line of /proc/PID/uid_map or gid_map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

/// The maps of one user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdMaps {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMaps {
    /// Whether `inside` is a mapped uid (for checking a vassal's in-jail `uid`).
    pub fn maps_uid(&self, inside: u32) -> bool {
        self.uids
            .iter()
            .any(|r| inside >= r.inside && inside - r.inside < r.count)
    }

    pub fn maps_gid(&self, inside: u32) -> bool {
        self.gids
            .iter()
            .any(|r| inside >= r.inside && inside - r.inside < r.count)
    }
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges.iter().map(|r| format!("{r}\n")).collect()
}

/// Write both maps of `pid`'s user namespace. Each file takes exactly one write(2) and can be
/// written once. A writer with CAP_SETUID / CAP_SETGID over the parent namespace (root, or the
/// unprivileged emperor, which keeps exactly these) may map any ids, so /proc/PID/setgroups
/// stays "allow" and the child sets its groups to none. A writer without them (an emperor run
/// by an ordinary user) may map only its own uid and gid, and the kernel takes the gid map
/// only once setgroups is denied in the namespace (user_namespaces(7)): the child keeps the
/// writer's own groups, which it had anyway.
pub fn write_maps_from_parent(pid: Pid, maps: &IdMaps) -> Result<(), SysError> {
    write_once(pid, "uid_map", &map_text(&maps.uids))?;
    if setgroups_denied_by_us() {
        write_once(pid, "setgroups", "deny")?;
    }
    write_once(pid, "gid_map", &map_text(&maps.gids))
}

/// Whether this process writes its children's maps without CAP_SETGID, and so denies
/// setgroups(2) in their user namespaces (see [`write_maps_from_parent`]).
pub fn setgroups_denied_by_us() -> bool {
    !caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SETGID).unwrap_or(false)
}

/// Whether setgroups(2) is denied in this process's user namespace (/proc/self/setgroups says
/// "deny": an ancestor namespace was mapped by a writer without CAP_SETGID).
pub fn setgroups_locked_here() -> bool {
    own_namespace().is_ok_and(|own| own.setgroups_denied)
}

/// What this process's user namespace says of itself: /proc/self/setgroups, uid_map and
/// gid_map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnNamespace {
    pub setgroups_denied: bool,
    /// `inside outside count` lines.
    pub uid_map: String,
    pub gid_map: String,
}

impl OwnNamespace {
    /// `uid` of this namespace as the parent namespace sees it; None when unmapped.
    pub fn outside_uid(&self, uid: u32) -> Option<u32> {
        outside(uid, &self.uid_map)
    }

    /// `gid` of this namespace as the parent namespace sees it; None when unmapped.
    pub fn outside_gid(&self, gid: u32) -> Option<u32> {
        outside(gid, &self.gid_map)
    }
}

/// `id` through a uid_map or gid_map text (`INSIDE OUTSIDE COUNT` lines).
fn outside(id: u32, map: &str) -> Option<u32> {
    let id = u64::from(id);
    map.lines()
        .find_map(|line| {
            let n: Vec<u64> = line
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            let &[inside, outside, count] = n.as_slice() else {
                return None;
            };
            (id >= inside && id - inside < count).then(|| outside + (id - inside))
        })
        .and_then(|id| u32::try_from(id).ok())
}

/// [`OwnNamespace`], once read in a mapped namespace: each map is written once, and
/// setgroups only before the gid map, so it cannot change. Kept because every runtime asks at
/// each payload start, and in a jail with a fresh procfs each read instantiates /proc/self's
/// entries anew, behind path walks that grow with the host's mount namespaces. A copy of this
/// process ([`crate::launch::Launch::fork`]) keeps it unless cloned into a new user namespace;
/// [`crate::ns::unshare`] into one forgets it.
static OWN_NAMESPACE: Mutex<Option<OwnNamespace>> = Mutex::new(None);

fn own_namespace_kept() -> MutexGuard<'static, Option<OwnNamespace>> {
    // Nothing panics while holding it; a poisoned value is still a whole one.
    OWN_NAMESPACE.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's user namespace, read once it is mapped (see [`OWN_NAMESPACE`]).
pub fn own_namespace() -> Result<OwnNamespace, SysError> {
    // Held only to copy in or out, never across the reads: a test forks while other threads
    // run, and a lock held at the fork stays held in the child.
    if let Some(own) = own_namespace_kept().as_ref() {
        return Ok(own.clone());
    }
    let read = |file: &str| {
        let path = format!("/proc/self/{file}");
        std::fs::read_to_string(&path).map_err(|e| {
            let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
            SysError::with_path("read", &path, errno)
        })
    };
    // setgroups first: once the gid map is seen written, the setgroups read before it is
    // final too (it can be denied only before that write).
    let setgroups = read("setgroups")?;
    let own = OwnNamespace {
        setgroups_denied: setgroups.trim() == "deny",
        uid_map: read("uid_map")?,
        gid_map: read("gid_map")?,
    };
    let mapped = !own.uid_map.trim().is_empty() && !own.gid_map.trim().is_empty();
    if mapped {
        *own_namespace_kept() = Some(own.clone());
    }
    Ok(own)
}

/// This process is in another user namespace than the one it read (a new one, entered by a
/// clone or an unshare).
pub(crate) fn forget_own_namespace() {
    *own_namespace_kept() = None;
}

fn write_once(pid: Pid, file: &str, text: &str) -> Result<(), SysError> {
    let path = format!("/proc/{pid}/{file}");
    let errno =
        |e: std::io::Error| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| SysError::with_path("open", &path, errno(e)))?;
    f.write_all(text.as_bytes())
        .map_err(|e| SysError::with_path("write", &path, errno(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{expect_eq, in_forked_child};

    #[test]
    fn an_id_goes_through_the_line_of_the_map_that_holds_it() {
        let map = "         0     100000      65536\n     65536       1000          1\n";
        assert_eq!(outside(0, map), Some(100_000));
        assert_eq!(outside(1000, map), Some(101_000));
        assert_eq!(outside(65536, map), Some(1000));
        assert_eq!(outside(70_000, map), None, "unmapped");
        assert_eq!(outside(0, ""), None, "no map at all");
    }

    /// Kept in the namespace it was read in, forgotten in a new one (unmapped there: read
    /// again at every ask until its maps are written).
    #[test]
    fn a_namespace_read_is_kept_until_this_process_enters_another() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: unshare(CLONE_NEWUSER) as a test here needs root");
            return;
        }
        in_forked_child(|| {
            let host = own_namespace().map_err(|e| e.to_string())?;
            expect_eq("kept", own_namespace_kept().clone(), Some(host))?;
            crate::ns::unshare(crate::ns::Namespaces::USER).map_err(|e| e.to_string())?;
            let new = own_namespace().map_err(|e| e.to_string())?;
            expect_eq("a new namespace's own map", new.uid_map.as_str(), "")?;
            expect_eq("setgroups", new.setgroups_denied, false)?;
            expect_eq("kept while unmapped", own_namespace_kept().clone(), None)
        });
    }
}
