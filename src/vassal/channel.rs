//! The payload's own protocol channel: a socketpair between the runtime and the payload it
//! starts, made afresh for every payload. The payload never shares the runtime's link to the
//! emperor, so every command byte has one reader and one meaning; the runtime relays what the
//! payload says. A uWSGI payload also gets a config channel (`UWSGI_EMPEROR_FD_CONFIG`).

use crate::protocol::{Command, Message};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use tracing::warn;

/// Bytes read from the payload per wake-up: a payload flooding its channel cannot keep the
/// runtime from its other duties.
const READ_BUDGET: usize = 256;

/// At most one warning about unknown bytes per this long, with the count since the last.
const UNKNOWN_BYTES_QUIET: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct PayloadChannel {
    ours: UnixStream,
    /// The payload's end, until it is handed over at launch.
    theirs: Option<OwnedFd>,
    config: Option<ConfigChannel>,
    closed: bool,
    unknown: UnknownBytes,
}

/// Bytes without a meaning: a payload flooding garbage makes a line now and then, not one
/// per byte.
#[derive(Debug, Default)]
struct UnknownBytes {
    count: u64,
    warned: Option<Instant>,
}

impl UnknownBytes {
    fn seen(&mut self, byte: u8, now: Instant) {
        self.count += 1;
        if self
            .warned
            .is_none_or(|at| now.duration_since(at) >= UNKNOWN_BYTES_QUIET)
        {
            warn!(
                count = self.count,
                "ignoring unknown protocol bytes from the payload (last: {byte})"
            );
            self.warned = Some(now);
            self.count = 0;
        }
    }
}

#[derive(Debug)]
struct ConfigChannel {
    ours: UnixStream,
    theirs: Option<OwnedFd>,
}

/// A channel while its runtime hibernates: our ends' fd numbers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ChannelAsleep {
    ours: RawFd,
    config: Option<RawFd>,
    closed: bool,
}

/// What the payload said since the last read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Said {
    pub messages: Vec<Message>,
    /// Every copy of its end is closed: the payload and all its processes are gone or
    /// closed it; nothing more will come.
    pub closed: bool,
}

