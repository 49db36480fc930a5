//! Listening sockets the emperor binds and holds for its vassals (on-demand sockets, and the
//! socket a pool of vassals shares): a component that owns their fds, keyed by address,
//! counted by the vassals that use it, closed when the last one lets go. Each vassal's
//! runtime gets the held socket as an fd and hands it to every payload like a socket of its
//! own.
//!
//! A tenant names the address in its config, so the emperor binds a UNIX path with the
//! tenant's filesystem identity (`jail::fsid`): the kernel checks the path as it would for the
//! tenant, the socket file belongs to the tenant, and the stale file bind replaces or the file
//! unlinked at the end is only ever one the tenant could remove itself.

use super::table::Vassal;
use crate::policy::{SocketAddress, SocketSpec};
use crate::sockets;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use tracing::warn;

#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    #[error("{place}: option \"{option}\": bind {address}: {source}")]
    Bind {
        place: String,
        option: String,
        address: String,
        source: std::io::Error,
    },
    #[error("{place}: option \"{option}\": {address} is already held for another vassal")]
    InUse {
        place: String,
        option: String,
        address: String,
    },
    #[error("{place}: option \"{option}\": binding {address} as its owner: {source}")]
    Identity {
        place: String,
        option: String,
        address: String,
        source: jail::SysError,
    },
}

/// Who a held socket is bound as: a tenant's (uid, gid) in tyrant mode, None for the emperor.
pub type Identity = Option<(u32, u32)>;

#[derive(Debug)]
struct Held {
    fd: OwnedFd,
    identity: Identity,
    /// Vassals using it.
    users: usize,
    /// The socket file bind made, removed when the socket closes if it is still that file.
    file: Option<SocketFile>,
}

#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// A held socket as an upgrade hands it to the next emperor (its fd by number).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeldSocket {
    pub address: SocketAddress,
    pub fd: std::os::fd::RawFd,
    pub identity: Option<(u32, u32)>,
    pub users: usize,
    /// The UNIX socket file it made (path, dev, ino), removed when it closes.
    pub file: Option<(PathBuf, u64, u64)>,
}

#[derive(Debug, Default)]
pub struct HeldSockets {
    by_address: HashMap<SocketAddress, Held>,
}

impl HeldSockets {
    /// Sockets held now (each is one fd of the emperor's).
    pub fn count(&self) -> usize {
        self.by_address.len()
    }

    /// Hold `spec`'s address for one more vassal, binding it the first time. An address held
    /// for another identity is refused: one tenant never gets another's socket.
    pub fn acquire(&mut self, spec: &SocketSpec, identity: Identity) -> Result<(), HeldError> {
        if let Some(held) = self.by_address.get_mut(&spec.address) {
            if held.identity != identity {
                return Err(HeldError::InUse {
                    place: spec.place.clone(),
                    option: spec.option.clone(),
                    address: spec.value.clone(),
                });
            }
            held.users += 1;
            return Ok(());
        }
        let bound = as_identity(identity, || {
            let fd = sockets::bind(&spec.address)?;
            let file = match &spec.address {
                SocketAddress::Unix(path) => {
                    let meta = std::fs::symlink_metadata(path)?;
                    Some(SocketFile {
                        path: path.clone(),
                        dev: meta.dev(),
                        ino: meta.ino(),
                    })
                }
                _ => None,
            };
            Ok((fd, file))
        });
        let (fd, file) = match bound {
            Ok(Ok(bound)) => bound,
            Ok(Err(source)) => {
                return Err(HeldError::Bind {
                    place: spec.place.clone(),
                    option: spec.option.clone(),
                    address: spec.value.clone(),
                    source,
                })
            }
            Err(source) => {
                return Err(HeldError::Identity {
                    place: spec.place.clone(),
                    option: spec.option.clone(),
                    address: spec.value.clone(),
                    source,
                })
            }
        };
        self.by_address.insert(
            spec.address.clone(),
            Held {
                // With the vassals' own sockets, out of the way of what a spawn creates.
                fd: jail::fd::park_above(fd, super::fd_budget::PARK_FLOOR),
                identity,
                users: 1,
                file,
            },
        );
        Ok(())
    }

    /// Every held socket, for the binary that replaces this emperor (an upgrade).
    pub fn handover(&self) -> Vec<HeldSocket> {
        use std::os::fd::AsRawFd;
        self.by_address
            .iter()
            .map(|(address, held)| HeldSocket {
                address: address.clone(),
                fd: held.fd.as_raw_fd(),
                identity: held.identity,
                users: held.users,
                file: held.file.as_ref().map(|f| (f.path.clone(), f.dev, f.ino)),
            })
            .collect()
    }

