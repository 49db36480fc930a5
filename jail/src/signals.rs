//! Signals as events: block them and read them from a signalfd in the event loop, so no
//! handler ever runs in the middle of our code.

use crate::error::SysError;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

pub use nix::sys::signal::Signal as Sig;

/// A non-blocking signalfd for a set of signals that are blocked in this thread (and in
/// threads it creates afterwards).
#[derive(Debug)]
pub struct SignalEvents {
    fd: SignalFd,
}

impl SignalEvents {
    pub fn new(signals: &[Signal]) -> Result<Self, SysError> {
        let mut set = SigSet::empty();
        for &s in signals {
            set.add(s);
        }
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(|e| SysError::new("pthread_sigmask", e))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| SysError::new("signalfd", e))?;
        Ok(SignalEvents { fd })
    }

    /// The next pending signal, if any.
    pub fn next_pending(&mut self) -> Option<Signal> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }
}

impl AsRawFd for SignalEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for SignalEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
