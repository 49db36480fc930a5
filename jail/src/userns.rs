//! User namespaces from the parent's side: the emperor writes a held child's uid and gid maps
//! before letting it go, so the vassal runtime never runs without them.

use crate::error::SysError;
use nix::unistd::Pid;
use std::fmt;
use std::io::Write;

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
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
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
