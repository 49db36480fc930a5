//! The stats server's transport: one document per connection, written without blocking from
//! the emperor's loop. Not a thread per client: at 10,000 vassals the document is ~5.6 MB, and
//! every client that connected and never read pinned a thread and a copy of it. Here:
//! - at most [`MAX_CLIENTS`] are being written to; a newcomer beyond that takes the slot of
//!   the client that has gone longest without taking a byte (a reader keeps its slot, clients
//!   that never read give theirs up), so a flood of silent clients cannot lock readers out;
//! - each client has [`WRITE_TIMEOUT`] to take its whole document, then it is closed;
//! - clients accepted in the same wake-up share one document (an `Rc<Vec<u8>>` with an offset
//!   each), and while [`MAX_DOCUMENTS`] are still being written a newcomer gets the newest of
//!   them: the memory is a few documents, never clients x document.
//!
//! The same transport serves HTTP (`--emperor-metrics`): a client's request head is read first
//! (at most [`super::http_request::MAX_REQUEST`] bytes, within the same timeout), then its answer is written.

use super::accept_gate::AcceptGate;
use super::http_request::{read_request, Request};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};
use tracing::debug;

/// Clients being written to at once.
pub const MAX_CLIENTS: usize = 64;
/// How long a client has to take its whole document.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Distinct documents held for clients at once.
pub const MAX_DOCUMENTS: usize = 4;

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

impl Listener {
    fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }
}

impl Stream {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    fn reader(&mut self) -> &mut dyn Read {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(true),
            Stream::Unix(s) => s.set_nonblocking(true),
        }
    }
}

#[derive(Debug)]
struct Client {
    stream: Stream,
    /// HTTP: the request head read so far, until it is complete (then None).
    request: Option<Vec<u8>>,
    document: Rc<Vec<u8>>,
    sent: usize,
    /// Accepted + [`WRITE_TIMEOUT`].
    deadline: Instant,
    /// The last moment it took a byte (or was accepted).
    last_progress: Instant,
}

/// How a write went.
enum Sent {
    All,
    Partly,
    Failed,
}

