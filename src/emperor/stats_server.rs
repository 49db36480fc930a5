//! The stats server's transport: one JSON document per connection, written from the emperor's
//! loop without a thread per client and within bounds a client cannot push: at most
//! [`MAX_CLIENTS`] being served (the rest wait in the listen backlog), each given
//! [`WRITE_PATIENCE`] to take its document, and at most [`MAX_DOCUMENTS`] documents in memory
//! whatever the number of clients (clients that arrive together share one). An accept that
//! fails for want of file descriptors pauses the listener instead of spinning the loop.

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Clients served at once (each costs an fd and a few words: the documents are shared).
pub const MAX_CLIENTS: usize = 256;
/// How long a client may take to read its document before it is closed.
pub const WRITE_PATIENCE: Duration = Duration::from_secs(10);
/// Documents held at once: a client arriving while this many are still being written gets the
/// newest of them instead of a fresh one.
const MAX_DOCUMENTS: usize = 2;
/// How long the listener rests after accept ran out of file descriptors.
const FD_PAUSE: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
#[error("stats server on {addr}: {source}")]
pub struct StatsError {
    addr: String,
    source: std::io::Error,
}

/// A TCP (`host:port`) or UNIX (path) listener, as uWSGI decides: a colon means TCP.
#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

#[derive(Debug)]
struct Client {
    stream: Stream,
    document: Rc<[u8]>,
    written: usize,
    deadline: Instant,
    /// In the epoll set (waiting for room).
    watched: bool,
}

#[derive(Debug)]
pub struct StatsServer {
    listener: Listener,
    clients: Vec<Option<Client>>,
    token_base: u64,
    /// The listener is out of the epoll set until then (no fds, or every client slot taken:
    /// then None and it is back as soon as a slot frees).
    resting: bool,
    rest_until: Option<Instant>,
    /// An accept failed for want of fds and was logged: said once until one succeeds again.
    short_of_fds: bool,
}

