//! The emperor's side: start the reader while the emperor is still root, send it configs, and
//! start it again if it is gone.

use super::frame::{read_frame, write_frame};
use super::{ReadReply, ReadRequest, MAX_REPLY, READER_FD, READY};
use crate::helper_identity::EmperorIdentity;
use jail::launch::{Launch, LaunchError, Running};
use nix::sys::socket::{getsockopt, sockopt};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

/// How long an answer may take: the reader's own patience with a worker, and some.
const ANSWER_PATIENCE: Duration = Duration::from_secs(10);
/// Requests sent ahead of their answers at most (see [`ConfigReader::read_ahead`]).
const AHEAD_REQUESTS: usize = 64;
/// What the kernel charges a frame in flight besides its bytes (skb and its page).
const FRAME_COST: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("starting the config reader {}: {source}", program.display())]
    Launch {
        program: PathBuf,
        source: LaunchError,
    },
    #[error("the config reader: {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the config reader did not get ready: {0}")]
    NotReady(String),
    /// It died, hung or answered nonsense: killed; the next request starts another.
    #[error("the config reader is gone ({0})")]
    Gone(String),
}

/// How to start a reader, and the one running.
#[derive(Debug)]
pub struct ConfigReader {
    binary: PathBuf,
    identity: Option<EmperorIdentity>,
    env: Vec<(String, String)>,
    memory_mib: u64,
    running: Option<Reader>,
    /// Starts so far (see [`ConfigReader::launch`]).
    starts: u64,
    /// Answers read ahead (see [`ConfigReader::read_ahead`]), until `forget_ahead`.
    ahead: Vec<(ReadRequest, ReadReply)>,
}

#[derive(Debug)]
struct Reader {
    process: Running,
    socket: UnixStream,
}

impl ConfigReader {
    /// Start `binary config-reader`, which takes `identity` once started, with `env` (the log
    /// settings); each of its workers may map `memory_mib` MiB.
    pub fn start(
        binary: &Path,
        identity: Option<EmperorIdentity>,
        env: Vec<(String, String)>,
        memory_mib: u64,
    ) -> Result<Self, ReaderError> {
        let mut reader = ConfigReader {
            binary: binary.to_path_buf(),
            identity,
            env,
            memory_mib,
            running: None,
            starts: 0,
            ahead: Vec::new(),
        };
        reader.running = Some(reader.launch()?);
        Ok(reader)
    }

    /// Its process and socket, for the binary that replaces the emperor (an upgrade).
    pub fn handover(&self) -> Option<(&Running, std::os::fd::BorrowedFd<'_>)> {
        self.running
            .as_ref()
            .map(|r| (&r.process, r.socket.as_fd()))
    }

    /// The reader the emperor this one replaces started (an upgrade): its first start is
    /// behind it (a reader started again has no capabilities to keep).
    pub fn adopt(
        binary: &Path,
        identity: Option<EmperorIdentity>,
        env: Vec<(String, String)>,
        memory_mib: u64,
        running: Option<(Running, UnixStream)>,
    ) -> Self {
        ConfigReader {
            binary: binary.to_path_buf(),
            identity,
            env,
            memory_mib,
            running: running.map(|(process, socket)| Reader { process, socket }),
            starts: 1,
            ahead: Vec::new(),
        }
    }

    pub fn pid(&self) -> Option<nix::unistd::Pid> {
        self.running.as_ref().map(|r| r.process.pid)
    }

    /// Have a worker load the config of `request` (or take the answer read ahead for exactly
    /// this request). A reader that is gone (killed from outside since the last request) is
    /// started again and asked once more; one that fails again is killed and the error
    /// returned (the next request starts another).
    pub fn read(&mut self, request: &ReadRequest) -> Result<ReadReply, ReaderError> {
        if let Some((_, reply)) = self.ahead.iter().find(|(asked, _)| asked == request) {
            return Ok(reply.clone());
        }
        match self.ask_running(request) {
            Err(ReaderError::Gone(reason)) => {
                warn!("the config reader is gone ({reason}): starting it again");
                self.ask_running(request)
            }
            other => other,
        }
    }

