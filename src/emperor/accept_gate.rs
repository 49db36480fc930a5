//! What a listening socket of the emperor (the stats server, the control socket) does when the
//! emperor is out of file descriptors. Its listener is level-triggered: an `accept` failing
//! with EMFILE leaves the connection pending, so the loop woke at once again and spun at 100%
//! CPU. Instead the gate closes the waiting client through a reserve fd (it is told, not left
//! hanging) and takes the listener out of the epoll set for [`BACKOFF`]; the loop's deadline
//! puts it back. One warning per episode, not one per wake-up. The gate also knows its
//! clients' epoll tokens: its base token plus a slot.

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long a listener stays out of the epoll set after an accept found no free fd.
pub const BACKOFF: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct AcceptGate {
    /// What the log calls this listener ("stats server").
    what: &'static str,
    token: u64,
    /// A client's token is this plus its slot, below `max_clients`.
    client_base: u64,
    max_clients: usize,
    /// An fd held only to be given up: with it closed, one more accept succeeds.
    reserve: Option<File>,
    /// While out of the epoll set: when it goes back.
    paused_until: Option<Instant>,
    /// Within an episode of EMFILE/ENFILE (logged once, at its start and at its end).
    exhausted: bool,
}

/// Whether an accept failed for want of a file descriptor (the process's or the system's).
fn out_of_fds(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

impl AcceptGate {
    pub fn new(what: &'static str, token: u64, client_base: u64, max_clients: usize) -> Self {
        AcceptGate {
            what,
            token,
            client_base,
            max_clients,
            reserve: File::open("/dev/null").ok(),
            paused_until: None,
            exhausted: false,
        }
    }

    /// Watch the listener (at start-up, and when a pause ends).
    pub fn arm(&self, listener: BorrowedFd<'_>, epoll: &Epoll) -> nix::Result<()> {
        epoll.add(listener, EpollEvent::new(EpollFlags::EPOLLIN, self.token))
    }

    /// The token of the client in `slot`.
    pub fn client_token(&self, slot: usize) -> u64 {
        self.client_base + slot as u64
    }

    /// The client slot a token stands for.
    pub fn slot_of(&self, token: u64) -> Option<usize> {
        let slot = token.checked_sub(self.client_base)? as usize;
        (slot < self.max_clients).then_some(slot)
    }

    /// The next pending connection, by `accept` on `listener`; None when there is none, or
    /// when the emperor is out of fds (then the listener is paused).
    pub fn next<T>(
        &mut self,
        listener: BorrowedFd<'_>,
        epoll: &Epoll,
        mut accept: impl FnMut() -> io::Result<T>,
    ) -> Option<T> {
        loop {
            match accept() {
                Ok(client) => {
                    if std::mem::take(&mut self.exhausted) {
                        info!("{}: file descriptors free again, accepting", self.what);
                    }
                    return Some(client);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if out_of_fds(&e) => {
                    self.exhausted(&e, listener, epoll, || drop(accept()));
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// An accept failed with EMFILE/ENFILE: close one waiting client through the reserve fd
    /// (`shed` accepts and drops it), then stop watching the listener for [`BACKOFF`].
    fn exhausted(
        &mut self,
        error: &io::Error,
        listener: BorrowedFd<'_>,
        epoll: &Epoll,
        shed: impl FnOnce(),
    ) {
        if !std::mem::replace(&mut self.exhausted, true) {
            warn!(
                "{}: accept: {error}: closing new connections and pausing {BACKOFF:?} at a time until fds are free",
                self.what
            );
        }
        if self.reserve.take().is_some() {
            shed();
            self.reserve = File::open("/dev/null").ok();
        }
        if self.paused_until.is_none() && epoll.delete(listener).is_ok() {
            self.paused_until = Some(Instant::now() + BACKOFF);
        }
    }

    /// When the paused listener is due back in the epoll set.
    pub fn deadline(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Put the listener back once its pause is over.
    pub fn resume_if_due(&mut self, listener: BorrowedFd<'_>, epoll: &Epoll, now: Instant) {
        if self.paused_until.is_some_and(|at| now >= at) {
            // Should epoll refuse it back, try again later rather than at every wake-up.
            self.paused_until = self.arm(listener, epoll).is_err().then(|| now + BACKOFF);
        }
    }
}
