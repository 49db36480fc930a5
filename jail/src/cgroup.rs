//! cgroup v2 for vassals. Each tenant gets a slice under the emperor's cgroup root, and each
//! of its vassals a directory in that slice:
//!
//! ```text
//! ROOT/TENANT/                 the tenant's limits (set by the admin); all its vassals
//! ROOT/TENANT/NAME/            limits set by the admin (ceilings); controllers enabled
//! ROOT/TENANT/NAME/runtime/    the vassal runtime
//! ROOT/TENANT/NAME/payload/    the payload and everything it forks; its limit files belong
//!                              to the vassal's owner, who can only narrow what NAME allows
//! ```
//!
//! Limits of an ancestor always bind a descendant, so a tenant writing its payload's files can
//! lower, never raise, what the admin set.

use crate::error::{Errno, SysError};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// The emperor's own leaf under its cgroup root (vassal names never start with a dot).
pub const EMPEROR_LEAF: &str = ".emperor";
/// Controllers we set limits with.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// Files of the payload's cgroup its owner may write.
const OWNER_FILES: [&str; 6] = [
    "memory.max",
    "memory.high",
    "pids.max",
    "cpu.max",
    "cpu.weight",
    "cgroup.procs",
];

/// Limits for one cgroup; None leaves the kernel's default ("max").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_max: Option<u64>,
    pub pids_max: Option<u64>,
    /// `cpu.max`: "QUOTA PERIOD" in microseconds.
    pub cpu_max: Option<(u64, u64)>,
    pub cpu_weight: Option<u64>,
}

fn io_err(call: &'static str, path: &Path, e: std::io::Error) -> SysError {
    SysError::with_path(
        call,
        path,
        Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}

/// Whether `dir` is on a cgroup v2 filesystem.
pub fn is_cgroup2(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
}

fn write(path: &Path, value: &str) -> Result<(), SysError> {
    fs::write(path, value).map_err(|e| io_err("write", path, e))
}

/// The emperor's cgroup root: created if missing, with our controllers enabled for its
/// children (and in its parent, so it has them itself). `delegate_to` hands the root to the
/// uid an unprivileged emperor will drop to, so it can still create vassal cgroups.
pub fn prepare_root(root: &Path, delegate_to: Option<(u32, u32)>) -> Result<(), SysError> {
    if !root.exists() {
        fs::create_dir(root).map_err(|e| io_err("mkdir", root, e))?;
    }
    // The emperor lives in a leaf of its own root: moving a vassal into ROOT/NAME/runtime
    // needs write access to the cgroup.procs of the nearest cgroup holding both, which is
    // then ROOT, ours, and not whatever root-owned cgroup we were started in. First, for a
    // cgroup we were started in (delegated): a cgroup with processes of its own cannot give
    // its children controllers, so we and whatever we started there (helpers) move down.
    let leaf = root.join(EMPEROR_LEAF);
    if !leaf.exists() {
        fs::create_dir(&leaf).map_err(|e| io_err("mkdir", &leaf, e))?;
    }
    write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
    let procs = root.join("cgroup.procs");
    let others = fs::read_to_string(&procs).map_err(|e| io_err("read", &procs, e))?;
    for pid in others.lines().filter(|l| !l.is_empty()) {
        // One that exited meanwhile is gone from the list too.
        if let Err(e) = write(&leaf.join("cgroup.procs"), pid) {
            if e.errno != Errno::ESRCH {
                return Err(e);
            }
        }
    }
    // The parent is touched only when the root lacks a controller: a cgroup delegated to us
    // (systemd's Delegate=yes) has them already, and its parent is not ours.
    let has_all = fs::read_to_string(root.join("cgroup.controllers")).is_ok_and(|have| {
        CONTROLLERS
            .iter()
            .all(|c| have.split_whitespace().any(|h| h == *c))
    });
    if let Some(parent) = root.parent().filter(|_| !has_all) {
        enable_controllers(parent)?;
    }
    enable_controllers(root)?;
    if let Some((uid, gid)) = delegate_to {
        for path in [
            root.to_path_buf(),
            root.join("cgroup.procs"),
            root.join("cgroup.subtree_control"),
            root.join("cgroup.threads"),
        ] {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|e| io_err("chown", &path, e))?;
        }
    }
    Ok(())
}

fn enable_controllers(dir: &Path) -> Result<(), SysError> {
    let available = fs::read_to_string(dir.join("cgroup.controllers"))
        .map_err(|e| io_err("read", &dir.join("cgroup.controllers"), e))?;
    let wanted: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))
}

