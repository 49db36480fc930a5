//! Whether inotify sees every change in a directory. On a filesystem of this machine it does:
//! every change goes through this kernel. On a network or cluster filesystem (NFS, SMB,
//! CephFS, FUSE, ...) a change made by another host reaches no watch here, and only a rescan
//! finds it. Unknown filesystems count as the latter.

use std::path::Path;

/// statfs f_type of the local filesystems (linux/magic.h).
const LOCAL: &[(u32, &str)] = &[
    (0xEF53, "ext2/3/4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlayfs"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
    (0xCA45_1A4E, "bcachefs"),
    (0x5265_4973, "reiserfs"),
    (0x3153_464A, "jfs"),
];

pub(crate) fn inotify_sees_every_change(dir: &Path) -> bool {
    match nix::sys::statfs::statfs(dir) {
        // f_type is a long holding a 32-bit magic number.
        Ok(fs) => {
            let magic = fs.filesystem_type().0 as u32;
            LOCAL.iter().any(|&(local, _)| local == magic)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tmpfs_is_local_and_procfs_is_not_known_to_be() {
        assert!(inotify_sees_every_change(Path::new("/dev/shm")));
        assert!(!inotify_sees_every_change(Path::new("/proc")));
        assert!(!inotify_sees_every_change(Path::new("/nonexistent")));
    }
}