    /// Ask for all of `requests` at once, for the `read`s that follow to take their answers
    /// (until [`Self::forget_ahead`]): a window of them is sent before their answers are
    /// read, so the reader and its worker go from one to the next without waiting for the
    /// emperor. A reader that fails the exchange is killed and collected; the requests it
    /// did not answer are left to `read`, which starts another.
    pub fn read_ahead(&mut self, requests: &[ReadRequest]) {
        if self.running_reader().is_err() {
            return;
        }
        let Some(reader) = self.running.as_mut() else {
            return;
        };
        let send_buffer = getsockopt(&reader.socket, sockopt::SndBuf).unwrap_or(0);
        // Each serialized once: its size decides its window, its bytes are sent.
        let frames: Vec<Vec<u8>> = requests.iter().map(serialized).collect();
        let mut sent = 0;
        while sent < requests.len() {
            let end = sent + window(&frames[sent..], send_buffer);
            let answered = exchange(
                &mut reader.socket,
                &requests[sent..end],
                &frames[sent..end],
                &mut self.ahead,
            );
            if let Err(e) = answered {
                warn!("{e}: reading ahead stopped");
                self.kill_running();
                return;
            }
            sent = end;
        }
    }

    /// Drop the answers read ahead: a later `read` asks afresh.
    pub fn forget_ahead(&mut self) {
        self.ahead.clear();
    }

    /// Ask the running reader, started first if there is none; a reader that fails the
    /// exchange is killed and collected.
    fn ask_running(&mut self, request: &ReadRequest) -> Result<ReadReply, ReaderError> {
        let reader = self.running_reader()?;
        let asked = send(&mut reader.socket, &serialized(request))
            .and_then(|()| receive(&mut reader.socket));
        if let Err(ReaderError::Gone(_)) = &asked {
            self.kill_running();
        }
        asked
    }

    /// The running reader, started first if there is none.
    fn running_reader(&mut self) -> Result<&mut Reader, ReaderError> {
        if self.running.is_none() {
            let reader = self.launch()?;
            self.running = Some(reader);
        }
        Ok(self.running.as_mut().expect("started above"))
    }

    /// Kill and collect a reader that failed an exchange: the next request starts another.
    fn kill_running(&mut self) {
        if let Some(reader) = self.running.take() {
            let _ = reader.process.signal(libc::SIGKILL);
            let _ = reader.process.wait();
        }
    }

    fn launch(&mut self) -> Result<Reader, ReaderError> {
        let launch_error = |source| ReaderError::Launch {
            program: self.binary.clone(),
            source,
        };
        let io = |what| move |source| ReaderError::Io { what, source };
        let (ours, theirs) = UnixStream::pair().map_err(io("socketpair"))?;
        ours.set_read_timeout(Some(ANSWER_PATIENCE))
            .map_err(io("SO_RCVTIMEO"))?;
        ours.set_write_timeout(Some(ANSWER_PATIENCE))
            .map_err(io("SO_SNDTIMEO"))?;
        let dev_null = std::fs::File::open("/dev/null").map_err(io("open /dev/null"))?;
        let mut argv = vec![
            self.binary.display().to_string(),
            "config-reader".to_string(),
            "--memory-mib".to_string(),
            self.memory_mib.to_string(),
        ];
        // Only the first start happens before the emperor drops privileges: a reader started
        // again by the unprivileged emperor has its uid already and no capabilities to keep
        // (execve cleared them), so its tenants' configs are refused as unreadable.
        let identity = self.identity.filter(|_| self.starts == 0);
        if let Some(id) = identity {
            argv.extend(id.helper_args());
        }
        let mut launch = Launch::new(&self.binary, &argv).map_err(launch_error)?;
        for (key, value) in &self.env {
            launch.env(key, value).map_err(launch_error)?;
        }
        // Its own session: a ^C on the emperor's terminal is the emperor's to handle.
        launch
            .map_fd(dev_null.as_raw_fd(), 0)
            .map_fd(theirs.as_fd().as_raw_fd(), READER_FD)
            .new_session()
            .parent_death_signal(libc::SIGKILL);
        let process = launch
            .start()
            .and_then(|launched| launched.release())
            .map_err(launch_error)?;
        drop(theirs);
        let mut reader = Reader {
            process,
            socket: ours,
        };
        match read_frame(&mut reader.socket, READY.len()) {
            Ok(Some(ready)) if ready == READY => {}
            answer => {
                let _ = reader.process.signal(libc::SIGKILL);
                let _ = reader.process.wait();
                return Err(ReaderError::NotReady(match answer {
                    Err(e) => e.to_string(),
                    _ => "it exited (its log says why)".to_string(),
                }));
            }
        }
        self.starts += 1;
        info!(pid = reader.process.pid.as_raw(), "config reader started");
        Ok(reader)
    }
}

