//! The control socket (`--emperor-control PATH`): a UNIX stream socket, mode 0600, on which
//! the emperor's own uid (and root) may ask for a vassal's reload and read readiness. The
//! stats server stays read-only; this one acts, so it checks who is asking (SO_PEERCRED).
//!
//! One request per line, one JSON answer per line:
//! `lock` / `unlock` (one holder at a time, released when its connection closes),
//! `status`, `reload NAME`, `upgrade` (the emperor executes its installed binary in its place).

use super::accept_gate::AcceptGate;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Connections open at once; a newcomer beyond them takes the slot of the client quiet the
/// longest (never the lock holder), so idle clients cannot lock `emperor reload` out.
const MAX_CLIENTS: usize = 64;
/// A request line longer than this closes the connection.
const MAX_LINE: usize = 4096;
/// Answers a client has not read yet, in bytes, above which its requests are no longer read
/// until it drains. Not closed: a `status` at 10,000 vassals is ~1 MB on its own, and a client
/// that asks faster than it reads is only slow. So a client costs at most this plus one answer.
const MAX_UNREAD: usize = 64 * 1024;
/// A connection with neither a request nor an answer taken for this long is closed, except the
/// lock holder's: a rolling reload holds its connection (and the lock) for minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("control socket {}: {step}: {source}", path.display())]
pub struct ControlError {
    path: PathBuf,
    step: &'static str,
    source: std::io::Error,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    pid: i32,
    input: Vec<u8>,
    output: Vec<u8>,
    /// The peer shut its side: nothing more to read.
    eof: bool,
    /// Its last request, or the last answer byte it took.
    last_active: Instant,
}

/// What one read from a client gave.
enum Received {
    Bytes,
    Nothing,
    End,
}

impl Client {
    /// Its next complete request line (trimmed), if one is buffered.
    fn take_line(&mut self) -> Option<String> {
        let end = self.input.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.input.drain(..=end).collect();
        Some(String::from_utf8_lossy(&line).trim().to_string())
    }

    /// One read of what it sent; a line over [`MAX_LINE`] counts as the end.
    fn receive(&mut self) -> Received {
        let mut buf = [0u8; MAX_LINE];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Received::End,
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    if self.input.len() > MAX_LINE && !self.input.contains(&b'\n') {
                        return Received::End;
                    }
                    return Received::Bytes;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Received::Nothing,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Received::End,
            }
        }
    }

    /// Write what is owed and the socket takes now; false when the peer is gone.
    fn flush(&mut self, now: Instant) -> bool {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                    self.last_active = now;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Whether its requests are answered now (it has drained its answers below the bound).
    fn answering(&self) -> bool {
        self.output.len() <= MAX_UNREAD
    }

    /// Whether more of its requests are read now.
    fn reading(&self) -> bool {
        !self.eof && self.answering()
    }

    /// Readable while it is read, writable while something is owed.
    fn interest(&self) -> EpollFlags {
        let mut flags = EpollFlags::empty();
        if self.reading() {
            flags |= EpollFlags::EPOLLIN;
        }
        if !self.output.is_empty() {
            flags |= EpollFlags::EPOLLOUT;
        }
        flags
    }
}

#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    gate: AcceptGate,
    path: PathBuf,
    clients: Vec<Option<Client>>,
    /// The client holding the reload lock, by slot.
    lock: Option<usize>,
}

