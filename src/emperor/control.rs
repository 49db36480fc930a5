//! The control socket (`--emperor-control PATH`): a UNIX stream socket, mode 0600, on which
//! the emperor's own uid (and root) may ask for a vassal's reload and read readiness. The
//! stats server stays read-only; this one acts, so it checks who is asking (SO_PEERCRED).
//!
//! One request per line, one JSON answer per line:
//! `lock` / `unlock` (one holder at a time, released when its connection closes),
//! `status`, `reload NAME`.

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Connections open at once; more are answered with an error and closed.
const MAX_CLIENTS: usize = 64;
/// A request line longer than this closes the connection.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[error("control socket {}: {step}: {source}", path.display())]
pub struct ControlError {
    path: PathBuf,
    step: &'static str,
    source: std::io::Error,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Lock,
    Unlock,
    Status,
    Reload(String),
}

impl Request {
    fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        let request = match (words.next(), words.next()) {
            (Some("lock"), None) => Request::Lock,
            (Some("unlock"), None) => Request::Unlock,
            (Some("status"), None) => Request::Status,
            (Some("reload"), Some(name)) => Request::Reload(name.to_string()),
            _ => {
                return Err(format!(
                    "unknown request \"{line}\" (lock, unlock, status, reload NAME)"
                ))
            }
        };
        match words.next() {
            None => Ok(request),
            Some(_) => Err(format!("unknown request \"{line}\"")),
        }
    }
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    pid: i32,
    input: Vec<u8>,
    output: Vec<u8>,
}

#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Option<Client>>,
    /// The client holding the reload lock, by slot.
    lock: Option<usize>,
    token_base: u64,
}

impl ControlServer {
    /// Bind PATH (a stale socket there is replaced; anything else is an error), mode 0600,
    /// owned by `owner` when the emperor is to become that identity.
    pub fn bind(
        path: &Path,
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
            path: path.to_path_buf(),
            clients: Vec::new(),
            lock: None,
            token_base,
        })
    }

    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// The client slot a token stands for.
    pub fn slot_of(&self, token: u64) -> Option<usize> {
        let slot = token.checked_sub(self.token_base)? as usize;
        (slot < MAX_CLIENTS).then_some(slot)
    }

    /// Accept every pending connection from our uid or root; refuse the rest.
    pub fn accept_pending(&mut self, epoll: &Epoll) {
        let me = nix::unistd::geteuid().as_raw();
        while let Ok((stream, _)) = self.listener.accept() {
            let Ok(creds) = getsockopt(&stream, PeerCredentials) else {
                continue;
            };
            let mut stream = stream;
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
            let Some(slot) = self.free_slot() else {
                let _ = stream.write_all(&answer_error("too many control connections"));
                continue;
            };
            if stream.set_nonblocking(true).is_err()
                || epoll
                    .add(
                        &stream,
                        EpollEvent::new(EpollFlags::EPOLLIN, self.token_base + slot as u64),
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
            });
        }
    }

    fn free_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.clients.iter().position(Option::is_none) {
            return Some(i);
        }
        (self.clients.len() < MAX_CLIENTS).then(|| {
            self.clients.push(None);
            self.clients.len() - 1
        })
    }

    /// Flush what is owed to the client, then read its complete request lines. A closed or
    /// misbehaving connection is dropped (and its lock released). Lock requests are answered
    /// here; the rest are returned for the emperor to answer with [`Self::reply`].
    pub fn serve(&mut self, slot: usize, epoll: &Epoll) -> Vec<Request> {
        self.flush(slot, epoll);
        let mut requests = Vec::new();
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return requests;
        };
        let mut buf = [0u8; 4096];
        let closed = loop {
            match client.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => client.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
            if client.input.len() > MAX_LINE && !client.input.contains(&b'\n') {
                break true;
            }
        };
        let mut lines = Vec::new();
        while let Some(end) = client.input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = client.input.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line).trim().to_string());
        }
        for line in lines.into_iter().filter(|l| !l.is_empty()) {
            match Request::parse(&line) {
                Ok(Request::Lock) => {
                    let answer = self.take_lock(slot);
                    self.reply(slot, epoll, answer);
                }
                Ok(Request::Unlock) => {
                    if self.lock == Some(slot) {
                        self.lock = None;
                    }
                    self.reply(slot, epoll, answer_ok());
                }
                Ok(Request::Reload(_)) if self.lock.is_some_and(|holder| holder != slot) => {
                    let answer = answer_error(&self.busy());
                    self.reply(slot, epoll, answer);
                }
                Ok(request) => requests.push(request),
                Err(message) => self.reply(slot, epoll, answer_error(&message)),
            }
        }
        if closed {
            self.close(slot, epoll);
        }
        requests
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

    /// Queue `answer` (one JSON line) for the client and write what the socket takes now.
    pub fn reply(&mut self, slot: usize, epoll: &Epoll, answer: Vec<u8>) {
        if let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) {
            client.output.extend_from_slice(&answer);
            self.flush(slot, epoll);
        }
    }

    /// Write what is owed; watch for writability only while something is left.
    fn flush(&mut self, slot: usize, epoll: &Epoll) {
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        while !client.output.is_empty() {
            match client.stream.write(&client.output) {
                Ok(n) => {
                    client.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(slot, epoll);
                    return;
                }
            }
        }
        let flags = if client.output.is_empty() {
            EpollFlags::EPOLLIN
        } else {
            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
        };
        let mut event = EpollEvent::new(flags, self.token_base + slot as u64);
        let _ = epoll.modify(&client.stream, &mut event);
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

pub fn answer_ok() -> Vec<u8> {
    b"{\"ok\":true}\n".to_vec()
}

pub fn answer_error(message: &str) -> Vec<u8> {
    let mut line = serde_json::json!({ "ok": false, "error": message }).to_string();
    line.push('\n');
    line.into_bytes()
}

/// A successful answer carrying `fields` besides `"ok": true`.
pub fn answer_with(mut fields: serde_json::Value) -> Vec<u8> {
    fields["ok"] = serde_json::Value::Bool(true);
    let mut line = fields.to_string();
    line.push('\n');
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_words_and_anything_else_is_refused() {
        assert_eq!(Request::parse("lock"), Ok(Request::Lock));
        assert_eq!(Request::parse(" status "), Ok(Request::Status));
        assert_eq!(
            Request::parse("reload app.ini"),
            Ok(Request::Reload("app.ini".into()))
        );
        assert!(Request::parse("reload").is_err());
        assert!(Request::parse("reload a b").is_err());
        assert!(Request::parse("rm -rf /")
            .unwrap_err()
            .contains("unknown request"));
    }
}
