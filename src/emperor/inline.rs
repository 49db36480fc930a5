//! Configs that came as text from a store (pg://, amqp://, zmq://): they are never written to
//! a file a tenant could swap. Each spawn gets a sealed memfd of the text (mapped to the
//! runtime's fd 5); each reload sends a fresh one attached to the reload byte (SCM_RIGHTS).

use super::table::Vassal;
use crate::protocol::Command;
use std::os::fd::{AsFd, OwnedFd};
use tracing::warn;

/// A sealed memfd of the vassal's config text, if it has one.
pub(super) fn memfd_of(v: &Vassal) -> Result<Option<OwnedFd>, jail::SysError> {
    v.config
        .as_ref()
        .map(|text| jail::memfd::sealed(&v.name, text.as_bytes()))
        .transpose()
}

/// Ask the runtime to reload, handing it the config's current text.
pub(super) fn send_reload(v: &Vassal) {
    let Some(process) = v.process.as_ref().filter(|p| !p.link_closed) else {
        return;
    };
    let sent = memfd_of(v).and_then(|memfd| match memfd {
        Some(memfd) => {
            jail::fd::send_byte_with_fd(process.link.as_fd(), Command::Reload.byte(), memfd.as_fd())
        }
        None => Ok(()),
    });
    if let Err(e) = sent {
        warn!(vassal = %v.name, "cannot send the reload with its config: {e}");
    }
}