impl PayloadChannel {
    /// A new pair (and a config pair when `with_config`).
    pub fn new(with_config: bool) -> std::io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let config = if with_config {
            let (ours, theirs) = UnixStream::pair()?;
            ours.set_nonblocking(true)?;
            Some(ConfigChannel {
                ours,
                theirs: Some(theirs.into()),
            })
        } else {
            None
        };
        Ok(PayloadChannel {
            ours,
            theirs: Some(theirs.into()),
            config,
            closed: false,
            unknown: UnknownBytes::default(),
        })
    }

    /// The payload's ends (protocol, then config), to map into its fd table at launch.
    pub fn payload_ends(&self) -> (Option<BorrowedFd<'_>>, Option<BorrowedFd<'_>>) {
        (
            self.theirs.as_ref().map(AsFd::as_fd),
            self.config
                .as_ref()
                .and_then(|c| c.theirs.as_ref())
                .map(AsFd::as_fd),
        )
    }

    /// The payload has its copies now: ours close, so its exit is seen as end of file.
    pub fn handed_over(&mut self) {
        self.theirs = None;
        if let Some(config) = &mut self.config {
            config.theirs = None;
        }
    }

    /// Our ends by number, for a hibernation (the payload has its own ends by then).
    pub fn asleep(&self) -> ChannelAsleep {
        ChannelAsleep {
            ours: self.ours.as_raw_fd(),
            config: self.config.as_ref().map(|c| c.ours.as_raw_fd()),
            closed: self.closed,
        }
    }

    /// Our ends again, in a runtime woken from hibernation.
    pub fn woken(asleep: &ChannelAsleep) -> Result<Self, jail::SysError> {
        let adopt = |fd| jail::fd::adopt_inherited(fd).map(UnixStream::from);
        let config = match asleep.config {
            Some(fd) => Some(ConfigChannel {
                ours: adopt(fd)?,
                theirs: None,
            }),
            None => None,
        };
        Ok(PayloadChannel {
            ours: adopt(asleep.ours)?,
            theirs: None,
            config,
            closed: asleep.closed,
            unknown: UnknownBytes::default(),
        })
    }

    /// The fds a hibernation keeps: ours (watched while it is open), the config end.
    pub fn fds(&self) -> (Option<RawFd>, Option<RawFd>) {
        (
            (!self.closed).then(|| self.ours.as_raw_fd()),
            self.config.as_ref().map(|c| c.ours.as_raw_fd()),
        )
    }

    /// Our end, to poll; None once the payload closed it.
    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        (!self.closed).then(|| self.ours.as_fd())
    }

    /// Tell the payload a command (uWSGI's stop and reload bytes).
    pub fn send(&mut self, command: Command) -> std::io::Result<()> {
        (&self.ours).write_all(&[command.byte()])
    }

    /// Put one framed config on the config channel for uWSGI's next read.
    pub fn push_config(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let config = self.config.as_mut().ok_or_else(|| {
            std::io::Error::new(ErrorKind::Unsupported, "this payload has no config channel")
        })?;
        (&config.ours).write_all(frame)
    }

    /// Read what is pending, at most [`READ_BUDGET`] bytes.
    pub fn read(&mut self) -> Said {
        let mut said = Said::default();
        if self.closed {
            return said;
        }
        let mut buf = [0u8; READ_BUDGET];
        match (&self.ours).read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                said.closed = true;
            }
            Ok(n) => {
                let now = Instant::now();
                for message in buf[..n].iter().map(|&b| Message::from_byte(b)) {
                    match message {
                        Message::Unknown(byte) => self.unknown.seen(byte, now),
                        known => said.messages.push(known),
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => {
                self.closed = true;
                said.closed = true;
            }
        }
        said
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_side(fd: BorrowedFd<'_>) -> UnixStream {
        UnixStream::from(fd.try_clone_to_owned().unwrap())
    }

    #[test]
    fn bytes_go_both_ways_and_the_end_is_seen_once_every_copy_is_closed() {
        let mut channel = PayloadChannel::new(true).unwrap();
        let (proto, config) = channel.payload_ends();
        let mut payload = payload_side(proto.unwrap());
        let mut payload_config = payload_side(config.unwrap());
        channel.handed_over();
        payload.write_all(&[1, 5, 17, 99]).unwrap();
        assert_eq!(
            channel.read().messages,
            [Message::Spawned, Message::Ready, Message::Loyal]
        );
        assert_eq!(channel.read(), Said::default());
        channel.send(Command::Reload).unwrap();
        let mut byte = [9u8];
        payload.read_exact(&mut byte).unwrap();
        assert_eq!(byte, [1]);
        channel.push_config(b"abc").unwrap();
        let mut got = [0u8; 3];
        payload_config.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abc");
        drop(payload);
        let said = channel.read();
        assert!(said.closed && said.messages.is_empty());
        assert!(channel.as_fd().is_none());
    }

    #[test]
    fn unknown_bytes_are_counted_and_told_at_most_once_per_quiet_period() {
        let mut unknown = UnknownBytes::default();
        let t0 = Instant::now();
        unknown.seen(99, t0);
        assert_eq!((unknown.count, unknown.warned), (0, Some(t0)));
        for _ in 0..1000 {
            unknown.seen(0, t0 + Duration::from_secs(1));
        }
        assert_eq!((unknown.count, unknown.warned), (1000, Some(t0)));
        unknown.seen(0, t0 + UNKNOWN_BYTES_QUIET);
        assert_eq!(unknown.count, 0);
    }

    #[test]
    fn a_payload_without_a_config_channel_is_told_so() {
        let mut channel = PayloadChannel::new(false).unwrap();
        assert!(channel.payload_ends().1.is_none());
        assert!(channel.push_config(b"x").is_err());
    }
}
