//! The clone server's side: take the emperor's identity, say it is ready, then start one
//! runtime per request, as the emperor's child, and answer with its pid and pidfd.

use super::{RuntimeStart, MAX_MESSAGE, READY, SERVER_FD};
use crate::helper_identity::EmperorIdentity;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;
use tracing::{debug, error};

/// An answer: the runtime's pid (its pidfd attached), or why it did not start.
pub(super) type Reply = Result<i32, String>;

/// Serve the emperor on the inherited socket until it closes it, as `identity` (the
/// unprivileged emperor's) when given.
pub fn serve(identity: Option<EmperorIdentity>) -> ExitCode {
    let Some(socket) = crate::helper_identity::begin_helper("clone server", SERVER_FD, identity)
    else {
        return ExitCode::FAILURE;
    };
    if let Err(e) = jail::fd::send_message(socket.as_fd(), READY, &[]) {
        error!("clone server: {e}");
        return ExitCode::FAILURE;
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let message = match jail::fd::recv_message(socket.as_fd(), &mut buf) {
            Ok(message) if message.len == 0 && !message.truncated => return ExitCode::SUCCESS,
            Ok(message) => message,
            Err(e) => {
                error!("clone server: {e}");
                return ExitCode::FAILURE;
            }
        };
        let started = if message.truncated {
            Err(format!(
                "a runtime's start larger than {MAX_MESSAGE} bytes or with too many fds"
            ))
        } else {
            start(&buf[..message.len], &message.fds)
        };
        // The fds handed with the request are closed before the answer: the emperor's
        // protocol socket must have no copy left here once the emperor knows the runtime.
        drop(message.fds);
        if let Err(e) = answer(socket.as_fd(), started) {
            error!("clone server: {e}");
            return ExitCode::FAILURE;
        }
    }
}

/// Start one runtime from its request: a sibling of this server, the emperor's child.
fn start(request: &[u8], fds: &[OwnedFd]) -> Result<(i32, OwnedFd), String> {
    let start: RuntimeStart =
        serde_json::from_slice(request).map_err(|e| format!("a runtime's start: {e}"))?;
    if !start.user_namespace() {
        // Only what the emperor cannot do cheaply itself comes here.
        return Err(format!(
            "{}: the clone server starts only runtimes with a user namespace",
            start.program.display()
        ));
    }
    let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut launch = start.launch(&raw).map_err(|e| e.to_string())?;
    launch.as_sibling();
    let running = start.start(&launch).map_err(|e| e.to_string())?;
    debug!(pid = running.pid.as_raw(), "cloned a runtime");
    Ok((running.pid.as_raw(), running.pidfd))
}

fn answer(
    socket: BorrowedFd<'_>,
    started: Result<(i32, OwnedFd), String>,
) -> Result<(), jail::SysError> {
    let (reply, pidfd): (Reply, _) = match started {
        Ok((pid, pidfd)) => (Ok(pid), Some(pidfd)),
        Err(reason) => (Err(reason), None),
    };
    let bytes = serde_json::to_vec(&reply).expect("a reply serializes");
    let fds: Vec<BorrowedFd<'_>> = pidfd.iter().map(|fd| fd.as_fd()).collect();
    jail::fd::send_message(socket, &bytes, &fds)
}
