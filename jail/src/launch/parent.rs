//! The parent's side of a launch: prepare everything the child needs (exec arguments, pipes,
//! clone arguments), clone it, wait for the steps it must see before it touches its own fds
//! again, and read the child's report of how its execve went.

use super::child::{self, ChildSide};
use super::step::{self, REPORT_WORDS};
use super::{Launch, LaunchError, Launched, Running, MAX_MAPPED_FDS};
use crate::error::{Errno, SysError};
use crate::sys;
use nix::fcntl::OFlag;
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// clone3 flag: start the child in the cgroup given by `clone_args.cgroup` (linux/sched.h).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The pipes of one launch, each (read end, write end).
struct Pipes {
    /// The child's report of a failed step; EOF alone: its execve worked.
    report: (OwnedFd, OwnedFd),
    /// The parent's go byte for a held child.
    go: Option<(OwnedFd, OwnedFd)>,
    /// A held child says when it is ready to be worked on (dumpable, waiting for go).
    held: Option<(OwnedFd, OwnedFd)>,
    /// A fresh-table child says when it has its own table (one byte, or it failed).
    unshared: Option<(OwnedFd, OwnedFd)>,
}

impl Pipes {
    fn new(launch: &Launch) -> Result<Self, SysError> {
        let pipe_if = |wanted: bool| wanted.then(pipe).transpose();
        Ok(Pipes {
            report: pipe()?,
            go: pipe_if(launch.hold)?,
            held: pipe_if(launch.hold)?,
            unshared: pipe_if(launch.fresh_fd_table.is_some())?,
        })
    }

    /// The lowest fd a fresh-table child may drop: above every fd it still needs.
    fn keep_below(&self, launch: &Launch) -> RawFd {
        let needed = launch
            .fd_map
            .iter()
            .map(|&(source, _)| source)
            .chain([self.report.1.as_raw_fd()])
            .chain(
                self.go
                    .iter()
                    .flat_map(|(r, w)| [r.as_raw_fd(), w.as_raw_fd()]),
            )
            .chain(self.held.iter().map(|(_, w)| w.as_raw_fd()))
            .chain(self.unshared.iter().map(|(_, w)| w.as_raw_fd()));
        needed.max().unwrap_or(2).max(2) + 1
    }
}

