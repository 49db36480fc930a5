//! The vassal's listening sockets: bound once by the runtime, before its jail (so in the host
//! network namespace and with the runtime's credentials), kept open across reloads and handed
//! to every payload it starts. While a payload restarts, connections wait in the backlog.
//! An `on-demand-socket` is the emperor's: bound and held by it, and handed to the runtime
//! (`--held-fd`); only a runtime run by hand binds it itself.

use crate::policy::{SocketAddress, SocketSpec, ON_DEMAND_OPTION, POOL_OPTION};
use std::net::TcpListener;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

/// A bound, listening socket.
#[derive(Debug)]
pub struct Bound {
    pub spec: SocketSpec,
    pub fd: OwnedFd,
}

/// Whether the emperor holds the socket of this option (and hands it down as `--held-fd`).
fn is_held(option: &str) -> bool {
    let option = option.replace('_', "-");
    option == ON_DEMAND_OPTION || option == POOL_OPTION
}

/// A socket that could not be bound (or taken from the emperor): its config line, option and
/// value, and the error, as `app.ini:3: option "http-socket": bind 127.0.0.1:80: Permission denied`.
#[derive(Debug, thiserror::Error)]
#[error("{place}: option \"{option}\": bind {value}: {source}")]
pub struct BindError {
    pub place: String,
    pub option: String,
    pub value: String,
    pub source: std::io::Error,
}

/// Bind every socket, in order, taking the on-demand or pool one from `held` when the emperor gave
/// it; the first failure names its option and address.
pub fn bind_all(
    specs: &[SocketSpec],
    held: Option<BorrowedFd<'_>>,
) -> Result<Vec<Bound>, BindError> {
    specs
        .iter()
        .map(|spec| {
            let socket = match held {
                Some(fd) if is_held(&spec.option) => fd.try_clone_to_owned(),
                _ => bind(&spec.address),
            };
            socket
                .map(|fd| Bound {
                    spec: spec.clone(),
                    fd,
                })
                .map_err(|source| BindError {
                    place: spec.place.clone(),
                    option: spec.option.clone(),
                    value: spec.value.clone(),
                    source,
                })
        })
        .collect()
}

/// Bind one listening socket (the emperor binds its held sockets with this too).
pub fn bind(address: &SocketAddress) -> std::io::Result<OwnedFd> {
    match address {
        // std sets SO_REUSEADDR and close-on-exec (a payload gets it only through the fd map).
        SocketAddress::Tcp(addr) => TcpListener::bind(addr).map(OwnedFd::from),
        SocketAddress::Unix(path) => {
            // A stale socket from an earlier run would make bind fail; anything else is kept.
            if std::fs::symlink_metadata(path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            {
                std::fs::remove_file(path)?;
            }
            UnixListener::bind(path).map(OwnedFd::from)
        }
        SocketAddress::Abstract(name) => {
            let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
            UnixListener::bind_addr(&addr).map(OwnedFd::from)
        }
    }
}
