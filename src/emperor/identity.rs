//! Who a vassal runs as outside its jail: tyrant mode's owner checks, and the id maps of a
//! vassal's user namespace (its root = the owner, plus the owner's /etc/subuid range).

use jail::userns::{IdMaps, IdRange};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why tyrant mode refuses a config's owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("cannot stat: {0}")]
    Stat(String),
    #[error("owned by uid {uid} gid {gid}: tyrant mode refuses root (0)")]
    Root { uid: u32, gid: u32 },
    #[error(
        "owned by uid {uid} gid {gid}: below the lowest tenant id {min} (--emperor-tyrant-min-id)"
    )]
    System { uid: u32, gid: u32, min: u32 },
    #[error("a symlink owned by uid {link} pointing to a file owned by uid {target}: an identity cannot be borrowed")]
    Borrowed { link: u32, target: u32 },
    #[error("no uid and gid: tyrant mode needs the monitor's uid and gid fields")]
    Missing,
}

/// The tenant a config belongs to: the owner of the file itself (lstat: a symlink is its
/// creator's, and must point to a file of the same owner), never root or a system id.
pub fn tyrant_owner(path: &Path, min_id: u32) -> Result<(u32, u32), OwnerError> {
    let link = std::fs::symlink_metadata(path).map_err(|e| OwnerError::Stat(e.to_string()))?;
    if link.file_type().is_symlink() {
        let target = std::fs::metadata(path).map_err(|e| OwnerError::Stat(e.to_string()))?;
        if target.uid() != link.uid() {
            return Err(OwnerError::Borrowed {
                link: link.uid(),
                target: target.uid(),
            });
        }
    }
    checked_owner(link.uid(), link.gid(), min_id)
}

/// The tenant of a config that came from a store: the uid and gid it gave, under the same
/// rules as a file's owner.
pub fn tyrant_given_owner(
    owner: Option<(u32, u32)>,
    min_id: u32,
) -> Result<(u32, u32), OwnerError> {
    let (uid, gid) = owner.ok_or(OwnerError::Missing)?;
    checked_owner(uid, gid, min_id)
}

fn checked_owner(uid: u32, gid: u32, min_id: u32) -> Result<(u32, u32), OwnerError> {
    if uid == 0 || gid == 0 {
        return Err(OwnerError::Root { uid, gid });
    }
    if uid < min_id || gid < min_id {
        return Err(OwnerError::System {
            uid,
            gid,
            min: min_id,
        });
    }
    Ok((uid, gid))
}

/// The first `owner:start:count` line of a subuid/subgid file that names the owner by name
/// or by number.
pub fn subordinate_range(text: &str, id: u32, name: Option<&str>) -> Option<IdRange> {
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = owner == id.to_string() || Some(owner) == name;
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (matches && start > 0 && count > 0 && start.checked_add(count).is_some()).then_some(
            IdRange {
                inside: 1,
                outside: start,
                count,
            },
        )
    })
}

/// Maps for a vassal owned by (uid, gid): jail root is the owner; ids 1.. are the owner's
/// subordinate ranges when /etc/subuid and /etc/subgid list them.
pub fn maps_for(uid: u32, gid: u32) -> IdMaps {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name);
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mut maps = IdMaps {
        uids: vec![IdRange {
            inside: 0,
            outside: uid,
            count: 1,
        }],
        gids: vec![IdRange {
            inside: 0,
            outside: gid,
            count: 1,
        }],
    };
    maps.uids.extend(subordinate_range(
        &read("/etc/subuid"),
        uid,
        user.as_deref(),
    ));
    maps.gids.extend(
        subordinate_range(&read("/etc/subgid"), gid, group.as_deref())
            .or_else(|| subordinate_range(&read("/etc/subgid"), uid, user.as_deref())),
    );
    maps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_are_found_by_name_or_number() {
        let text = "alice:200000:65536\n20002:300000:1000\nbad line\n";
        assert_eq!(
            subordinate_range(text, 20001, Some("alice")),
            Some(IdRange {
                inside: 1,
                outside: 200000,
                count: 65536
            })
        );
        assert_eq!(
            subordinate_range(text, 20002, None),
            Some(IdRange {
                inside: 1,
                outside: 300000,
                count: 1000
            })
        );
        assert_eq!(subordinate_range(text, 20003, Some("carol")), None);
    }

    #[test]
    fn root_and_system_owners_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.ini");
        std::fs::write(&file, "").unwrap();
        std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
        assert_eq!(
            tyrant_owner(&file, 1000),
            Err(OwnerError::Root { uid: 0, gid: 0 })
        );
        std::os::unix::fs::chown(&file, Some(100), Some(100)).unwrap();
        assert_eq!(
            tyrant_owner(&file, 1000),
            Err(OwnerError::System {
                uid: 100,
                gid: 100,
                min: 1000
            })
        );
        std::os::unix::fs::chown(&file, Some(20001), Some(20001)).unwrap();
        assert_eq!(tyrant_owner(&file, 1000), Ok((20001, 20001)));
    }

    #[test]
    fn a_symlink_cannot_borrow_another_owners_identity() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim.ini");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::chown(&target, Some(20002), Some(20002)).unwrap();
        let link = dir.path().join("a.ini");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(20001), Some(20001)).unwrap();
        assert_eq!(
            tyrant_owner(&link, 1000),
            Err(OwnerError::Borrowed {
                link: 20001,
                target: 20002
            })
        );
    }
}
