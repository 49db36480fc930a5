//! The supervisor's one blocking call: poll its sources (signals, the emperor's link, the
//! master FIFO, the payload's channel and output) until one has something or a deadline.

use super::super::channel::PayloadChannel;
use super::super::emperor_link::EmperorLink;
use super::super::output::PayloadOutput;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::AsFd;
use std::time::Instant;

use super::Supervisor;

impl Supervisor {
    /// Block until a signal, a byte from the emperor, or the deadline.
    pub(super) fn wait(
        &self,
        link: &EmperorLink,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Ready {
        let timeout = match deadline {
            Some(at) => PollTimeout::try_from(
                at.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1,
            )
            .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        let mut emperor = None;
        if let Some(fd) = link.as_fd() {
            emperor = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let mut fifo = None;
        if let Some(f) = &self.fifo {
            fifo = Some(fds.len());
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        let mut payload = None;
        if let Some(fd) = self.channel.as_ref().and_then(PayloadChannel::as_fd) {
            payload = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let mut output = None;
        if let Some(fd) = self.output.as_ref().and_then(PayloadOutput::as_fd) {
            output = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let _ = poll(&mut fds, timeout);
        let readable = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        Ready {
            signals: readable(0),
            emperor: emperor.is_some_and(readable),
            fifo: fifo.is_some_and(readable),
            payload: payload.is_some_and(readable),
            output: output.is_some_and(readable),
        }
    }
}

/// Which sources had something.
#[derive(Debug, Default)]
pub(super) struct Ready {
    pub signals: bool,
    pub emperor: bool,
    pub fifo: bool,
    pub payload: bool,
    pub output: bool,
}

impl Ready {
    pub(super) fn any(&self) -> bool {
        self.signals || self.emperor || self.fifo || self.payload || self.output
    }
}
