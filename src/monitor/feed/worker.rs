//! The worker's side of a feed: its end of the channel, and the backoff between its attempts
//! to reach a store that is away.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use super::Update;

/// The worker's end of the feed.
#[derive(Clone)]
pub(crate) struct FeedSender {
    pub(super) tx: Sender<Update>,
    pub(super) wake: Arc<UnixStream>,
}

impl FeedSender {
    /// Hand an update to the loop and wake it. False once the emperor's end is gone: the
    /// worker then stops.
    pub fn send(&self, update: Update) -> bool {
        if self.tx.send(update).is_err() {
            return false;
        }
        // A full socket already has a wake-up pending: nothing is lost.
        match (&*self.wake).write_all(&[1]) {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        }
    }
}

/// Waits between attempts to reach a store that is away: doubling from a quarter second up
/// to `--emperor-freq` (at most 30 s), back to the start once it answers.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

const FIRST_RETRY: Duration = Duration::from_millis(250);

impl Backoff {
    pub fn new(freq: Duration) -> Self {
        Backoff {
            next: FIRST_RETRY,
            max: freq.clamp(FIRST_RETRY, Duration::from_secs(30)),
        }
    }

    /// The wait before the next attempt (and the one after that doubles).
    pub fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}