impl Launch {
    /// clone3 the child. Unless held, it runs on at once; call [`Launched::release`] either way
    /// to learn whether its execve worked.
    pub fn start(&self) -> Result<Launched, LaunchError> {
        if self.fd_map.len() > MAX_MAPPED_FDS {
            return Err(LaunchError::TooManyFds(self.fd_map.len()));
        }
        let exec = sys::ExecArgs::new(&self.program, &self.argv, &self.envp, self.own_pid_env);
        let pipes = Pipes::new(self)?;
        let raw = |pair: &Option<(OwnedFd, OwnedFd)>| {
            pair.as_ref().map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd()))
        };
        let child = ChildSide {
            launch: self,
            exec: &exec,
            report: pipes.report.1.as_raw_fd(),
            go: raw(&pipes.go),
            held: raw(&pipes.held).map(|(_, w)| w),
            unshare: raw(&pipes.unshared).map(|(_, w)| (pipes.keep_below(self), w)),
            scratch_base: self.scratch_base(pipes.report.1.as_raw_fd()),
            parent: self.parent_pid(),
        };
        let mut args = self.clone_args();
        let (pid, pidfd) = child::clone(&mut args, &child, self.may_share_memory())?;
        Ok(self.after_clone(Pid::from_raw(pid), pidfd, pipes)?)
    }

    /// The first fd number above every source and target: where the child stages its fds.
    fn scratch_base(&self, report: RawFd) -> RawFd {
        let highest = self.fd_map.iter().map(|&(s, t)| s.max(t)).max();
        highest.unwrap_or(2).max(report) + 1
    }

    /// The process the child checks is still its parent before it goes on alone.
    fn parent_pid(&self) -> libc::pid_t {
        if self.sibling {
            nix::unistd::getppid().as_raw()
        } else {
            nix::unistd::getpid().as_raw()
        }
    }

    fn clone_args(&self) -> sys::CloneArgs {
        let mut args = sys::CloneArgs {
            flags: self.clone_flags,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        if self.fresh_fd_table.is_some() {
            args.flags |= libc::CLONE_FILES as u64;
        }
        if self.sibling {
            // clone3 refuses an exit signal with CLONE_PARENT: the child gets ours, which our
            // parent chose for us (SIGCHLD for a helper started by a `Launch`).
            args.flags |= libc::CLONE_PARENT as u64;
            args.exit_signal = 0;
        }
        if let Some(cgroup) = self.cgroup {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = cgroup as u64;
        }
        args
    }

    /// Wait for what the child must have done before the parent goes on: its own fd table
    /// (until then, closing or opening an fd here would change what it sees), and, when
    /// held, its being ready for the parent's work.
    fn after_clone(&self, pid: Pid, pidfd: OwnedFd, pipes: Pipes) -> Result<Launched, SysError> {
        let Pipes {
            report: (report_read, report_write),
            go,
            held,
            unshared,
        } = pipes;
        if let Some((unshared_read, _)) = &unshared {
            // Wait for its byte, or for its end (a failure it has reported).
            wait_readable(unshared_read.as_fd(), pidfd.as_fd())?;
        }
        let pidfd = match self.fresh_fd_table {
            Some(floor) => crate::fd::park_above(pidfd, floor),
            None => pidfd,
        };
        drop(unshared);
        drop(report_write);
        if let Some((held_read, held_write)) = held {
            drop(held_write);
            let mut byte = [0u8; 1];
            // One byte: the child is held and ready; EOF: it failed (its report says why).
            while let Err(Errno::EINTR) = nix::unistd::read(held_read.as_raw_fd(), &mut byte) {}
        }
        let cwd = self
            .cwd
            .as_ref()
            .map(|dir| PathBuf::from(OsStr::from_bytes(dir.as_bytes())));
        Ok(Launched {
            pid,
            pidfd,
            go: go.map(|(_read, write)| write),
            exec_report: report_read,
            program: self.program_path.clone(),
            cwd,
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
        let mut bytes = [0u8; REPORT_WORDS * 8];
        let mut got = 0;
        while got < bytes.len() {
            match nix::unistd::read(self.exec_report.as_raw_fd(), &mut bytes[got..]) {
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
        let words: Vec<u64> = bytes[..got]
            .chunks(8)
            .map(|chunk| {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                u64::from_ne_bytes(word)
            })
            .collect();
        let (step, errno) = step::decode(&words);
        Err(LaunchError::Child {
            step: Box::new(step.with_paths(&self.program, self.cwd.as_deref())),
            program: self.program,
            errno,
        })
    }
}

impl Running {
    /// Block until the process exits and collect it, through its pidfd (never another process
    /// that took its pid). ECHILD: someone collected it already.
    pub fn wait(&self) -> Result<(), SysError> {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        loop {
            match waitid(Id::PIDFd(self.pidfd.as_fd()), WaitPidFlag::WEXITED) {
                Err(Errno::EINTR) => continue,
                other => {
                    return other
                        .map(drop)
                        .map_err(|e| SysError::new("waitid(P_PIDFD)", e))
                }
            }
        }
    }

    /// Signal the process through its pidfd (never a recycled pid).
    pub fn signal(&self, signal: i32) -> Result<(), SysError> {
        sys::pidfd_send_signal(self.pidfd.as_raw_fd(), signal)
            .map_err(|e| SysError::new("pidfd_send_signal", e))
    }
}

/// Block until `fd` is readable or the child behind `pidfd` has exited.
fn wait_readable(fd: BorrowedFd<'_>, pidfd: BorrowedFd<'_>) -> Result<(), SysError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [
        PollFd::new(fd, PollFlags::POLLIN),
        PollFd::new(pidfd, PollFlags::POLLIN),
    ];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SysError::new("poll for the child's own fd table", e)),
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SysError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SysError::new("pipe2", e))
}
