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
/// written once; the writer needs CAP_SETUID / CAP_SETGID over the parent namespace (the
/// emperor keeps exactly these), so /proc/PID/setgroups can stay "allow" and the child can
/// set its groups to none.
pub fn write_maps_from_parent(pid: Pid, maps: &IdMaps) -> Result<(), SysError> {
    write_once(pid, "uid_map", &map_text(&maps.uids))?;
    write_once(pid, "gid_map", &map_text(&maps.gids))
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
