//! Start a program in a new process with clone3(2): optionally in new namespaces, with a pidfd,
//! a chosen set of fds, a clean signal state and, if asked, held until the parent has finished
//! its part (writing user-namespace maps) and releases it.
//!
//! Everything the child needs is prepared before the clone (C strings, pointer arrays, fd
//! tables), so the child between clone and execve runs only async-signal-safe system calls:
//! the emperor may have other threads, whose locks the child would otherwise inherit held.

use crate::error::{Errno, SysError};
use crate::sys;
use nix::fcntl::OFlag;
use nix::unistd::Pid;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Most fds a launch maps into the child; more is a caller bug.
const MAX_MAPPED_FDS: usize = 64;
/// Exit status of a child that could not exec (as a shell reports a missing program).
const EXEC_FAILED_STATUS: i32 = 127;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("argument {0:?} contains a NUL byte")]
    NulByte(String),
    #[error("too many fds to pass: {0} (at most {MAX_MAPPED_FDS})")]
    TooManyFds(usize),
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("execve {}: {errno}", program.display())]
    Exec { program: PathBuf, errno: Errno },
}

/// A process to start: what to exec, with which arguments, environment and fds.
#[derive(Debug)]
pub struct Launch {
    program: CString,
    program_path: PathBuf,
    argv: Vec<CString>,
    envp: Vec<CString>,
    fd_map: Vec<(RawFd, RawFd)>,
    clone_flags: u64,
    new_session: bool,
    parent_death_signal: Option<i32>,
    cwd: Option<CString>,
    hold: bool,
}

/// A child that exists but may still be held before execve (see [`Launch::hold`]).
#[derive(Debug)]
pub struct Launched {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    go: Option<OwnedFd>,
    exec_report: OwnedFd,
    program: PathBuf,
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

impl Launch {
    /// `program` is the path to exec (not searched in PATH: see [`find_program`]); `argv`
    /// includes argv[0]. The environment starts empty.
    pub fn new<S: AsRef<OsStr>>(program: &Path, argv: &[S]) -> Result<Self, LaunchError> {
        let argv = argv
            .iter()
            .map(|a| cstring(a.as_ref().as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Launch {
            program: cstring(program.as_os_str().as_bytes())?,
            program_path: program.to_path_buf(),
            argv,
            envp: Vec::new(),
            fd_map: Vec::new(),
            clone_flags: 0,
            new_session: false,
            parent_death_signal: None,
            cwd: None,
            hold: false,
        })
    }

    /// Add `KEY=VALUE` to the child's environment.
    pub fn env(
        &mut self,
        key: impl AsRef<OsStr>,
        value: impl AsRef<OsStr>,
    ) -> Result<&mut Self, LaunchError> {
        let mut pair = key.as_ref().as_bytes().to_vec();
        pair.push(b'=');
        pair.extend_from_slice(value.as_ref().as_bytes());
        self.envp.push(cstring(&pair)?);
        Ok(self)
    }

    /// Make the parent's `source` fd appear as `target` in the child. Every fd that is not
    /// mapped (and is not 0-2) is closed at execve.
    pub fn map_fd(&mut self, source: RawFd, target: RawFd) -> &mut Self {
        self.fd_map.push((source, target));
        self
    }

    /// CLONE_NEW* flags for the child.
    pub fn namespaces(&mut self, clone_flags: u64) -> &mut Self {
        self.clone_flags = clone_flags;
        self
    }

    /// setsid(2) in the child: no controlling terminal, its own process group.
    pub fn new_session(&mut self) -> &mut Self {
        self.new_session = true;
        self
    }

    /// The signal the child gets when its parent thread dies.
    pub fn parent_death_signal(&mut self, signal: i32) -> &mut Self {
        self.parent_death_signal = Some(signal);
        self
    }

    pub fn cwd(&mut self, dir: &Path) -> Result<&mut Self, LaunchError> {
        self.cwd = Some(cstring(dir.as_os_str().as_bytes())?);
        Ok(self)
    }

    /// Hold the child before it does anything until [`Launched::release`].
    pub fn hold(&mut self) -> &mut Self {
        self.hold = true;
        self
    }

    /// clone3 the child. Unless held, it runs on at once; call [`Launched::release`] either way
    /// to learn whether its execve worked.
    pub fn start(&self) -> Result<Launched, LaunchError> {
        if self.fd_map.len() > MAX_MAPPED_FDS {
            return Err(LaunchError::TooManyFds(self.fd_map.len()));
        }
        let argv_ptrs = null_terminated(&self.argv);
        let envp_ptrs = null_terminated(&self.envp);
        let (report_read, report_write) = pipe()?;
        let go = if self.hold { Some(pipe()?) } else { None };
        let scratch_base = self
            .fd_map
            .iter()
            .map(|&(s, t)| s.max(t))
            .max()
            .unwrap_or(2)
            .max(report_write.as_raw_fd())
            + 1;
        let parent = nix::unistd::getpid().as_raw();

        let mut pidfd: RawFd = -1;
        let mut args = sys::CloneArgs {
            flags: self.clone_flags | libc::CLONE_PIDFD as u64,
            pidfd: &mut pidfd as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: the child branch below calls only `child_exec`, which is async-signal-safe:
        // it uses only values prepared above (C strings, pointer arrays, raw fds) and raw
        // system calls, and never returns.
        let pid = unsafe { sys::clone3(&mut args) }.map_err(|e| SysError::new("clone3", e))?;
        if pid == 0 {
            let child = ChildSide {
                launch: self,
                argv: &argv_ptrs,
                envp: &envp_ptrs,
                report: report_write.as_raw_fd(),
                go: go.as_ref().map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd())),
                scratch_base,
                parent,
            };
            child.exec();
        }
        // SAFETY: CLONE_PIDFD made the kernel store a fresh pidfd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        drop(report_write);
        Ok(Launched {
            pid: Pid::from_raw(pid),
            pidfd,
            go: go.map(|(_read, write)| write),
            exec_report: report_read,
            program: self.program_path.clone(),
        })
    }
}

impl Launched {
    /// Let a held child go on, then wait until it has exec'ed (or failed to).
    pub fn release(self) -> Result<Running, LaunchError> {
        if let Some(go) = &self.go {
            nix::unistd::write(go, &[1]).map_err(|e| SysError::new("write go byte", e))?;
        }
        drop(self.go);
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < buf.len() {
            match nix::unistd::read(self.exec_report.as_raw_fd(), &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("read exec report", e).into()),
            }
        }
        if got == 0 {
            return Ok(Running {
                pid: self.pid,
                pidfd: self.pidfd,
            });
        }
        // The child has exited (status 127); the caller's reaper collects it.
        let errno = Errno::from_raw(i32::from_ne_bytes(buf));
        Err(LaunchError::Exec {
            program: self.program,
            errno,
        })
    }
}