impl Client {
    /// Write what the socket takes now.
    fn write_some(&mut self, now: Instant) -> Sent {
        while self.sent < self.document.len() {
            match self.stream.writer().write(&self.document[self.sent..]) {
                Ok(0) => return Sent::Failed,
                Ok(n) => {
                    self.sent += n;
                    self.last_progress = now;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Sent::Partly,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Sent::Failed,
            }
        }
        Sent::All
    }
}

#[derive(Debug)]
pub struct StatsServer {
    listener: Listener,
    /// Read an HTTP request before answering (the metrics endpoint).
    http: bool,
    gate: AcceptGate,
    clients: Vec<Option<Client>>,
    /// The document most recently made, while some client still holds it.
    newest: Option<Weak<Vec<u8>>>,
    /// Bytes of the documents made since [`Self::freed_documents`] last told them.
    made: usize,
}

impl StatsServer {
    pub fn bind(addr: &str, token: u64, token_base: u64) -> Result<Self, StatsError> {
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
            http: false,
            gate: AcceptGate::new("stats server", token, token_base, MAX_CLIENTS),
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
            newest: None,
            made: 0,
        })
    }

    /// A server on the listener the emperor this one replaces bound at `addr` (an upgrade).
    pub fn adopt(
        addr: &str,
        fd: std::os::fd::OwnedFd,
        token: u64,
        token_base: u64,
        http: bool,
    ) -> Self {
        let listener = if addr.contains(':') && !addr.starts_with('/') {
            Listener::Tcp(TcpListener::from(fd))
        } else {
            Listener::Unix(UnixListener::from(fd), PathBuf::from(addr))
        };
        StatsServer {
            listener,
            http,
            gate: AcceptGate::new("stats server", token, token_base, MAX_CLIENTS),
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
            newest: None,
            made: 0,
        }
    }

    /// Its listening socket (handed over by an upgrade).
    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// An HTTP server on `addr`: each client's request head is read before it is answered.
    pub fn bind_http(addr: &str, token: u64, token_base: u64) -> Result<Self, StatsError> {
        let mut server = Self::bind(addr, token, token_base)?;
        server.http = true;
        Ok(server)
    }

    /// Watch the listener in the emperor's epoll.
    pub fn register(&self, epoll: &Epoll) -> nix::Result<()> {
        self.gate.arm(self.listener.as_fd(), epoll)
    }

    /// The client slot a token stands for.
    pub fn slot_of(&self, token: u64) -> Option<usize> {
        self.gate.slot_of(token)
    }

    /// Accept every pending connection and start writing `document` to it (HTTP: start
    /// reading its request).
    pub fn accept_pending<D: Into<Vec<u8>>>(
        &mut self,
        epoll: &Epoll,
        document: impl FnOnce() -> D,
    ) {
        if self.http {
            return self.accept_requests(epoll);
        }
        let mut document = Some(document);
        let mut batch: Option<Rc<Vec<u8>>> = None;
        let now = Instant::now();
        while let Some(stream) = self.next_client(epoll) {
            let body = match &batch {
                Some(body) => body.clone(),
                None => {
                    let body = self.document_for_newcomer(document.take());
                    batch.insert(body).clone()
                }
            };
            self.start(stream, body, epoll, now);
        }
    }

    /// The next pending connection, as the accept gate allows.
    fn next_client(&mut self, epoll: &Epoll) -> Option<Stream> {
        let listener = &self.listener;
        self.gate
            .next(listener.as_fd(), epoll, || listener.accept())
    }

    /// HTTP: accept every pending connection and wait for its request.
    fn accept_requests(&mut self, epoll: &Epoll) {
        let now = Instant::now();
        while let Some(stream) = self.next_client(epoll) {
            if stream.set_nonblocking().is_err() {
                continue;
            }
            let client = Client {
                stream,
                request: Some(Vec::new()),
                document: Rc::new(Vec::new()),
                sent: 0,
                deadline: now + WRITE_TIMEOUT,
                last_progress: now,
            };
            self.admit(client, EpollFlags::EPOLLIN, epoll);
        }
    }

    /// A fresh document, or the newest one held when [`MAX_DOCUMENTS`] are already held.
    fn document_for_newcomer<D: Into<Vec<u8>>>(
        &mut self,
        make: Option<impl FnOnce() -> D>,
    ) -> Rc<Vec<u8>> {
        if let Some(newest) = self.newest.as_ref().and_then(Weak::upgrade) {
            if self.documents_held() >= MAX_DOCUMENTS {
                return newest;
            }
        }
        // The document's own buffer, not a copy of it (7 MB at 10,000 vassals).
        let body = Rc::new(make.map_or_else(Vec::new, |make| make().into()));
        self.newest = Some(Rc::downgrade(&body));
        self.made += body.len();
        body
    }

    /// Once no client holds a document any more: the bytes of the documents made since the
    /// last time this said so (then 0 until more are made and freed).
    pub fn freed_documents(&mut self) -> usize {
        if self.made == 0 || self.documents_held() > 0 {
            return 0;
        }
        std::mem::take(&mut self.made)
    }

    fn documents_held(&self) -> usize {
        let mut held: Vec<*const u8> = self
            .clients
            .iter()
            .flatten()
            .map(|c| c.document.as_ptr())
            .collect();
        held.sort_unstable();
        held.dedup();
        held.len()
    }

    /// Write what the socket takes at once; a client left with more to take gets a slot.
    fn start(&mut self, stream: Stream, document: Rc<Vec<u8>>, epoll: &Epoll, now: Instant) {
        if stream.set_nonblocking().is_err() {
            return;
        }
        let mut client = Client {
            stream,
            request: None,
            document,
            sent: 0,
            deadline: now + WRITE_TIMEOUT,
            last_progress: now,
        };
        if !matches!(client.write_some(now), Sent::Partly) {
            return;
        }
        self.admit(client, EpollFlags::EPOLLOUT, epoll);
    }

    /// Give `client` a slot (the one stalled longest when all are taken), watched for `flags`.
    fn admit(&mut self, client: Client, flags: EpollFlags, epoll: &Epoll) {
        let slot = match self.clients.iter().position(Option::is_none) {
            Some(slot) => slot,
            None => {
                let stalled = self.longest_stalled();
                debug!(
                    slot = stalled,
                    "stats server: all slots taken, closing the client stalled longest"
                );
                self.close(stalled, epoll);
                stalled
            }
        };
        let watch = EpollEvent::new(flags, self.gate.client_token(slot));
        if epoll.add(client.stream.as_fd(), watch).is_ok() {
            self.clients[slot] = Some(client);
        }
    }

    fn longest_stalled(&self) -> usize {
        self.clients
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| Some((c.as_ref()?.last_progress, slot)))
            .min()
            .map_or(0, |(_, slot)| slot)
    }

    /// The client's socket takes more: write it; close it once done or gone.
    pub fn on_writable(&mut self, slot: usize, epoll: &Epoll) {
        let Some(client) = self.clients[slot].as_mut() else {
            return;
        };
        if !matches!(client.write_some(Instant::now()), Sent::Partly) {
            self.close(slot, epoll);
        }
    }

    /// HTTP: whether the client is still sending its request (not yet answered).
    pub fn is_reading(&self, slot: usize) -> bool {
        self.clients[slot]
            .as_ref()
            .is_some_and(|c| c.request.is_some())
    }

    /// HTTP: read what the client sent; its request target once the head is complete (the
    /// caller then [`Self::answer`]s). A client that sends too much or goes is closed.
    pub fn read_request(&mut self, slot: usize, epoll: &Epoll) -> Option<String> {
        let client = self.clients[slot].as_mut()?;
        let head = client.request.as_mut()?;
        match read_request(client.stream.reader(), head) {
            Request::Incomplete => None,
            Request::Bad => {
                self.close(slot, epoll);
                None
            }
            Request::Target(target) => Some(target),
        }
    }

    /// HTTP: write `response` (status line and headers included) to the client.
    pub fn answer(&mut self, slot: usize, epoll: &Epoll, response: String) {
        let token = self.gate.client_token(slot);
        let Some(client) = self.clients[slot].as_mut() else {
            return;
        };
        let now = Instant::now();
        client.document = Rc::new(response.into_bytes());
        client.request = None;
        client.last_progress = now;
        let mut watch = EpollEvent::new(EpollFlags::EPOLLOUT, token);
        if epoll.modify(client.stream.as_fd(), &mut watch).is_err()
            || !matches!(client.write_some(now), Sent::Partly)
        {
            self.close(slot, epoll);
        }
    }

    fn close(&mut self, slot: usize, epoll: &Epoll) {
        if let Some(client) = self.clients[slot].take() {
            let _ = epoll.delete(client.stream.as_fd());
        }
    }

    /// The next moment [`Self::tick`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let clients = self.clients.iter().flatten().map(|c| c.deadline).min();
        clients.into_iter().chain(self.gate.deadline()).min()
    }

    /// Close the clients out of time; put a paused listener back.
    pub fn tick(&mut self, epoll: &Epoll, now: Instant) {
        for slot in 0..MAX_CLIENTS {
            if self.clients[slot]
                .as_ref()
                .is_some_and(|c| now >= c.deadline)
            {
                debug!(
                    slot,
                    "stats server: client closed, it did not take its document in {WRITE_TIMEOUT:?}"
                );
                self.close(slot, epoll);
            }
        }
        self.gate.resume_if_due(self.listener.as_fd(), epoll, now);
    }
}

impl Drop for StatsServer {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests;
