//! Mounts inside a vassal's mount namespace, each one small step in the order the kernel needs
//! them. Targets are opened without following symlinks (openat2 RESOLVE_NO_SYMLINKS) and
//! mounted through their fd, so a symlink planted in a tenant's tree makes the vassal fail to
//! start instead of redirecting a mount (runc CVE-2021-30465 class).

use crate::error::SysError;
use crate::sys;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

fn cpath(path: &Path) -> Result<CString, SysError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SysError::with_path("path", path, nix::errno::Errno::EINVAL))
}

/// Nothing we mount may propagate back to the host (and host mounts still reach us).
pub fn make_mounts_private() -> Result<(), SysError> {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_SLAVE, NONE)
        .map_err(|e| SysError::with_path("mount(MS_REC|MS_SLAVE)", "/", e))
}

/// Open a mount target as O_PATH without following any symlink on the way.
fn open_target(target: &Path) -> Result<OwnedFd, SysError> {
    let flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    sys::openat2(libc::AT_FDCWD, &cpath(target)?, flags, RESOLVE_NO_SYMLINKS)
        .map_err(|e| SysError::with_path("openat2(RESOLVE_NO_SYMLINKS)", target, e))
}

const RESOLVE_NO_SYMLINKS: u64 = 0x04;

/// The magic link through which a mount reaches exactly the inode we opened.
fn via_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Flags of the mount a path is on that an unprivileged remount must keep (they are locked
/// when the mount came from a more privileged namespace).
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(stat) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if stat.flags().contains(fs) {
            flags |= ms;
        }
    }
    flags
}

/// Bind `source` onto `target`; read-only and nosuid,nodev (tenant trees) by remount.
pub fn bind(
    source: &Path,
    target: &Path,
    read_only: bool,
    nosuid_nodev: bool,
) -> Result<(), SysError> {
    let target_fd = open_target(target)?;
    let at = via_fd(&target_fd);
    mount(
        Some(source),
        &at,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| {
        SysError::with_path(
            "mount(MS_BIND)",
            format!("{} -> {}", source.display(), target.display()),
            e,
        )
    })?;
    let mut extra = MsFlags::empty();
    if read_only {
        extra |= MsFlags::MS_RDONLY;
    }
    if nosuid_nodev {
        extra |= MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    }
    if extra.is_empty() {
        return Ok(());
    }
    // Reopen: the fd still names the inode under the new mount's root.
    let mounted = open_target(target)?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra | locked_flags(target);
    mount(NONE, &via_fd(&mounted), NONE, flags, NONE)
        .map_err(|e| SysError::with_path("mount(MS_REMOUNT|MS_BIND)", target, e))
}

/// A fresh tmpfs, nosuid and nodev, optionally size-limited (bytes).
pub fn tmpfs(target: &Path, size: Option<u64>) -> Result<(), SysError> {
    let target_fd = open_target(target)?;
    let data = match size {
        Some(bytes) => format!("mode=0755,size={bytes}"),
        None => "mode=0755".to_string(),
    };
    mount(
        Some("tmpfs"),
        &via_fd(&target_fd),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| SysError::with_path("mount(tmpfs)", target, e))
}

/// A procfs for the current pid namespace, nosuid,nodev,noexec.
pub fn mount_proc(target: &Path) -> Result<(), SysError> {
    let target_fd = open_target(target)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), &via_fd(&target_fd), Some("proc"), flags, NONE)
        .map_err(|e| SysError::with_path("mount(proc)", target, e))
}

/// Make `new_root` the root: bind it over itself (pivot_root needs a mount point), pivot
/// with the old root stacked on the same directory, then detach the old root, so nothing of
/// the host tree stays reachable (no /oldroot directory left behind).
pub fn pivot_root(new_root: &Path) -> Result<(), SysError> {
    let fd = open_target(new_root)?;
    mount(
        Some(&via_fd(&fd)),
        &via_fd(&fd),
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| SysError::with_path("mount(MS_BIND) of the new root over itself", new_root, e))?;
    drop(fd);
    let fd = open_target(new_root)?;
    nix::unistd::fchdir(fd.as_raw_fd()).map_err(|e| SysError::with_path("fchdir", new_root, e))?;
    nix::unistd::pivot_root(".", ".")
        .map_err(|e| SysError::with_path("pivot_root", new_root, e))?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| SysError::with_path("umount2(MNT_DETACH) of the old root", "/", e))?;
    nix::unistd::chdir("/").map_err(|e| SysError::with_path("chdir", "/", e))?;
    // CVE-2024-21626: make sure we really stand inside the new root.
    let cwd = std::env::current_dir()
        .map_err(|_| SysError::with_path("getcwd", "/", nix::errno::Errno::ENOENT))?;
    if cwd != Path::new("/") {
        return Err(SysError::with_path(
            "getcwd after pivot_root",
            cwd,
            nix::errno::Errno::EXDEV,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;
    use crate::testing::{expect_eq, in_forked_child, private_mount_namespace, root_or_skip};
    use nix::errno::Errno;

    /// A tenant plants a symlink where a mount target should be, aiming at a directory of the
    /// host: the bind fails with ELOOP and nothing is mounted there. The control, a real
    /// directory, is mounted.
    #[test]
    fn a_bind_mount_refuses_a_planted_symlink() {
        if !root_or_skip("a_bind_mount_refuses_a_planted_symlink") {
            return;
        }
        let tmp = TempDir::new("planted-symlink");
        let (source, real, host) = (tmp.dir("source"), tmp.dir("real"), tmp.dir("host/inner"));
        std::fs::write(source.join("marker"), "").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&host, &link).unwrap();
        let link_dir = tmp.path().join("link-dir");
        std::os::unix::fs::symlink(host.parent().unwrap(), &link_dir).unwrap();
        in_forked_child(|| {
            private_mount_namespace()?;
            bind(&source, &real, false, true).map_err(|e| e.to_string())?;
            expect_eq("the control is mounted", real.join("marker").exists(), true)?;
            for target in [link.clone(), link_dir.join("inner")] {
                let refused = bind(&source, &target, false, true)
                    .err()
                    .ok_or(format!("{} was mounted", target.display()))?;
                expect_eq("the call", refused.call, "openat2(RESOLVE_NO_SYMLINKS)")?;
                expect_eq("the errno", refused.errno, Errno::ELOOP)?;
                expect_eq("mounted through it", host.join("marker").exists(), false)?;
            }
            Ok(())
        });
    }
}