/// Write `limits` into a cgroup directory.
pub fn apply_limits(dir: &Path, limits: &Limits) -> Result<(), SysError> {
    if let Some(bytes) = limits.memory_max {
        write(&dir.join("memory.max"), &bytes.to_string())?;
    }
    if let Some(n) = limits.pids_max {
        write(&dir.join("pids.max"), &n.to_string())?;
    }
    if let Some((quota, period)) = limits.cpu_max {
        write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
    }
    if let Some(weight) = limits.cpu_weight {
        write(&dir.join("cpu.weight"), &weight.to_string())?;
    }
    Ok(())
}

/// Write `limits` into the cgroup directory `dir` names (the runtime holds its payload's
/// cgroup as an fd: after pivot_root no path reaches it).
pub fn apply_limits_at(dir: &OwnedFd, limits: &Limits) -> Result<(), SysError> {
    use std::os::fd::AsRawFd;
    let write_at = |file: &'static std::ffi::CStr, value: String| -> Result<(), SysError> {
        use std::io::Write;
        let name = file.to_string_lossy();
        let fd = crate::sys::openat(dir.as_raw_fd(), file, libc::O_WRONLY | libc::O_CLOEXEC)
            .map_err(|e| SysError::with_path("openat", name.as_ref(), e))?;
        let mut handle = fs::File::from(fd);
        handle
            .write_all(value.as_bytes())
            .map_err(|e| io_err("write", Path::new(name.as_ref()), e))
    };
    if let Some(bytes) = limits.memory_max {
        write_at(c"memory.max", bytes.to_string())?;
    }
    if let Some(n) = limits.pids_max {
        write_at(c"pids.max", n.to_string())?;
    }
    if let Some((quota, period)) = limits.cpu_max {
        write_at(c"cpu.max", format!("{quota} {period}"))?;
    }
    if let Some(weight) = limits.cpu_weight {
        write_at(c"cpu.weight", weight.to_string())?;
    }
    Ok(())
}

/// A tenant's slice: ROOT/NAME, created if missing, with our controllers enabled for its
/// vassals and the tenant's `limits` (set again each time: the admin may have changed them).
pub fn prepare_slice(root: &Path, name: &str, limits: &Limits) -> Result<PathBuf, SysError> {
    let slice = root.join(name);
    if !slice.exists() {
        fs::create_dir(&slice).map_err(|e| io_err("mkdir", &slice, e))?;
    }
    enable_controllers(&slice)?;
    apply_limits(&slice, limits)?;
    Ok(slice)
}

/// One vassal's cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VassalCgroup {
    pub dir: PathBuf,
}

impl VassalCgroup {
    /// Create (or reuse) ROOT/NAME with the admin's ceilings, and its two leaves; the payload
    /// leaf is handed to `owner` so the vassal can narrow its own limits.
    pub fn create(
        root: &Path,
        name: &str,
        ceilings: &Limits,
        owner: Option<(u32, u32)>,
    ) -> Result<Self, SysError> {
        let dir = root.join(name);
        for d in [dir.clone(), dir.join("runtime"), dir.join("payload")] {
            if !d.exists() {
                fs::create_dir(&d).map_err(|e| io_err("mkdir", &d, e))?;
            }
            if d == dir {
                enable_controllers(&dir)?;
                apply_limits(&dir, ceilings)?;
            }
        }
        if let Some((uid, gid)) = owner {
            let payload = dir.join("payload");
            let chown = |p: &Path| {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| io_err("chown", p, e))
            };
            chown(&payload)?;
            // Moving a process from runtime/ to payload/ (CLONE_INTO_CGROUP) needs write access
            // to the common ancestor's cgroup.procs. Its limit files stay the admin's.
            chown(&dir.join("cgroup.procs"))?;
            for file in OWNER_FILES {
                let path = payload.join(file);
                if path.exists() {
                    chown(&path)?;
                }
            }
        }
        Ok(VassalCgroup { dir })
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.join("runtime")
    }

    pub fn payload_dir(&self) -> PathBuf {
        self.dir.join("payload")
    }

    /// Kill every process left in the vassal's cgroups (cgroup.kill, Linux 5.14+).
    pub fn kill_all(&self) {
        for leaf in [self.payload_dir(), self.runtime_dir()] {
            let _ = fs::write(leaf.join("cgroup.kill"), "1");
        }
    }

    /// Remove the cgroups once they are empty, and its tenant's slice if it was the last;
    /// busy ones stay (and are reused).
    pub fn remove(&self) {
        for d in [self.payload_dir(), self.runtime_dir(), self.dir.clone()] {
            let _ = fs::remove_dir(&d);
        }
        if let Some(slice) = self.dir.parent() {
            let _ = fs::remove_dir(slice);
        }
    }
}

/// Open a cgroup directory for CLONE_INTO_CGROUP (which wants a real, not O_PATH, fd).
pub fn open_dir(dir: &Path) -> Result<OwnedFd, SysError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| io_err("open", dir, e))?;
    Ok(file.into())
}

/// A cgroup name from a vassal name: no slashes, no dots at the start.
pub fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_start_matches('.').to_string()
}
