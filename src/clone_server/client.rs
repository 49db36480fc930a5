//! The emperor's side: start the clone server while the emperor is still root and small, then
//! send it runtime starts and take back their pids and pidfds.

use super::serve::Reply;
use super::{RuntimeStart, MAX_MESSAGE, READY, SERVER_FD};
use crate::helper_identity::EmperorIdentity;
use jail::launch::{Launch, LaunchError, Running};
use nix::sys::socket::{setsockopt, socketpair, sockopt, AddressFamily, SockFlag, SockType};
use nix::sys::time::TimeVal;
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// How long a start may take before the server counts as hung (a start takes milliseconds).
const ANSWER_PATIENCE: Duration = Duration::from_secs(30);
/// Largest answer read: a pid, or a failed start's reason (which names a path or two).
const MAX_REPLY: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CloneServerError {
    #[error("socketpair(SOCK_SEQPACKET) for the clone server: {0}")]
    SocketPair(nix::errno::Errno),
    #[error("setsockopt(SO_RCVTIMEO) on the clone server's socket: {0}")]
    Timeout(nix::errno::Errno),
    #[error("starting the clone server {}: {source}", program.display())]
    Launch {
        program: std::path::PathBuf,
        source: LaunchError,
    },
    #[error("the clone server did not get ready: {0}")]
    NotReady(String),
}

/// Why a start through the server failed.
#[derive(Debug)]
pub enum Failure {
    /// The server is dead, hung or talks nonsense: it has been killed; start runtimes here.
    Gone(String),
    /// The server is fine; this runtime could not start (the reason, as a local start says it).
    Refused(String),
}

/// A running clone server.
#[derive(Debug)]
pub struct CloneServer {
    running: Running,
    socket: OwnedFd,
    /// It starts every runtime, in copies of itself (`--in-process`).
    in_process: bool,
}

impl CloneServer {
    /// Its process and socket, for the binary that replaces the emperor (an upgrade).
    pub fn handover(&self) -> (&Running, BorrowedFd<'_>) {
        (&self.running, self.socket.as_fd())
    }

    /// The server the emperor this one replaces started (an upgrade).
    /// Only an executing server is handed over: one running runtimes in copies of itself
    /// would go on running the old binary's code.
    pub fn adopt(running: Running, socket: OwnedFd) -> Self {
        CloneServer {
            running,
            socket,
            in_process: false,
        }
    }

    /// Whether it starts every runtime (in copies of itself), or only those with a user
    /// namespace.
    pub fn starts_every_runtime(&self) -> bool {
        self.in_process
    }

