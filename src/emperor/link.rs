//! Commands written to a runtime over its link. The link is non-blocking: a command it cannot
//! take at once (EAGAIN: the runtime has not read what it was sent) waits in the runtime's
//! [`Outbox`](super::outbox::Outbox) and the link is watched for EPOLLOUT until the queue is
//! written, so a stop or a reload is never lost. Each call is handed the vassal (and its slot,
//! which names it in epoll tokens) and the epoll set.

use super::table::{Process, Vassal};
use super::TOKEN_VASSAL;
use crate::protocol::Command;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use std::io::{ErrorKind, Write};
use tracing::{debug, warn};

/// Send `command` to the vassal's runtime: now, or queued behind what is already waiting.
pub fn send(slot: usize, v: &mut Vassal, epoll: &Epoll, command: Command) {
    let Some(process) = v.process.as_mut().filter(|p| !p.link_closed) else {
        return;
    };
    // Behind a queue, the command waits its turn (EPOLLOUT is already watched).
    let queue_was_empty = process.outbox.is_empty();
    process.outbox.push(command);
    if queue_was_empty {
        flush(slot, v, epoll);
    }
}

/// Write what the vassal's outbox holds, as far as the link takes it; watch the link for
/// EPOLLOUT while anything is left.
pub fn flush(slot: usize, v: &mut Vassal, epoll: &Epoll) {
    let Some(mut process) = v.process.take() else {
        return;
    };
    while let Some(command) = process.outbox.front() {
        match write_command(v, &process, command) {
            Ok(()) => process.outbox.pop(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                debug!(vassal = %v.name, "{command:?} queued: its link is full");
                break;
            }
            Err(e) => {
                // The runtime is gone or going: its exit (SIGCHLD) decides what follows.
                warn!(vassal = %v.name, "cannot send {command:?}: {e}");
                process.outbox.clear();
            }
        }
    }
    let watch_out = !process.outbox.is_empty();
    if watch_out != process.watching_out && !process.link_closed {
        let mut flags = EpollFlags::EPOLLIN;
        if watch_out {
            flags |= EpollFlags::EPOLLOUT;
        }
        let mut event = EpollEvent::new(flags, TOKEN_VASSAL + slot as u64);
        match epoll.modify(&process.link, &mut event) {
            Ok(()) => process.watching_out = watch_out,
            Err(e) => warn!(vassal = %v.name, "epoll_ctl(MOD) for its link: {e}"),
        }
    }
    v.process = Some(process);
}

/// One command on the link; a reload of a config from a store carries its current text as a
/// fresh sealed memfd.
fn write_command(v: &Vassal, process: &Process, command: Command) -> std::io::Result<()> {
    match (&v.config, command) {
        (Some(text), Command::Reload) => super::inline::write_reload(process, &v.path, text)
            .map_err(|e| match e.errno {
                nix::errno::Errno::EAGAIN => ErrorKind::WouldBlock.into(),
                errno => std::io::Error::from_raw_os_error(errno as i32),
            }),
        _ => (&process.link).write_all(&[command.byte()]),
    }
}
