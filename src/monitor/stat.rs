//! Which files count as configs, and what they looked like last time (follow vs nofollow).

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::warn;

/// What a config file looked like when last checked; any difference is a Change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// What a file with a config name turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Look {
    Config(FileState),
    Missing,
    /// Not a config: why, in a few words ("a directory", "a symlink loop").
    Skipped(String),
}

/// What `path` is. Follow (default): stat, must be a regular file, the target's mtime and
/// owner. Nofollow: lstat, a regular file or any symlink (even dangling), the link's own
/// mtime and owner.
pub(crate) fn look_at(path: &Path, nofollow: bool) -> Look {
    let meta = if nofollow {
        std::fs::symlink_metadata(path)
    } else {
        std::fs::metadata(path)
    };
    match meta {
        Ok(meta) if accepted(&meta, nofollow) => Look::Config(FileState::from(&meta)),
        Ok(meta) => Look::Skipped(kind_of(&meta).to_owned()),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            // stat follows: a link whose target is missing is there, and skipped.
            match std::fs::symlink_metadata(path) {
                Ok(_) => Look::Skipped("a dangling symlink".to_owned()),
                Err(_) => Look::Missing,
            }
        }
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            Look::Skipped("a symlink loop".to_owned())
        }
        Err(err) => Look::Skipped(format!("stat: {err}")),
    }
}

fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// The files with a config name that were skipped, and why: each is warned about once, and
/// again only if it changes kind or goes away and comes back. Without it a tenant's
/// `x.ini` directory was skipped silently, and its owner never learnt why nothing ran.
#[derive(Debug, Default)]
pub(crate) struct SkippedFiles {
    warned: HashMap<PathBuf, String>,
}

impl SkippedFiles {
    /// The state of `path` if it is a config file, else None (see [`look_at`]); a skipped
    /// file is warned about once.
    pub fn stat_config(&mut self, path: &Path, nofollow: bool) -> Option<FileState> {
        match look_at(path, nofollow) {
            Look::Config(state) => {
                self.warned.remove(path);
                Some(state)
            }
            Look::Missing => {
                self.warned.remove(path);
                None
            }
            Look::Skipped(why) => {
                if self.warned.get(path) != Some(&why) {
                    warn!("{}: not a regular file ({why}): skipped", path.display());
                    self.warned.insert(path.to_path_buf(), why);
                }
                None
            }
        }
    }

    /// The file went away: warn again if it comes back as something else than a config.
    pub fn forget(&mut self, path: &Path) {
        self.warned.remove(path);
    }

    /// After a full listing: forget what it no longer holds.
    pub fn keep_only(&mut self, listed: &std::collections::HashSet<PathBuf>) {
        self.warned.retain(|path, _| listed.contains(path));
    }
}

fn accepted(meta: &Metadata, nofollow: bool) -> bool {
    meta.is_file() || (nofollow && meta.file_type().is_symlink())
}

/// A symlink, a new hard link, a FIFO, socket or device is complete when created: no
/// IN_CLOSE_WRITE will follow.
pub(crate) fn complete_on_create(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => !meta.is_file() || meta.nlink() > 1,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn stat_config(path: &Path, nofollow: bool) -> Option<FileState> {
        match look_at(path, nofollow) {
            Look::Config(state) => Some(state),
            Look::Missing | Look::Skipped(_) => None,
        }
    }

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

    #[test]
    fn a_skipped_file_says_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("x.ini");
        std::fs::create_dir(&sub).unwrap();
        let fifo = dir.path().join("y.ini");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let looping = dir.path().join("z.ini");
        symlink(&looping, &looping).unwrap();
        let dangling = dir.path().join("d.ini");
        symlink(dir.path().join("missing"), &dangling).unwrap();

        let skipped = |path: &Path| match look_at(path, false) {
            Look::Skipped(why) => why,
            other => panic!("{}: {other:?}", path.display()),
        };
        assert_eq!(skipped(&sub), "a directory");
        assert_eq!(skipped(&fifo), "a FIFO");
        assert_eq!(skipped(&looping), "a symlink loop");
        assert_eq!(skipped(&dangling), "a dangling symlink");
        assert_eq!(skipped(Path::new("/dev/null")), "a character device");
        assert_eq!(look_at(&dir.path().join("none.ini"), false), Look::Missing);
    }
}
