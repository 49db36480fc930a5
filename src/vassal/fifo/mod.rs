//! The master FIFO (uWSGI's `master-fifo`): a named pipe the runtime reads one-byte commands
//! from. Up to ten paths (slots 0-9), the first bound at start; each FIFO is mode 0600, owned by
//! the runtime's uid and read non-blocking. A slot switch takes effect when its writer closes:
//! the FIFO is then made anew at the selected slot's path (so `echo 1 > slot0` moves it to slot
//! 1 after that write). At the same path the FIFO is kept, not made anew as uWSGI does: a
//! writer that opened it meanwhile would be left without a reader.

use super::line_budget::LineBudget;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// uWSGI's slot count: `0` to `9`.
pub const MAX_SLOTS: usize = 10;
/// Bytes read per wake-up, so a flooding writer cannot starve the runtime's other duties.
const READ_BUDGET: usize = 64 * 1024;
/// At most one line about unknown bytes per this long (with the count since the last one).
const UNKNOWN_QUIET: Duration = Duration::from_secs(1);

/// What one byte written to the FIFO asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoCommand {
    /// `0`-`9`: bind this slot when the current writer closes.
    Slot(usize),
    /// `r`, `w` (graceful) and `R`, `W` (brutal): restart the payload on a fresh config.
    Reload { brutal: bool },
    /// `q` (graceful) and `Q` (brutal): stop the payload and the vassal for good.
    Stop { brutal: bool },
    /// `p`: SIGSTOP the payload's process group, or SIGCONT it when paused.
    TogglePause,
    /// `s`: a stats line in the log.
    Stats,
    /// `P`: write the payload's pid to `pidfile`.
    Pidfiles,
    /// `B`: ask the emperor for reinforcement (byte 30).
    Broodlord,
    /// `l`: reopen the payload's log file (`logto`), `L`: rotate it.
    Log { rotate: bool },
    /// A uWSGI command with no meaning for a single-payload runtime, and why.
    Refused(u8, &'static str),
    /// Anything else: ignored (counted in the log).
    Unknown(u8),
}

impl FifoCommand {
    /// The command a byte stands for; `None` for a newline (what `echo` adds), ignored silently.
    pub fn decode(byte: u8) -> Option<FifoCommand> {
        use FifoCommand::*;
        Some(match byte {
            b'\n' => return None,
            b'0'..=b'9' => Slot(usize::from(byte - b'0')),
            b'r' | b'w' => Reload { brutal: false },
            b'R' | b'W' => Reload { brutal: true },
            b'q' => Stop { brutal: false },
            b'Q' => Stop { brutal: true },
            b'p' => TogglePause,
            b's' => Stats,
            b'P' => Pidfiles,
            b'B' => Broodlord,
            b'+' | b'-' => Refused(byte, "no workers to add or remove: the payload is one process, there is no cheaper mode"),
            b'C' => Refused(byte, "no cheap mode: the runtime does not restart a payload on demand (on-demand vassals are the emperor's job)"),
            b'c' => Refused(byte, "no chain reload: there is one payload, not a set of workers (use r)"),
            b'f' => Refused(byte, "no master re-fork: the runtime is its jail's init and cannot be duplicated"),
            b'S' => Refused(byte, "no subscriptions: the runtime subscribes to no router"),
            b'l' => Log { rotate: false },
            b'L' => Log { rotate: true },
            b'E' => Refused(byte, "a vassal cannot make its emperor rescan (and need not: it sees config changes at once)"),
            other => Unknown(other),
        })
    }
}

/// The meaningful and refused commands of one read, in order (a refused byte once per read),
/// and how many unknown bytes it held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub commands: Vec<FifoCommand>,
    pub unknown: usize,
    pub last_unknown: Option<u8>,
}

pub fn decode_all(bytes: &[u8]) -> Batch {
    let mut batch = Batch::default();
    for command in bytes.iter().filter_map(|&b| FifoCommand::decode(b)) {
        match command {
            FifoCommand::Unknown(byte) => {
                batch.unknown += 1;
                batch.last_unknown = Some(byte);
            }
            FifoCommand::Refused(..) if batch.commands.contains(&command) => {}
            other => batch.commands.push(other),
        }
    }
    batch
}

