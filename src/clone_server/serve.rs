//! The clone server's side: take the emperor's identity, say it is ready, then start one
//! runtime per request, as the emperor's child, and answer with its pid and pidfd.

use super::start::Copied;
use super::{in_process, RuntimeStart, MAX_MESSAGE, READY, SERVER_FD};
use crate::helper_identity::EmperorIdentity;
use jail::title::TitleRoom;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;
use tracing::{debug, error};

/// An answer: the runtime's pid (its pidfd attached), or why it did not start.
pub(super) type Reply = Result<i32, String>;

/// How the server starts runtimes.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Only those with a user namespace, each executing the runtime binary.
    Execute,
    /// Every runtime, each in a copy of this process ([`in_process`]), with the room its
    /// title is written in.
    InProcess(Option<TitleRoom>),
}

/// Serve the emperor on the inherited socket until it closes it, as `identity` (the
/// unprivileged emperor's) when given; `run_in_copies`: start every runtime in a copy of this
/// process (see [`in_process`]).
pub fn serve(identity: Option<EmperorIdentity>, run_in_copies: bool) -> ExitCode {
    let Some(socket) = crate::helper_identity::begin_helper("clone server", SERVER_FD, identity)
    else {
        return ExitCode::FAILURE;
    };
    let mode = match run_in_copies {
        true => {
            // Compiled once here, the default program is every copy's without compiling.
            jail::seccomp::build_ahead(jail::seccomp::Profile::Default);
            // Read once here, our user namespace is every copy's that stays in it (a copy
            // cloned into a new one reads its own).
            if let Err(e) = jail::userns::own_namespace() {
                debug!("clone server: {e}");
            }
            // Opened once here, every copy keeps them (its binary to hibernate with,
            // /proc/loadavg to ask whether the machine is busy, the word that says until
            // when starts go on).
            if let Err(e) = jail::ahead::open_for_copies() {
                debug!("clone server: {e}");
            }
            Mode::InProcess(TitleRoom::of_this_process())
        }
        false => Mode::Execute,
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
            start(&buf[..message.len], &message.fds, mode)
        };
        // What a request said stays in no later copy of this process.
        buf[..message.len].fill(0);
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
fn start(request: &[u8], fds: &[OwnedFd], mode: Mode) -> Result<(i32, OwnedFd), String> {
    super::starts_mark::starting();
    let start: RuntimeStart =
        serde_json::from_slice(request).map_err(|e| format!("a runtime's start: {e}"))?;
    let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut launch = start.launch(&raw).map_err(|e| e.to_string())?;
    launch.as_sibling();
    // Instead of a session of its own: this server leads a session with no controlling
    // terminal, so a runtime that stays in it, in a group of its own, is as far out of reach
    // of the emperor's terminal, without a scheduler autogroup per runtime (see
    // `Launch::new_process_group`).
    launch.new_process_group();
    let running = match mode {
        Mode::Execute if !start.user_namespace() => {
            // Only what the emperor cannot do cheaply itself comes here.
            return Err(format!(
                "{}: the clone server starts only runtimes with a user namespace",
                start.program.display()
            ));
        }
        Mode::Execute => start.start(&launch).map_err(|e| e.to_string())?,
        Mode::InProcess(room) => {
            if let Some(journal) = crate::logging::journal::socket_fd() {
                launch.keep_fd(journal);
            }
            match start.fork(&launch).map_err(|e| e.to_string())? {
                Copied::Runtime(running) => running,
                Copied::Copy(steps) => in_process::run_runtime(&start, steps, room),
            }
        }
    };
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
