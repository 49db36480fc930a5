//! The runtime's end of the emperor protocol socket, if it runs under an emperor.

use crate::protocol::{Command, Message, ENV_FD};
use nix::errno::Errno;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use tracing::warn;

#[derive(Debug)]
pub struct EmperorLink {
    stream: Option<UnixStream>,
    /// The newest config memfd the emperor sent with a reload (configs from monitors).
    config: Option<OwnedFd>,
}

/// What the emperor said since the last read.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    Commands(Vec<Command>),
    /// The emperor's end is closed: it is gone.
    Lost,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{ENV_FD}={0:?} is not a file descriptor number")]
    BadVariable(String),
    #[error("{ENV_FD}: {0}")]
    Adopt(#[from] jail::SysError),
}

impl EmperorLink {
    /// Adopt the socket named by UWSGI_EMPEROR_FD; none when run by hand.
    pub fn from_env() -> Result<Self, LinkError> {
        let Ok(value) = std::env::var(ENV_FD) else {
            return Ok(EmperorLink {
                stream: None,
                config: None,
            });
        };
        let fd: RawFd = value
            .parse()
            .map_err(|_| LinkError::BadVariable(value.clone()))?;
        // Not O_NONBLOCK: the payload shares this open file description, and a payload that
        // writes to its fd 3 must not get EAGAIN. Reads use MSG_DONTWAIT instead.
        let stream = UnixStream::from(jail::fd::adopt_inherited(fd)?);
        Ok(EmperorLink {
            stream: Some(stream),
            config: None,
        })
    }

    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        self.stream.as_ref().map(|s| s.as_fd())
    }

    pub fn fd(&self) -> Option<RawFd> {
        self.stream.as_ref().map(|s| s.as_raw_fd())
    }

    /// Tell the emperor something; a vanished emperor is noticed by the reader, not here.
    pub fn send(&mut self, message: Message) {
        if let Some(stream) = &mut self.stream {
            if let Err(e) = stream.write_all(&[message.byte()]) {
                warn!("cannot tell the emperor {message:?}: {e}");
            }
        }
    }

    /// Whether a config memfd is waiting for [`Self::take_config`].
    pub fn has_config(&self) -> bool {
        self.config.is_some()
    }

    /// The config memfd the last reload brought, if any.
    pub fn take_config(&mut self) -> Option<OwnedFd> {
        self.config.take()
    }

    /// Read what is pending without blocking; a config memfd sent along is kept for
    /// [`Self::take_config`].
    pub fn read(&mut self) -> Heard {
        let Some(stream) = &mut self.stream else {
            return Heard::Commands(Vec::new());
        };
        let mut buf = [0u8; 64];
        let mut commands = Vec::new();
        loop {
            match jail::fd::recv_with_fds(stream.as_fd(), &mut buf) {
                Ok((0, _)) => return Heard::Lost,
                Ok((n, fds)) => {
                    if let Some(fd) = fds.into_iter().last() {
                        self.config = Some(fd);
                    }
                    for &byte in &buf[..n] {
                        match Command::from_byte(byte) {
                            Some(command) => commands.push(command),
                            None => warn!("ignoring unknown byte {byte} from the emperor"),
                        }
                    }
                }
                Err(e) if e.errno == Errno::EAGAIN => return Heard::Commands(commands),
                Err(e) if e.errno == Errno::EINTR => continue,
                Err(_) => return Heard::Lost,
            }
        }
    }
}
