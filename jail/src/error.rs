//! One error type for a failed system call: which call, on which path, which errno.

use std::fmt;
use std::path::PathBuf;

pub use nix::errno::Errno;

/// A system call that failed: `mount(2) on /proc: EPERM: Operation not permitted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    pub call: &'static str,
    pub path: Option<PathBuf>,
    pub errno: Errno,
}

impl SysError {
    pub fn new(call: &'static str, errno: Errno) -> Self {
        SysError {
            call,
            path: None,
            errno,
        }
    }

    pub fn with_path(call: &'static str, path: impl Into<PathBuf>, errno: Errno) -> Self {
        SysError {
            call,
            path: Some(path.into()),
            errno,
        }
    }

    /// The error of the last failed libc call.
    pub fn last(call: &'static str) -> Self {
        Self::new(call, Errno::last())
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{} on {}: {}", self.call, path.display(), self.errno),
            None => write!(f, "{}: {}", self.call, self.errno),
        }
    }
}

impl std::error::Error for SysError {}

impl From<SysError> for std::io::Error {
    fn from(e: SysError) -> Self {
        std::io::Error::other(e.to_string())
    }
}
