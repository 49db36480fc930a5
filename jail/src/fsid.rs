//! Acting on the filesystem as someone else, on this thread only: the emperor (root, or an
//! unprivileged emperor holding CAP_SETUID/CAP_SETGID) reads a tenant's config and binds a
//! tenant's UNIX socket with the tenant's filesystem identity, so the kernel checks every path
//! as it would for the tenant and a new socket file belongs to the tenant.
//!
//! fsuid, fsgid and the supplementary groups are per-thread kernel credentials; the raw
//! syscalls used here (not glibc's wrappers, which broadcast to every thread) change only the
//! calling thread, so the emperor's other threads keep their identity. Moving the fsuid away
//! from 0 also clears CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER and the other
//! filesystem capabilities from the effective set; moving it back restores them.

use crate::error::SysError;
use crate::sys;
use nix::errno::Errno;

/// Run `act` with filesystem uid `uid`, gid `gid` and no supplementary groups on this thread,
/// then restore the thread's identity. An identity that cannot be restored aborts the process:
/// carrying on with a tenant's or a half-restored identity is worse than stopping.
pub fn as_fs_identity<T>(uid: u32, gid: u32, act: impl FnOnce() -> T) -> Result<T, SysError> {
    let groups = nix::unistd::getgroups().map_err(|e| SysError::new("getgroups", e))?;
    let groups: Vec<libc::gid_t> = groups.into_iter().map(|g| g.as_raw()).collect();
    let (old_uid, old_gid) = (current_fsuid(), current_fsgid());
    sys::setgroups(&[]).map_err(|e| SysError::new("setgroups", e))?;
    sys::setfsgid(gid);
    sys::setfsuid(uid);
    if current_fsgid() != gid || current_fsuid() != uid {
        restore(old_uid, old_gid, &groups);
        return Err(SysError::new("setfsuid/setfsgid", Errno::EPERM));
    }
    let result = act();
    restore(old_uid, old_gid, &groups);
    Ok(result)
}

/// The thread's fsuid: setfsuid with an invalid id changes nothing and returns the current one.
fn current_fsuid() -> u32 {
    sys::setfsuid(u32::MAX)
}

fn current_fsgid() -> u32 {
    sys::setfsgid(u32::MAX)
}

fn restore(uid: u32, gid: u32, groups: &[libc::gid_t]) {
    sys::setfsuid(uid);
    sys::setfsgid(gid);
    let groups_back = sys::setgroups(groups).is_ok();
    if !groups_back || current_fsuid() != uid || current_fsgid() != gid {
        eprintln!("emperor: cannot restore the thread's filesystem identity: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_only_root_may_read_is_unreadable_as_another_uid_and_readable_after() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("jail-fsid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "x").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        // Control: root reads it.
        assert!(std::fs::read(&secret).is_ok());
        let as_tenant = as_fs_identity(20001, 20001, || std::fs::read(&secret)).unwrap();
        assert_eq!(
            as_tenant.unwrap_err().kind(),
            std::io::ErrorKind::PermissionDenied
        );
        // Nor may the tenant create a file in root's directory.
        let made = dir.join("made");
        as_fs_identity(20001, 20001, || std::fs::write(&made, "y"))
            .unwrap()
            .unwrap_err();
        assert!(std::fs::read(&secret).is_ok(), "root again afterwards");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