impl Running {
    /// Signal the process through its pidfd (never a recycled pid).
    pub fn signal(&self, signal: i32) -> Result<(), SysError> {
        sys::pidfd_send_signal(self.pidfd.as_raw_fd(), signal)
            .map_err(|e| SysError::new("pidfd_send_signal", e))
    }
}

/// What the child needs, borrowed from the parent's prepared values.
struct ChildSide<'a> {
    launch: &'a Launch,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    report: RawFd,
    go: Option<(RawFd, RawFd)>,
    scratch_base: RawFd,
    parent: libc::pid_t,
}

impl ChildSide<'_> {
    /// The child between clone3 and execve. Async-signal-safe only: raw syscalls on prepared
    /// values, no allocation, no locks, no Rust std I/O.
    fn exec(&self) -> ! {
        let launch = self.launch;
        if let Some((read_end, write_end)) = self.go {
            // SAFETY: closing our copy of the write end lets a dead parent be seen as EOF.
            unsafe { libc::close(write_end) };
            let mut byte = 0u8;
            // SAFETY: one byte into a local buffer.
            let n = unsafe { libc::read(read_end, &mut byte as *mut u8 as *mut libc::c_void, 1) };
            if n != 1 {
                self.fail(Errno::ECHILD as i32);
            }
        }
        if launch.new_session {
            // SAFETY: no arguments; fails only if already a group leader, which a new child is not.
            unsafe { libc::setsid() };
        }
        if let Some(signal) = launch.parent_death_signal {
            if sys::set_parent_death_signal(signal).is_err() {
                self.fail(Errno::last_raw());
            }
            // The parent may have died before the prctl: then no signal will ever come.
            // In a new pid namespace getppid() is 0 and the protocol socket tells instead.
            let new_pid_ns = launch.clone_flags & libc::CLONE_NEWPID as u64 != 0;
            // SAFETY: no arguments.
            if !new_pid_ns && unsafe { libc::getppid() } != self.parent {
                self.fail(Errno::ECHILD as i32);
            }
        }
        self.map_fds();
        let highest = launch
            .fd_map
            .iter()
            .map(|&(_, t)| t)
            .max()
            .unwrap_or(2)
            .max(2);
        if sys::cloexec_from(highest as u32 + 1).is_err() {
            self.fail(Errno::last_raw());
        }
        sys::reset_signals();
        if let Some(dir) = &launch.cwd {
            // SAFETY: a NUL-terminated string prepared before the clone.
            if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
                self.fail(Errno::last_raw());
            }
        }
        // SAFETY: program, argv and envp are NUL-terminated strings and NULL-terminated
        // pointer arrays built before the clone and still alive in this copy of memory.
        unsafe {
            libc::execve(
                launch.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        self.fail(Errno::last_raw())
    }

    /// Two passes so a source fd is never overwritten by an earlier target: first dup every
    /// source above all of them, then onto its target (dup2 clears close-on-exec).
    fn map_fds(&self) {
        let mut staged = [0 as RawFd; MAX_MAPPED_FDS];
        for (i, &(source, _)) in self.launch.fd_map.iter().enumerate() {
            // SAFETY: F_DUPFD_CLOEXEC on an fd number; fails cleanly if it is not open.
            let fd = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, self.scratch_base) };
            if fd < 0 {
                self.fail(Errno::last_raw());
            }
            staged[i] = fd;
        }
        for (i, &(_, target)) in self.launch.fd_map.iter().enumerate() {
            // SAFETY: dup2 between fd numbers.
            if unsafe { libc::dup2(staged[i], target) } < 0 {
                self.fail(Errno::last_raw());
            }
        }
    }

    /// Report errno to the parent and exit without running any destructor or atexit handler.
    fn fail(&self, errno: i32) -> ! {
        let bytes = errno.to_ne_bytes();
        // SAFETY: write of a local buffer, then _exit, both async-signal-safe.
        unsafe {
            libc::write(
                self.report,
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
            );
            libc::_exit(EXEC_FAILED_STATUS)
        }
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SysError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SysError::new("pipe2", e))
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