    /// Start `binary clone-server` (the runtime binary), taking `identity` once started, and
    /// wait until it says it is ready. `env` is its environment (the log settings), `dev_null`
    /// its stdin; `in_process`: it starts every runtime, in copies of itself.
    pub fn start(
        binary: &Path,
        identity: Option<EmperorIdentity>,
        env: &[(String, String)],
        dev_null: BorrowedFd<'_>,
        in_process: bool,
    ) -> Result<Self, CloneServerError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(CloneServerError::SocketPair)?;
        let patience = TimeVal::new(ANSWER_PATIENCE.as_secs() as _, 0);
        setsockopt(&ours, sockopt::ReceiveTimeout, &patience).map_err(CloneServerError::Timeout)?;
        let mut argv = vec![binary.display().to_string(), "clone-server".to_string()];
        if in_process {
            argv.push("--in-process".to_string());
        }
        if let Some(id) = identity {
            argv.extend(id.helper_args());
        }
        let launch_error = |source| CloneServerError::Launch {
            program: binary.to_path_buf(),
            source,
        };
        let mut launch = Launch::new(binary, &argv).map_err(launch_error)?;
        for (key, value) in env {
            launch.env(key, value).map_err(launch_error)?;
        }
        if in_process {
            // Room for its copies' command lines (see `in_process`).
            let room = ".".repeat(super::TITLE_ROOM_BYTES);
            launch
                .env(super::TITLE_ROOM_VARIABLE, room)
                .map_err(launch_error)?;
        }
        // Its own session: a ^C on the emperor's terminal is the emperor's to handle.
        launch
            .map_fd(dev_null.as_raw_fd(), 0)
            .map_fd(theirs.as_raw_fd(), SERVER_FD)
            .new_session()
            .parent_death_signal(libc::SIGKILL);
        let running = launch
            .start()
            .and_then(|launched| launched.release())
            .map_err(launch_error)?;
        drop(theirs);
        let server = CloneServer {
            running,
            socket: ours,
            in_process,
        };
        let mut buf = [0u8; 64];
        match jail::fd::recv_message(server.socket.as_fd(), &mut buf) {
            Ok(m) if &buf[..m.len] == READY => Ok(server),
            Ok(_) => Err(CloneServerError::NotReady(
                "it exited (its log says why)".to_string(),
            )),
            Err(e) => Err(CloneServerError::NotReady(e.to_string())),
        }
    }

    pub fn pid(&self) -> Pid {
        self.running.pid
    }

    /// Have the server start `start` with `fds` (in the order `start` names them); block until
    /// the runtime has exec'ed. The runtime is this process's child.
    pub fn start_runtime(
        &self,
        start: &RuntimeStart,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Running, Failure> {
        self.send_start(start, fds)?;
        self.receive_started()
    }

    /// Send the server `start` with `fds`, without waiting: answers come back in the order
    /// the starts were sent ([`CloneServer::receive_started`]), so a batch of spawns costs
    /// one wait, not one per spawn. The fds are the message's once it is sent.
    pub fn send_start(&self, start: &RuntimeStart, fds: &[BorrowedFd<'_>]) -> Result<(), Failure> {
        let request = serde_json::to_vec(start).expect("a start serializes");
        if request.len() > MAX_MESSAGE {
            return Err(Failure::Refused(format!(
                "{}: a command line of {} bytes is too long for the clone server",
                start.program.display(),
                request.len()
            )));
        }
        jail::fd::send_message(self.socket.as_fd(), &request, fds)
            .map_err(|e| self.gone(e.to_string()))
    }

    /// The answer to the oldest start sent and not yet answered: its runtime, this process's
    /// child.
    pub fn receive_started(&self) -> Result<Running, Failure> {
        let mut buf = [0u8; MAX_REPLY];
        let message = jail::fd::recv_message(self.socket.as_fd(), &mut buf).map_err(|e| {
            if e.errno == nix::errno::Errno::EAGAIN {
                self.gone(format!("no answer in {} s", ANSWER_PATIENCE.as_secs()))
            } else {
                self.gone(e.to_string())
            }
        })?;
        if message.len == 0 {
            return Err(self.gone("it exited".to_string()));
        }
        if message.truncated {
            return Err(self.gone(format!("an answer over {MAX_REPLY} bytes")));
        }
        let reply: Reply = serde_json::from_slice(&buf[..message.len])
            .map_err(|e| self.gone(format!("an answer that does not parse: {e}")))?;
        let mut fds = message.fds;
        match (reply, fds.pop()) {
            (Ok(pid), Some(pidfd)) if fds.is_empty() => Ok(Running {
                pid: Pid::from_raw(pid),
                pidfd,
            }),
            (Ok(pid), _) => Err(self.gone(format!("runtime {pid} answered without one pidfd"))),
            (Err(reason), _) => Err(Failure::Refused(reason)),
        }
    }

    /// The server cannot be trusted with another start: kill it (the emperor reaps it).
    fn gone(&self, reason: String) -> Failure {
        let _ = self.running.signal(libc::SIGKILL);
        Failure::Gone(reason)
    }
}

impl Drop for CloneServer {
    /// Its socket closes, so it exits: collected here, unless the emperor's reaping of strays
    /// got it first (after a death of its own).
    fn drop(&mut self) {
        let _ =
            nix::sys::socket::shutdown(self.socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = self.running.wait();
    }
}
