//! The payload's output: its stdout and stderr are a pipe this runtime reads, so every line
//! it writes reaches the emperor's log tagged with its vassal (the `vassal{config=...}:payload`
//! span), or, with `logto`, the vassal's own log file, opened by this runtime with the jail's
//! identity (a tenant's file, as the tenant) and rotated past `log-maxsize`. A uWSGI
//! application's `logto` is uWSGI's own: it opens the file itself.

use crate::config::{Config, ConfigError};
use crate::policy::payload::PayloadKind;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use tracing::{info, warn};

/// The longest line relayed whole; a longer one is cut into pieces of this size.
const MAX_LINE: usize = 4096;
/// Bytes read per wake-up: a chatty payload cannot keep the runtime from its other work.
const READ_BUDGET: usize = 64 << 10;

/// Where a binary patch's output goes (`logto` / `logto2`, `log-maxsize`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTarget {
    pub file: Option<PathBuf>,
    pub max_size: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("the payload's output: pipe2: {0}")]
    Pipe(nix::errno::Errno),
    #[error("option \"logto\": open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no log file to reopen or rotate: this vassal has no logto")]
    NoLogFile,
}

/// The config's log options; a uWSGI application keeps them for uWSGI.
pub fn log_target(config: &Config, kind: PayloadKind) -> Result<LogTarget, OutputError> {
    if kind == PayloadKind::Uwsgi {
        return Ok(LogTarget::default());
    }
    let file = ["logto", "logto2"]
        .iter()
        .find_map(|key| config.get(key))
        .map(|entry| PathBuf::from(entry.value.trim()));
    let max_size = config.get_parsed::<u64>("log-maxsize")?;
    Ok(LogTarget { file, max_size })
}

/// The vassal's own log file, rotated by size.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_size: Option<u64>,
}

impl LogFile {
    fn open(path: PathBuf, max_size: Option<u64>) -> Result<Self, OutputError> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|source| OutputError::Open {
                path: path.clone(),
                source,
            })?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile {
            path,
            file,
            written,
            max_size,
        })
    }

    fn write_line(&mut self, line: &[u8]) {
        if self
            .max_size
            .is_some_and(|max| self.written > 0 && self.written + line.len() as u64 + 1 > max)
        {
            self.rotate();
        }
        let mut record = Vec::with_capacity(line.len() + 1);
        record.extend_from_slice(line);
        record.push(b'\n');
        match self.file.write_all(&record) {
            Ok(()) => self.written += record.len() as u64,
            Err(e) => warn!("the payload's log {}: write: {e}", self.path.display()),
        }
    }

    /// uWSGI's rotation: the full file becomes `PATH.<unix time>`, a new one is opened.
    fn rotate(&mut self) {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut rotated = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        let mut n = 1;
        while rotated.exists() {
            rotated = PathBuf::from(format!("{}.{stamp}.{n}", self.path.display()));
            n += 1;
        }
        if let Err(e) = std::fs::rename(&self.path, &rotated) {
            warn!(
                "the payload's log {}: rename for rotation: {e}",
                self.path.display()
            );
            return;
        }
        match LogFile::open(self.path.clone(), self.max_size) {
            Ok(fresh) => *self = fresh,
            Err(e) => warn!("{e}"),
        }
    }
}

/// The output while its runtime hibernates: fd numbers and the log file's name and bound.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct OutputAsleep {
    read: RawFd,
    closed: bool,
    file: Option<(PathBuf, RawFd, Option<u64>)>,
}

/// The read end of the payload's output pipe, and where its lines go.
#[derive(Debug)]
pub struct PayloadOutput {
    read: File,
    partial: Vec<u8>,
    file: Option<LogFile>,
    span: tracing::Span,
    closed: bool,
}

