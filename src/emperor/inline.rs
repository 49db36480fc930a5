//! Configs that came as text from a store (pg://, amqp://, zmq://): they are never written to
//! a file a tenant could swap. Each spawn gets a sealed memfd of the text (mapped to the
//! runtime's fd 6); each reload sends a fresh one attached to the reload byte (SCM_RIGHTS).

use super::table::Process;
use crate::protocol::Command;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// A sealed memfd holding `text`, named after the config (as /proc/PID/fd shows it).
pub(super) fn sealed(config: &Path, text: &str) -> Result<OwnedFd, jail::SysError> {
    let name = config.file_name().unwrap_or_default().to_string_lossy();
    jail::memfd::sealed(&name, text.as_bytes())
}

/// Ask the runtime to reload, handing it the config's current text.
pub(super) fn write_reload(
    process: &Process,
    config: &Path,
    text: &str,
) -> Result<(), jail::SysError> {
    let memfd = sealed(config, text)?;
    jail::fd::send_byte_with_fd(process.link.as_fd(), Command::Reload.byte(), memfd.as_fd())
}