fn serialized(request: &ReadRequest) -> Vec<u8> {
    serde_json::to_vec(request).expect("a request serializes")
}

/// Send one request's frame; any failure of the exchange means the reader is gone.
fn send(socket: &mut UnixStream, frame: &[u8]) -> Result<(), ReaderError> {
    write_frame(socket, frame).map_err(|e| ReaderError::Gone(format!("sending: {e}")))
}

/// The answer to the oldest request not answered yet (the reader answers in order).
fn receive(socket: &mut UnixStream) -> Result<ReadReply, ReaderError> {
    let answer = match read_frame(socket, MAX_REPLY) {
        Ok(Some(answer)) => answer,
        Ok(None) => return Err(ReaderError::Gone("it exited".to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            return Err(ReaderError::Gone(format!(
                "no answer in {} s",
                ANSWER_PATIENCE.as_secs()
            )))
        }
        Err(e) => return Err(ReaderError::Gone(e.to_string())),
    };
    serde_json::from_slice(&answer)
        .map_err(|e| ReaderError::Gone(format!("an answer that does not parse: {e}")))
}

/// Send all of `requests` (`frames`, serialized), then take their answers in order into
/// `answered`.
fn exchange(
    socket: &mut UnixStream,
    requests: &[ReadRequest],
    frames: &[Vec<u8>],
    answered: &mut Vec<(ReadRequest, ReadReply)>,
) -> Result<(), ReaderError> {
    for frame in frames {
        send(socket, frame)?;
    }
    for request in requests {
        answered.push((request.clone(), receive(socket)?));
    }
    Ok(())
}

/// How many of `frames` (from the first) go out before their answers are read: at most
/// [`AHEAD_REQUESTS`], and as many bytes as a quarter of the socket's send buffer holds
/// (each frame costs the kernel about a page besides its bytes), so that sending them never
/// waits for the reader, which may itself be waiting for its answers to be read. At least
/// one: a request alone waits only for the reader to read it.
fn window(frames: &[Vec<u8>], send_buffer: usize) -> usize {
    let budget = send_buffer / 4;
    let mut bytes = 0;
    let fitting = frames
        .iter()
        .take(AHEAD_REQUESTS)
        .take_while(|frame| {
            bytes += frame.len() + FRAME_COST;
            bytes <= budget
        })
        .count();
    fitting.max(1).min(frames.len())
}

impl Drop for ConfigReader {
    /// Its socket closes, so it exits: collected here (unless the emperor's reaper got it).
    fn drop(&mut self) {
        if let Some(reader) = self.running.take() {
            let _ = reader.socket.shutdown(std::net::Shutdown::Both);
            let _ = reader.process.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> ReadRequest {
        ReadRequest {
            path: PathBuf::from(path),
            text: None,
            sets: Vec::new(),
            includes: Vec::new(),
            environment: Vec::new(),
            owner: None,
            keys: vec!["on-demand-socket".to_string()],
        }
    }

    #[test]
    fn a_window_fits_a_quarter_of_the_send_buffer_and_holds_at_least_one() {
        let requests: Vec<_> = (0..100)
            .map(|_| serialized(&request("/etc/vassals/app.ini")))
            .collect();
        let cost = requests[0].len() + FRAME_COST;
        assert_eq!(window(&requests, 4 * 3 * cost), 3);
        assert_eq!(window(&requests, 4 * 3 * cost - 1), 2);
        assert_eq!(
            window(&requests, 1 << 30),
            AHEAD_REQUESTS,
            "never more than 64"
        );
        // A request too big for the buffer still goes, alone: it waits only for the reader
        // to read it.
        assert_eq!(window(&requests, 0), 1);
        assert_eq!(window(&requests[..2], 1 << 30), 2);
        assert_eq!(window(&[], 1 << 30), 0);
    }
}