    /// A socket the emperor this one replaces held (an upgrade), with its fd.
    pub fn adopt(&mut self, socket: HeldSocket, fd: OwnedFd) {
        let file = socket
            .file
            .map(|(path, dev, ino)| SocketFile { path, dev, ino });
        let held = Held {
            fd,
            identity: socket.identity,
            users: socket.users,
            file,
        };
        self.by_address.insert(socket.address, held);
    }

    /// One vassal less on `address`; the last one closes it (and removes its socket file).
    pub fn release(&mut self, address: &SocketAddress) {
        let Some(held) = self.by_address.get_mut(address) else {
            return;
        };
        held.users -= 1;
        if held.users == 0 {
            let held = self.by_address.remove(address).expect("present");
            close(held);
        }
    }

    pub fn fd(&self, address: &SocketAddress) -> Option<BorrowedFd<'_>> {
        self.by_address.get(address).map(|held| held.fd.as_fd())
    }

    /// The held socket a spawn hands to the vassal's runtime: its on-demand socket, else its
    /// pool's; None for a vassal that uses neither.
    pub fn fd_for(&self, v: &Vassal) -> Option<BorrowedFd<'_>> {
        let socket = match (&v.on_demand, &v.pool) {
            (Some(od), _) => &od.socket,
            (None, Some(pool)) => pool,
            (None, None) => return None,
        };
        self.fd(&socket.address)
    }

    pub fn is_held(&self, address: &SocketAddress) -> bool {
        self.by_address.contains_key(address)
    }
}

impl Drop for HeldSockets {
    /// The emperor is going: every held socket closes and its file goes.
    fn drop(&mut self) {
        for (_, held) in self.by_address.drain() {
            close(held);
        }
    }
}

fn close(held: Held) {
    let Held {
        fd, identity, file, ..
    } = held;
    drop(fd);
    let Some(file) = file else {
        return;
    };
    // As the identity that made it, and only if the path still is that socket: a tenant who
    // put something else there meanwhile keeps it.
    let removed = as_identity(identity, || match std::fs::symlink_metadata(&file.path) {
        Ok(meta) if meta.dev() == file.dev && meta.ino() == file.ino => {
            std::fs::remove_file(&file.path)
        }
        _ => Ok(()),
    });
    match removed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(path = %file.path.display(), "cannot remove a held socket's file: {e}"),
        Err(e) => warn!(path = %file.path.display(), "cannot remove a held socket's file: {e}"),
    }
}

/// Run `act` with the filesystem identity of `identity`, or as the emperor when None.
fn as_identity<T>(identity: Identity, act: impl FnOnce() -> T) -> Result<T, jail::SysError> {
    match identity {
        Some((uid, gid)) => jail::fsid::as_fs_identity(uid, gid, act),
        None => Ok(act()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_socket_address;

    fn spec(value: &str) -> SocketSpec {
        SocketSpec {
            place: "app.ini:3".into(),
            option: "on-demand-socket".into(),
            value: value.into(),
            address: parse_socket_address(value).unwrap(),
        }
    }

    #[test]
    fn a_held_unix_socket_is_counted_and_its_file_goes_with_the_last_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("od.sock");
        let spec = spec(&path.display().to_string());
        let mut held = HeldSockets::default();
        held.acquire(&spec, None).unwrap();
        held.acquire(&spec, None).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        held.release(&spec.address);
        assert!(held.is_held(&spec.address), "one user left");
        held.release(&spec.address);
        assert!(!held.is_held(&spec.address));
        assert!(!path.exists(), "the socket file is removed");
    }

    #[test]
    fn an_address_held_for_one_identity_is_refused_to_another() {
        let mut held = HeldSockets::default();
        let spec = spec(&format!("@emperor-held-test-{}", std::process::id()));
        held.acquire(&spec, None).unwrap();
        let error = held.acquire(&spec, Some((20001, 20001))).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("app.ini:3: option \"on-demand-socket\": @emperor-held-test-"),
            "{error}"
        );
    }

    #[test]
    fn a_socket_file_replaced_meanwhile_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("od.sock");
        let spec = spec(&path.display().to_string());
        let mut held = HeldSockets::default();
        held.acquire(&spec, None).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "not ours").unwrap();
        held.release(&spec.address);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not ours");
    }
}
