//! The runtime's end of the emperor protocol socket, if it runs under an emperor.

use crate::protocol::{Command, Message, ENV_FD};
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use tracing::warn;

#[derive(Debug)]
pub struct EmperorLink {
    stream: Option<UnixStream>,
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
            return Ok(EmperorLink { stream: None });
        };
        let fd: RawFd = value
            .parse()
            .map_err(|_| LinkError::BadVariable(value.clone()))?;
        // Not O_NONBLOCK: the payload shares this open file description, and a payload that
        // writes to its fd 3 must not get EAGAIN. Reads use MSG_DONTWAIT instead.
        let stream = UnixStream::from(jail::fd::adopt_inherited(fd)?);
        Ok(EmperorLink {
            stream: Some(stream),
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

    /// Read what is pending without blocking.
    pub fn read(&mut self) -> Heard {
        let Some(stream) = &mut self.stream else {
            return Heard::Commands(Vec::new());
        };
        let mut buf = [0u8; 64];
        let mut commands = Vec::new();
        loop {
            match recv(stream.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return Heard::Lost,
                Ok(n) => {
                    for &byte in &buf[..n] {
                        match Command::from_byte(byte) {
                            Some(command) => commands.push(command),
                            None => warn!("ignoring unknown byte {byte} from the emperor"),
                        }
                    }
                }
                Err(Errno::EAGAIN) => return Heard::Commands(commands),
                Err(Errno::EINTR) => continue,
                Err(_) => return Heard::Lost,
            }
        }
    }
}