/// A failed step, naming the FIFO and the syscall: `master-fifo /run/app.fifo: mkfifo: EEXIST`.
#[derive(Debug, thiserror::Error)]
#[error("master-fifo {}: {step}: {errno}", path.display())]
pub struct FifoError {
    pub path: PathBuf,
    pub step: &'static str,
    pub errno: Errno,
}

fn fail<'a>(path: &'a Path, step: &'static str) -> impl FnOnce(std::io::Error) -> FifoError + 'a {
    move |e| FifoError {
        path: path.to_path_buf(),
        step,
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// No writer has the FIFO open (read returned end of file).
    WritersGone,
    /// A writer still has it open and has nothing more for now.
    WriterOpen,
    /// The read budget ran out with bytes still waiting.
    Budget,
}

#[derive(Debug)]
pub struct MasterFifo {
    slots: Vec<PathBuf>,
    current: usize,
    bound: PathBuf,
    file: File,
    /// The FIFO, watched edge-triggered. A level-triggered poll on a FIFO whose writer has
    /// gone reports a hang-up for ever; an edge comes only when a writer writes or the last
    /// one closes, so the same FIFO serves writer after writer and one racing our read of the
    /// previous writer's end loses nothing. The runtime polls this epoll's fd.
    edges: Epoll,
    unknown_pending: usize,
    unknown_warned: Option<Instant>,
    /// How many command lines may still go to the log at their own level.
    lines: LineBudget,
}

impl MasterFifo {
    /// Bind the first slot. `slots` holds 1 to [`MAX_SLOTS`] paths.
    pub fn open(slots: Vec<PathBuf>) -> Result<MasterFifo, FifoError> {
        let bound = slots[0].clone();
        let file = create(&bound)?;
        let edges = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|errno| FifoError {
            path: bound.clone(),
            step: "epoll_create1",
            errno,
        })?;
        watch(&edges, &file, &bound)?;
        info!(path = %bound.display(), "master FIFO ready");
        Ok(MasterFifo {
            slots,
            current: 0,
            bound,
            file,
            edges,
            unknown_pending: 0,
            unknown_warned: None,
            lines: LineBudget::default(),
        })
    }

    pub fn slots(&self) -> &[PathBuf] {
        &self.slots
    }

    /// The path of the FIFO being read, and its slot.
    pub fn bound(&self) -> (&Path, usize) {
        (&self.bound, self.current)
    }

    /// Choose the slot bound when the current writer closes (beyond the list: the first,
    /// as uWSGI does).
    fn select(&mut self, slot: usize) {
        self.current = if slot < self.slots.len() { slot } else { 0 };
        // A digit only chooses; the move itself is logged when it happens.
        debug!(
            slot = self.current,
            path = %self.slots[self.current].display(),
            "master FIFO: slot selected"
        );
    }

    /// The commands pending, without blocking. Slot switches are applied here, in order, so
    /// `1` then the writer's close binds slot 1. Unknown bytes are logged at most once a second.
    pub fn read_commands(&mut self) -> Result<Vec<FifoCommand>, FifoError> {
        // Take the edges that woke us; whatever comes after this makes a new one.
        let mut woken = [EpollEvent::empty(); 1];
        let _ = self.edges.wait(&mut woken, EpollTimeout::ZERO);
        let mut bytes = Vec::new();
        let drained = drain(&mut self.file, &mut bytes, &self.bound)?;
        let mut commands = self.take(&bytes);
        match drained {
            // No new edge will come for what is left: re-arm, which queues one if it is ready.
            Drained::Budget => rearm(&self.edges, &self.file, &self.bound)?,
            Drained::WritersGone => self.move_to_selected_slot(&mut commands)?,
            Drained::WriterOpen => {}
        }
        Ok(commands)
    }

    /// Once a writer has gone, bind the selected slot's path if it is not the one bound (or if
    /// our FIFO is no longer at it: someone removed or replaced it). The
    /// FIFO left behind is read once more: a slot switch in what it still held has no writer
    /// left to wait for, so it moves at once (a bounded number of times).
    fn move_to_selected_slot(&mut self, commands: &mut Vec<FifoCommand>) -> Result<(), FifoError> {
        for _ in 0..MAX_SLOTS {
            let path = self.slots[self.current].clone();
            if path == self.bound && is_still_at(&path, &self.file) {
                break;
            }
            let fresh = create(&path)?;
            watch(&self.edges, &fresh, &path)?;
            let mut old = std::mem::replace(&mut self.file, fresh);
            let _ = self.edges.delete(&old);
            if path == self.bound {
                info!(path = %path.display(), "master FIFO made anew (its path was removed or replaced)");
            } else {
                info!(path = %path.display(), slot = self.current, "master FIFO moved");
            }
            let left = std::mem::replace(&mut self.bound, path);
            let mut bytes = Vec::new();
            drain(&mut old, &mut bytes, &left)?;
            commands.extend(self.take(&bytes));
        }
        Ok(())
    }

    /// Decode `bytes`, applying slot switches and counting unknown bytes.
    fn take(&mut self, bytes: &[u8]) -> Vec<FifoCommand> {
        let batch = decode_all(bytes);
        self.note_unknown(batch.unknown, batch.last_unknown);
        let mut commands = batch.commands;
        commands.retain(|command| match command {
            FifoCommand::Slot(slot) => {
                self.select(*slot);
                false
            }
            _ => true,
        });
        commands
    }

    /// Whether the next command's line goes to the log at its own level (else at debug).
    pub fn loud(&mut self) -> bool {
        self.lines.loud(Instant::now())
    }

    fn note_unknown(&mut self, count: usize, last: Option<u8>) {
        self.unknown_pending += count;
        if self.unknown_pending == 0 {
            return;
        }
        let now = Instant::now();
        if self
            .unknown_warned
            .is_some_and(|at| now.duration_since(at) < UNKNOWN_QUIET)
        {
            return;
        }
        warn!(
            count = self.unknown_pending,
            last = last.unwrap_or_default(),
            path = %self.bound.display(),
            "master FIFO: ignoring unknown command bytes"
        );
        self.unknown_pending = 0;
        self.unknown_warned = Some(now);
    }
}

