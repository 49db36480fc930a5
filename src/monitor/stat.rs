//! Which files count as configs, and what they looked like last time (follow vs nofollow).

use std::fs::Metadata;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::debug;

/// What a config file looked like when last checked; any difference is a Change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileState {
    /// Full nanosecond mtime: uWSGI's seconds missed a second write within the same second.
    pub mtime: SystemTime,
    pub owner: (u32, u32),
    /// (dev, ino): a file renamed over the config is a change even if its mtime is older.
    pub inode: (u64, u64),
}

impl From<&Metadata> for FileState {
    fn from(meta: &Metadata) -> Self {
        FileState {
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
            owner: (meta.uid(), meta.gid()),
            inode: (meta.dev(), meta.ino()),
        }
    }
}

/// The state of `path` if it is a config file, else None.
/// Follow (default): stat, must be a regular file, the target's mtime and owner.
/// Nofollow: lstat, a regular file or any symlink (even dangling), the link's own mtime and owner.
pub(crate) fn stat_config(path: &Path, nofollow: bool) -> Option<FileState> {
    let meta = if nofollow {
        std::fs::symlink_metadata(path)
    } else {
        std::fs::metadata(path)
    };
    match meta {
        Ok(meta) if accepted(&meta, nofollow) => Some(FileState::from(&meta)),
        Ok(_) => None,
        Err(err) => {
            if err.kind() != ErrorKind::NotFound {
                debug!(path = %path.display(), %err, "config file not usable");
            }
            None
        }
    }
}

fn accepted(meta: &Metadata, nofollow: bool) -> bool {
    meta.is_file() || (nofollow && meta.file_type().is_symlink())
}

/// A symlink or a new hard link is complete when created: no IN_CLOSE_WRITE will follow.
pub(crate) fn complete_on_create(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type().is_symlink() || (meta.is_file() && meta.nlink() > 1),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn follow_needs_a_regular_target_nofollow_takes_any_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.ini");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("l.ini");
        symlink(&file, &link).unwrap();
        let dangling = dir.path().join("d.ini");
        symlink(dir.path().join("missing"), &dangling).unwrap();
        let to_dir = dir.path().join("dir.ini");
        symlink(dir.path(), &to_dir).unwrap();

        assert!(stat_config(&file, false).is_some());
        assert_eq!(stat_config(&link, false), stat_config(&file, false));
        assert!(stat_config(&dangling, false).is_none());
        assert!(stat_config(&to_dir, false).is_none());
        assert!(stat_config(dir.path(), false).is_none());

        assert!(stat_config(&dangling, true).is_some());
        assert!(stat_config(&to_dir, true).is_some());
        assert_ne!(
            stat_config(&link, true).unwrap().inode,
            stat_config(&file, true).unwrap().inode
        );
        assert!(stat_config(dir.path(), true).is_none());
    }
}