impl StatsServer {
    /// Bind `addr`; client `i` is watched under token `token_base + i`.
    pub fn bind(addr: &str, token_base: u64) -> Result<Self, StatsError> {
        let err = |source| StatsError {
            addr: addr.to_string(),
            source,
        };
        let listener = if addr.contains(':') && !addr.starts_with('/') {
            let listener = TcpListener::bind(addr).map_err(err)?;
            listener.set_nonblocking(true).map_err(err)?;
            Listener::Tcp(listener)
        } else {
            let path = PathBuf::from(addr);
            // A stale socket from a previous run would make bind fail.
            if std::fs::symlink_metadata(&path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            {
                let _ = std::fs::remove_file(&path);
            }
            let listener = UnixListener::bind(&path).map_err(err)?;
            listener.set_nonblocking(true).map_err(err)?;
            Listener::Unix(listener, path)
        };
        Ok(StatsServer {
            listener,
            clients: Vec::new(),
            token_base,
            resting: false,
            rest_until: None,
            short_of_fds: false,
        })
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.listener {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    /// The client slot a token stands for.
    pub fn slot_of(&self, token: u64) -> Option<usize> {
        let slot = token.checked_sub(self.token_base)? as usize;
        (slot < MAX_CLIENTS).then_some(slot)
    }

    /// When the loop must call [`Self::on_time`]: a client's patience ends, or the listener's
    /// rest.
    pub fn deadline(&self) -> Option<Instant> {
        self.clients
            .iter()
            .flatten()
            .map(|c| c.deadline)
            .chain(self.rest_until)
            .min()
    }

    /// Accept pending connections while a slot is free and start writing each its document
    /// (made by `document` at most once per call, and not at all when enough are held).
    pub fn on_listener(&mut self, epoll: &Epoll, document: impl Fn() -> String) {
        let mut fresh: Option<Rc<[u8]>> = None;
        loop {
            let Some(slot) = self.free_slot() else {
                // Full: the rest wait in the backlog until a client is done.
                self.rest(epoll, None);
                return;
            };
            let stream = match self.accept() {
                Ok(stream) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE/ENFILE: the connection stays pending, so a level-triggered
                    // listener would wake the loop at once, forever.
                    if !std::mem::replace(&mut self.short_of_fds, true) {
                        warn!("stats server: accept: {e}: connections wait until fds free up (retried every {FD_PAUSE:?})");
                    }
                    self.rest(epoll, Some(Instant::now() + FD_PAUSE));
                    return;
                }
            };
            if std::mem::take(&mut self.short_of_fds) {
                info!("stats server: accepting again");
            }
            let document = match &fresh {
                Some(document) => document.clone(),
                None => {
                    let document = self
                        .reusable_document()
                        .unwrap_or_else(|| document().into_bytes().into());
                    fresh = Some(document.clone());
                    document
                }
            };
            self.clients[slot] = Some(Client {
                stream,
                document,
                written: 0,
                deadline: Instant::now() + WRITE_PATIENCE,
                watched: false,
            });
            self.write_to(slot, epoll);
        }
    }

    /// A client can take more of its document.
    pub fn on_client(&mut self, slot: usize, epoll: &Epoll) {
        self.write_to(slot, epoll);
    }

    /// Close clients whose patience ran out; take the listener back after its rest.
    pub fn on_time(&mut self, now: Instant, epoll: &Epoll) {
        for slot in 0..self.clients.len() {
            if self.clients[slot]
                .as_ref()
                .is_some_and(|c| c.deadline <= now)
            {
                self.close(slot, epoll);
            }
        }
        if self.rest_until.is_some_and(|at| at <= now) {
            self.wake(epoll);
        }
    }

    fn accept(&self) -> std::io::Result<Stream> {
        let stream = match &self.listener {
            Listener::Tcp(l) => Stream::Tcp(l.accept()?.0),
            Listener::Unix(l, _) => Stream::Unix(l.accept()?.0),
        };
        match &stream {
            Stream::Tcp(s) => s.set_nonblocking(true)?,
            Stream::Unix(s) => s.set_nonblocking(true)?,
        }
        Ok(stream)
    }

    /// The newest document being written, when [`MAX_DOCUMENTS`] are held already.
    fn reusable_document(&self) -> Option<Rc<[u8]>> {
        let mut held: Vec<&Rc<[u8]>> = Vec::new();
        for client in self.clients.iter().flatten() {
            if !held.iter().any(|d| Rc::ptr_eq(d, &client.document)) {
                held.push(&client.document);
            }
        }
        if held.len() < MAX_DOCUMENTS {
            return None;
        }
        self.clients
            .iter()
            .flatten()
            .max_by_key(|c| c.deadline)
            .map(|c| c.document.clone())
    }

    fn free_slot(&mut self) -> Option<usize> {
        super::slots::free_slot(&mut self.clients, MAX_CLIENTS)
    }

    /// Write what the client's socket takes now; close it once done or broken, else watch
    /// it for room.
    fn write_to(&mut self, slot: usize, epoll: &Epoll) {
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let done = loop {
            let rest = &client.document[client.written..];
            if rest.is_empty() {
                break true;
            }
            let wrote = match &mut client.stream {
                Stream::Tcp(s) => s.write(rest),
                Stream::Unix(s) => s.write(rest),
            };
            match wrote {
                Ok(n) => client.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if done {
            self.close(slot, epoll);
            return;
        }
        if !client.watched {
            let event = EpollEvent::new(EpollFlags::EPOLLOUT, self.token_base + slot as u64);
            if epoll.add(client.stream.as_fd(), event).is_err() {
                self.close(slot, epoll);
                return;
            }
            client.watched = true;
        }
    }

    fn close(&mut self, slot: usize, epoll: &Epoll) {
        if let Some(client) = self.clients.get_mut(slot).and_then(Option::take) {
            if client.watched {
                let _ = epoll.delete(client.stream.as_fd());
            }
        }
        if self.resting && self.rest_until.is_none() {
            // It rested for want of a slot: one is free now.
            self.wake(epoll);
        }
    }

    /// Take the listener out of the epoll set, until `until` or (None) a slot frees.
    fn rest(&mut self, epoll: &Epoll, until: Option<Instant>) {
        if !self.resting {
            let _ = epoll.delete(self.as_fd());
            self.resting = true;
        }
        self.rest_until = until;
    }

    fn wake(&mut self, epoll: &Epoll) {
        self.rest_until = None;
        if self.resting {
            let token = super::TOKEN_STATS;
            let _ = epoll.add(self.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token));
            self.resting = false;
        }
    }
}

impl Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Drop for StatsServer {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}