impl ControlServer {
    /// Bind PATH (a stale socket there is replaced; anything else is an error), mode 0600,
    /// owned by `owner` when the emperor is to become that identity. `token` is the
    /// listener's epoll token, `token_base` plus a slot a client's.
    pub fn bind(
        path: &Path,
        token: u64,
        token_base: u64,
        owner: Option<(u32, u32)>,
    ) -> Result<Self, ControlError> {
        let fail = |step| {
            move |source| ControlError {
                path: path.to_path_buf(),
                step,
                source,
            }
        };
        if std::fs::symlink_metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            std::fs::remove_file(path).map_err(fail("unlink"))?;
        }
        let listener = UnixListener::bind(path).map_err(fail("bind"))?;
        // Until the chmod, the peer check below is what keeps others out.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(fail("chmod"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(fail("chown"))?;
        }
        listener
            .set_nonblocking(true)
            .map_err(fail("fcntl(O_NONBLOCK)"))?;
        Ok(ControlServer {
            listener,
            gate: AcceptGate::new("control socket", token, token_base, MAX_CLIENTS),
            path: path.to_path_buf(),
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
            lock: None,
        })
    }

    /// A control server on the listener the emperor this one replaces bound (an upgrade).
    pub fn adopt(path: &Path, fd: std::os::fd::OwnedFd, token: u64, token_base: u64) -> Self {
        ControlServer {
            listener: UnixListener::from(fd),
            gate: AcceptGate::new("control socket", token, token_base, MAX_CLIENTS),
            path: path.to_path_buf(),
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
            lock: None,
        }
    }

    /// Its listening socket (handed over by an upgrade).
    pub fn listener_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Watch the listener in the emperor's epoll.
    pub fn register(&self, epoll: &Epoll) -> nix::Result<()> {
        self.gate.arm(self.listener.as_fd(), epoll)
    }

    /// The client slot a token stands for.
    pub fn slot_of(&self, token: u64) -> Option<usize> {
        self.gate.slot_of(token)
    }

    /// Accept every pending connection from our uid or root; refuse the rest.
    pub fn accept_pending(&mut self, epoll: &Epoll) {
        let me = nix::unistd::geteuid().as_raw();
        let now = Instant::now();
        loop {
            let listener = &self.listener;
            let Some((mut stream, _)) = self
                .gate
                .next(listener.as_fd(), epoll, || listener.accept())
            else {
                return;
            };
            let Ok(creds) = getsockopt(&stream, PeerCredentials) else {
                continue;
            };
            if creds.uid() != me && creds.uid() != 0 {
                warn!(
                    uid = creds.uid(),
                    pid = creds.pid(),
                    "control socket: refused (not the emperor's uid nor root)"
                );
                let _ = stream.write_all(&answer_error(
                    "permission denied: only the emperor's uid and root may control it",
                ));
                continue;
            }
            let slot = self.free_slot(epoll);
            if stream.set_nonblocking(true).is_err()
                || epoll
                    .add(
                        &stream,
                        EpollEvent::new(EpollFlags::EPOLLIN, self.gate.client_token(slot)),
                    )
                    .is_err()
            {
                continue;
            }
            self.clients[slot] = Some(Client {
                stream,
                pid: creds.pid(),
                input: Vec::new(),
                output: Vec::new(),
                eof: false,
                last_active: now,
            });
        }
    }

    /// A free slot, or the slot of the client quiet the longest that does not hold the lock
    /// (it is told why and closed).
    fn free_slot(&mut self, epoll: &Epoll) -> usize {
        if let Some(slot) = self.clients.iter().position(Option::is_none) {
            return slot;
        }
        let quietest = self
            .clients
            .iter()
            .enumerate()
            .filter(|&(slot, _)| self.lock != Some(slot))
            .filter_map(|(slot, c)| Some((c.as_ref()?.last_active, slot)))
            .min()
            .map_or(0, |(_, slot)| slot);
        self.close_telling(
            quietest,
            epoll,
            "closed: every control connection was taken and this one was the quietest",
        );
        quietest
    }

    /// The next request of the client for the emperor to answer with [`Self::reply`]; lock
    /// and unlock are answered here. None when it has no complete request, when its unread
    /// answers are over [`MAX_UNREAD`] (it is read again once it drains), or when it is gone.
    pub fn next_request(&mut self, slot: usize, epoll: &Epoll) -> Option<Request> {
        let now = Instant::now();
        loop {
            let client = self.clients.get_mut(slot)?.as_mut()?;
            if !client.flush(now) {
                self.close(slot, epoll);
                return None;
            }
            let line = match client.answering().then(|| client.take_line()).flatten() {
                Some(line) => line,
                None => {
                    let received = if client.reading() {
                        client.receive()
                    } else {
                        Received::Nothing
                    };
                    match received {
                        Received::Bytes => continue,
                        Received::End => client.eof = true,
                        Received::Nothing => {}
                    }
                    self.watch(slot, epoll);
                    return None;
                }
            };
            client.last_active = now;
            if line.is_empty() {
                continue;
            }
            match Request::parse(&line) {
                Ok(Request::Lock) => {
                    let answer = self.take_lock(slot);
                    self.queue(slot, answer);
                }
                Ok(Request::Unlock) => {
                    if self.lock == Some(slot) {
                        self.lock = None;
                    }
                    self.queue(slot, answer_ok());
                }
                Ok(Request::Reload(_)) if self.lock.is_some_and(|holder| holder != slot) => {
                    let answer = answer_error(&self.busy());
                    self.queue(slot, answer);
                }
                Ok(request) => return Some(request),
                Err(message) => self.queue(slot, answer_error(&message)),
            }
        }
    }

    fn take_lock(&mut self, slot: usize) -> Vec<u8> {
        match self.lock {
            Some(holder) if holder != slot => answer_error(&self.busy()),
            _ => {
                self.lock = Some(slot);
                let pid = self.clients[slot].as_ref().map_or(0, |c| c.pid);
                info!(pid, "control socket: reload lock taken");
                answer_ok()
            }
        }
    }

    fn busy(&self) -> String {
        let pid = self
            .lock
            .and_then(|s| self.clients.get(s)?.as_ref())
            .map_or(0, |c| c.pid);
        format!("another reload is in progress (pid {pid} holds the lock)")
    }

    fn queue(&mut self, slot: usize, answer: Vec<u8>) {
        if let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) {
            client.output.extend_from_slice(&answer);
        }
    }

    /// Queue `answer` (one JSON line) for the client and write what the socket takes now.
    pub fn reply(&mut self, slot: usize, epoll: &Epoll, answer: Vec<u8>) {
        self.queue(slot, answer);
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if client.flush(Instant::now()) {
            self.watch(slot, epoll);
        } else {
            self.close(slot, epoll);
        }
    }

    /// Set what the client is watched for; one with nothing to read or write is done.
    fn watch(&mut self, slot: usize, epoll: &Epoll) {
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let flags = client.interest();
        if flags.is_empty() {
            self.close(slot, epoll);
            return;
        }
        let mut event = EpollEvent::new(flags, self.gate.client_token(slot));
        let _ = epoll.modify(&client.stream, &mut event);
    }

    /// When the next client falls idle, or the paused listener is due back.
    pub fn deadline(&self) -> Option<Instant> {
        let idle = self
            .clients
            .iter()
            .enumerate()
            .filter(|&(slot, _)| self.lock != Some(slot))
            .filter_map(|(_, c)| Some(c.as_ref()?.last_active + IDLE_TIMEOUT))
            .min();
        idle.into_iter().chain(self.gate.deadline()).min()
    }

    /// Close the clients idle for [`IDLE_TIMEOUT`] (not the lock holder); put a paused
    /// listener back.
    pub fn tick(&mut self, epoll: &Epoll, now: Instant) {
        for slot in 0..MAX_CLIENTS {
            let idle = self.clients[slot]
                .as_ref()
                .is_some_and(|c| now >= c.last_active + IDLE_TIMEOUT);
            if idle && self.lock != Some(slot) {
                self.close_telling(slot, epoll, "closed: idle too long");
            }
        }
        self.gate.resume_if_due(self.listener.as_fd(), epoll, now);
    }

    /// Close a client with a last error line, written if its socket takes it now.
    fn close_telling(&mut self, slot: usize, epoll: &Epoll, why: &str) {
        if let Some(client) = self.clients[slot].as_mut() {
            debug!(pid = client.pid, "control socket: {why}");
            let _ = client.stream.write(&answer_error(why));
        }
        self.close(slot, epoll);
    }

    fn close(&mut self, slot: usize, epoll: &Epoll) {
        if let Some(client) = self.clients.get_mut(slot).and_then(Option::take) {
            let _ = epoll.delete(&client.stream);
        }
        if self.lock == Some(slot) {
            info!("control socket: reload lock released (its holder went away)");
            self.lock = None;
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

mod request;
#[cfg(test)]
mod tests;

pub use request::{answer_error, answer_ok, answer_with, Request};