impl AsFd for MasterFifo {
    /// The fd to poll for readability: the epoll set watching the FIFO.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.edges.0.as_fd()
    }
}

/// Whether `path` still names the FIFO `file` reads.
fn is_still_at(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(there), Ok(ours)) => (there.dev(), there.ino()) == (ours.dev(), ours.ino()),
        _ => false,
    }
}

const EDGES: EpollFlags = EpollFlags::EPOLLIN.union(EpollFlags::EPOLLET);

fn watch(edges: &Epoll, file: &File, path: &Path) -> Result<(), FifoError> {
    edges
        .add(file, EpollEvent::new(EDGES, 0))
        .map_err(|errno| FifoError {
            path: path.to_path_buf(),
            step: "epoll_ctl(EPOLL_CTL_ADD)",
            errno,
        })
}

fn rearm(edges: &Epoll, file: &File, path: &Path) -> Result<(), FifoError> {
    edges
        .modify(file, &mut EpollEvent::new(EDGES, 0))
        .map_err(|errno| FifoError {
            path: path.to_path_buf(),
            step: "epoll_ctl(EPOLL_CTL_MOD)",
            errno,
        })
}

/// Read what is pending into `out`, up to [`READ_BUDGET`].
fn drain(file: &mut File, out: &mut Vec<u8>, path: &Path) -> Result<Drained, FifoError> {
    let mut buf = [0u8; 4096];
    let start = out.len();
    while out.len() - start < READ_BUDGET {
        match file.read(&mut buf) {
            Ok(0) => return Ok(Drained::WritersGone),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Drained::WriterOpen),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(path, "read")(e)),
        }
    }
    Ok(Drained::Budget)
}

/// A new FIFO at `path` (mode 0600, this process's uid), opened for reading, non-blocking. It
/// is made beside `path` and renamed over it, so a writer always finds a FIFO with a reader.
/// Whatever is at `path` must be a FIFO: nothing else is replaced.
fn create(path: &Path) -> Result<File, FifoError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_fifo() => {
            return Err(FifoError {
                path: path.to_path_buf(),
                step: "exists and is not a FIFO",
                errno: Errno::EEXIST,
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(fail(path, "lstat")(e)),
    }
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}.new", std::process::id()));
    let staged = PathBuf::from(staged);
    let _ = std::fs::remove_file(&staged);
    nix::unistd::mkfifo(&staged, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|errno| FifoError {
        path: path.to_path_buf(),
        step: "mkfifo",
        errno,
    })?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&staged)
        .map_err(fail(path, "open"));
    let file = file.and_then(|f| {
        std::fs::rename(&staged, path)
            .map_err(fail(path, "rename"))
            .map(|()| f)
    });
    if file.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    file
}

#[cfg(test)]
mod tests;