impl PayloadOutput {
    /// A pipe for a payload's stdout and stderr: this end, and the one the payload gets.
    pub fn new(target: &LogTarget) -> Result<(Self, OwnedFd), OutputError> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(OutputError::Pipe)?;
        let file = match &target.file {
            Some(path) => Some(LogFile::open(path.clone(), target.max_size)?),
            None => None,
        };
        let output = PayloadOutput {
            read: File::from(read),
            partial: Vec::new(),
            file,
            span: tracing::info_span!("payload"),
            closed: false,
        };
        Ok((output, write))
    }

    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        (!self.closed).then(|| self.read.as_fd())
    }

    /// Whether no line is half read: a runtime stays awake for the rest of one, so no line
    /// is cut by a sleep.
    pub fn may_sleep(&self) -> bool {
        self.partial.is_empty()
    }

    /// By number, for a hibernation; None while a line is half read ([`Self::may_sleep`]).
    pub fn asleep(&self) -> Option<OutputAsleep> {
        self.may_sleep().then(|| OutputAsleep {
            read: self.read.as_raw_fd(),
            closed: self.closed,
            file: self
                .file
                .as_ref()
                .map(|f| (f.path.clone(), f.file.as_raw_fd(), f.max_size)),
        })
    }

    /// The fds a hibernation keeps: the pipe (watched while open) and the log file.
    pub fn fds(&self) -> (Option<RawFd>, Option<RawFd>) {
        (
            (!self.closed).then(|| self.read.as_raw_fd()),
            self.file.as_ref().map(|f| f.file.as_raw_fd()),
        )
    }

    /// Back from its numbers, in a runtime woken from hibernation.
    pub fn woken(asleep: &OutputAsleep) -> Result<Self, jail::SysError> {
        let file = match &asleep.file {
            Some((path, fd, max_size)) => {
                let file = File::from(jail::fd::adopt_inherited(*fd)?);
                let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                Some(LogFile {
                    path: path.clone(),
                    file,
                    written,
                    max_size: *max_size,
                })
            }
            None => None,
        };
        Ok(PayloadOutput {
            read: File::from(jail::fd::adopt_inherited(asleep.read)?),
            partial: Vec::new(),
            file,
            span: tracing::info_span!("payload"),
            closed: asleep.closed,
        })
    }

    /// Relay what the payload wrote, at most [`READ_BUDGET`] bytes; how many were read.
    pub fn relay(&mut self) -> usize {
        let mut buf = [0u8; 8192];
        let mut read = 0;
        while read < READ_BUDGET && !self.closed {
            match self.read.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    self.flush();
                }
                Ok(n) => {
                    read += n;
                    self.take(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        read
    }

    /// Whatever is left once the payload is gone, the last partial line included.
    pub fn drain(&mut self) {
        while self.relay() > 0 {}
        self.flush();
    }

    /// The master FIFO's `l` (reopen the log file, moved away by logrotate) and `L` (rotate
    /// it now); the file's path, or why there is none to act on.
    pub fn reopen(&mut self, rotate: bool) -> Result<PathBuf, OutputError> {
        let Some(file) = self.file.as_mut() else {
            return Err(OutputError::NoLogFile);
        };
        if rotate {
            file.rotate();
        } else {
            *file = LogFile::open(file.path.clone(), file.max_size)?;
        }
        Ok(file.path.clone())
    }

    fn take(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        while self.partial.len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
            self.emit(&piece);
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(&rest);
        }
    }

    fn emit(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match &mut self.file {
            Some(file) => file.write_line(line),
            None => {
                let text = String::from_utf8_lossy(line);
                self.span.in_scope(|| info!("{text}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_newlines_and_at_the_longest_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let target = LogTarget {
            file: Some(log.clone()),
            max_size: None,
        };
        let (mut output, _write) = PayloadOutput::new(&target).unwrap();
        output.take(b"one\r\ntw");
        output.take(b"o\n");
        output.take(&vec![b'x'; MAX_LINE + 10]);
        output.flush();
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["one", "two"]);
        assert_eq!(lines[2].len(), MAX_LINE);
        assert_eq!(lines[3].len(), 10);
    }

    #[test]
    fn a_log_past_its_maximum_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let target = LogTarget {
            file: Some(log.clone()),
            max_size: Some(100),
        };
        let (mut output, _write) = PayloadOutput::new(&target).unwrap();
        for i in 0..30 {
            output.take(format!("line {i:02}\n").as_bytes());
        }
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            files.len() >= 3,
            "rotated into several files: {}",
            files.len()
        );
        assert!(std::fs::metadata(&log).unwrap().len() <= 100);
        let all: usize = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|f| {
                std::fs::read_to_string(f.unwrap().path())
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert_eq!(all, 30, "no line lost");
    }
}
