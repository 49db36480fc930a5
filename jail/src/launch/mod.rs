//! Start a program in a new process with clone3(2): optionally in new namespaces, with a pidfd,
//! a chosen set of fds, a clean signal state and, if asked, held until the parent has finished
//! its part (writing user-namespace maps) and releases it.
//!
//! Everything the child needs is prepared before the clone (C strings, pointer arrays, fd
//! tables), so the child between clone and execve runs only async-signal-safe system calls:
//! the emperor may have other threads, whose locks the child would otherwise inherit held.
//! [`Launch::fork`] is the one exception, for a single-threaded parent (the clone server):
//! its child takes the same steps, then runs on in its copy of the parent instead of
//! executing a program.
//!
//! One file a job: [`builder`] describes a launch, [`parent`] prepares and clones it and reads
//! the child's report, [`child`] is what the child does until execve, and [`step`] names the
//! child's steps so a failure says which call failed on what.

mod builder;
mod child;
mod parent;
mod step;

pub use builder::Launch;
pub use parent::Report;
pub use step::ChildStep;

use crate::error::{Errno, SysError};
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Most fds a launch maps into the child; more is a caller bug.
const MAX_MAPPED_FDS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("argument {0:?} contains a NUL byte")]
    NulByte(String),
    #[error("too many fds to pass: {0} (at most {MAX_MAPPED_FDS})")]
    TooManyFds(usize),
    #[error("{0}")]
    Sys(#[from] SysError),
    /// `execve("/bin/app"): ENOENT`, `setresuid(1000) (before execve /bin/app): EPERM`.
    #[error("{step}{}: {errno}", before_execve(step, program))]
    Child {
        program: PathBuf,
        /// Boxed: the privilege check's leftovers make it large, and errors travel by value.
        step: Box<ChildStep>,
        errno: Errno,
    },
}

/// Where a step other than the execve itself happened.
fn before_execve(step: &ChildStep, program: &Path) -> String {
    match step {
        ChildStep::Execve(_) => String::new(),
        _ => format!(" (before execve {})", program.display()),
    }
}

/// A child that exists but may still be held before execve (see [`Launch::hold`]).
#[derive(Debug)]
pub struct Launched {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    go: Option<OwnedFd>,
    exec_report: OwnedFd,
    program: PathBuf,
    cwd: Option<PathBuf>,
}

/// Which side of [`Launch::fork`] this is.
#[derive(Debug)]
pub enum Forked {
    /// The child, running on in a copy of this process (see [`Launch::fork`]): its steps
    /// done, or the one that failed (the child should then say so and exit).
    Child(Result<(), LaunchError>),
    /// The parent, with the child as [`Launch::start`] gives it.
    Parent(Launched),
}

/// A child that has exec'ed its program.
#[derive(Debug)]
pub struct Running {
    pub pid: Pid,
    pub pidfd: OwnedFd,
}

fn cstring(bytes: &[u8]) -> Result<CString, LaunchError> {
    CString::new(bytes).map_err(|_| LaunchError::NulByte(String::from_utf8_lossy(bytes).into()))
}

/// Find `name` as execvp(3) would: a name with a slash is taken as is, otherwise the first
/// executable regular file of that name in `path` (a `PATH`-style list).
pub fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| is_executable(candidate))
}

/// Replace this process (same pid, same fds but close-on-exec ones) with a fresh run of its
/// own binary: `argv` (argv[0] included) and `env` as given. Only returns on failure.
/// The runtime's fallback-config uses it, as uWSGI execs itself with the fallback file.
pub fn reexec_self(argv: &[String], env: &[(String, String)]) -> LaunchError {
    let argv = match argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(argv) => argv,
        Err(e) => return e,
    };
    let env = match env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(env) => env,
        Err(e) => return e,
    };
    // /proc/self/exe, not argv[0]: the same binary even if the path was replaced meanwhile.
    let program = c"/proc/self/exe";
    match nix::unistd::execve(program, &argv, &env) {
        Err(errno) => SysError::new("execve /proc/self/exe", errno).into(),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests;
