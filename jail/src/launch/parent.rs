//! The parent's side of a launch: prepare everything the child needs (exec arguments, pipes,
//! clone arguments), clone it, wait for the steps it must see before it touches its own fds
//! again, and read the child's report of how its execve went.

use super::child::{self, ChildSide};
use super::step::{self, REPORT_WORDS};
use super::{Forked, Launch, LaunchError, Launched, Running, MAX_MAPPED_FDS};
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
            // A held child makes itself dumpable before it says it is held, so that a parent
            // that changed its uid can write its maps; a dumpable parent's child is dumpable
            // from the clone, and the parent may go on at once.
            held: pipe_if(launch.hold && !this_process_is_dumpable())?,
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
        let child = self.child_side(&exec, &pipes, &self.kept_fds);
        let mut args = self.clone_args();
        let (pid, pidfd) = child::clone(&mut args, &child, self.may_share_memory())?;
        Ok(self.after_clone(Pid::from_raw(pid), pidfd, pipes)?)
    }

    /// Clone the child as [`Launch::start`] does, except that after its steps it does not
    /// execute the program: it returns [`Forked::Child`] here, in a copy of this process,
    /// holding only its mapped fds, 0-2 and the [`Launch::keep_fd`] ones, with this process's
    /// signal dispositions and mask (a program would start with defaults), and how its steps
    /// went: a failure is the child's to report. The parent gets [`Forked::Parent`]; its
    /// [`Launched::release_without_waiting`] does not wait for the child to be scheduled.
    ///
    /// The child runs ordinary code, so this process must have one thread (EDEADLK
    /// otherwise): another thread's locks (the allocator's) would stay held in the copy. The
    /// launch must not share the fd table ([`Launch::fresh_fd_table`]); its program only names
    /// what runs, in errors. The child must leave by `std::process::exit` (or `_exit`), never
    /// by returning into the caller's frames: their fds are no longer its own.
    pub fn fork(&self) -> Result<Forked, LaunchError> {
        if self.fd_map.len() > MAX_MAPPED_FDS {
            return Err(LaunchError::TooManyFds(self.fd_map.len()));
        }
        if self.fresh_fd_table.is_some() {
            return Err(
                SysError::new("clone3 in process with a shared fd table", Errno::EINVAL).into(),
            );
        }
        // A copy keeps what this process opened for its copies, whoever launches it.
        let mut kept_fds = self.kept_fds.clone();
        kept_fds.extend(crate::ahead::kept_in_copies());
        kept_fds.sort_unstable();
        kept_fds.dedup();
        if self
            .fd_map
            .iter()
            .any(|(_, target)| kept_fds.contains(target))
        {
            // The copy would lose the kept one under the mapped one.
            let call = "clone3 in process (an fd both kept and mapped onto)";
            return Err(SysError::new(call, Errno::EINVAL).into());
        }
        if sys::thread_count() != Some(1) {
            return Err(SysError::new("clone3 in process (other threads)", Errno::EDEADLK).into());
        }
        let exec = sys::ExecArgs::new(&self.program, &self.argv, &self.envp, self.own_pid_env);
        let pipes = Pipes::new(self)?;
        let child = self.child_side(&exec, &pipes, &kept_fds);
        let mut args = self.clone_args();
        match child::clone_in_process(&mut args, &child)? {
            child::InProcess::Child(outcome) => {
                // The child closed every pipe end it had (or never kept it): their owners
                // here must not close those numbers again, which may be reused by now.
                std::mem::forget(pipes);
                if self.clone_flags & libc::CLONE_NEWUSER as u64 != 0 {
                    crate::userns::forget_own_namespace();
                }
                Ok(Forked::Child(outcome.map_err(|(step, errno)| {
                    let cwd = self
                        .cwd
                        .as_ref()
                        .map(|dir| PathBuf::from(OsStr::from_bytes(dir.as_bytes())));
                    LaunchError::Child {
                        step: Box::new(step.with_paths(&self.program_path, cwd.as_deref())),
                        program: self.program_path.clone(),
                        errno,
                    }
                })))
            }
            child::InProcess::Parent(pid, pidfd) => Ok(Forked::Parent(self.after_clone(
                Pid::from_raw(pid),
                pidfd,
                pipes,
            )?)),
        }
    }

    /// What the child needs, all prepared before the clone.
    fn child_side<'a>(
        &'a self,
        exec: &'a sys::ExecArgs<'a>,
        pipes: &Pipes,
        kept_fds: &'a [RawFd],
    ) -> ChildSide<'a> {
        let raw = |pair: &Option<(OwnedFd, OwnedFd)>| {
            pair.as_ref().map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd()))
        };
        ChildSide {
            launch: self,
            exec,
            report: pipes.report.1.as_raw_fd(),
            go: raw(&pipes.go),
            held: raw(&pipes.held).map(|(_, w)| w),
            unshare: raw(&pipes.unshared).map(|(_, w)| (pipes.keep_below(self), w)),
            scratch_base: self.scratch_base(pipes.report.1.as_raw_fd()),
            parent: self.parent_pid(),
            kept_fds,
        }
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
        let (running, report) = self.release_without_waiting()?;
        report.read().map(|()| running)
    }

    /// Let a held child go on and return at once: whether its steps worked comes later, on
    /// its [`Report`] (its failure also makes it exit with status 127).
    pub fn release_without_waiting(self) -> Result<(Running, Report), LaunchError> {
        if let Some(go) = &self.go {
            nix::unistd::write(go, &[1]).map_err(|e| SysError::new("write go byte", e))?;
        }
        drop(self.go);
        let report = Report {
            pipe: self.exec_report,
            program: self.program,
            cwd: self.cwd,
        };
        let running = Running {
            pid: self.pid,
            pidfd: self.pidfd,
        };
        Ok((running, report))
    }
}

/// How a released child's steps went, once it has exec'ed (or, started by [`Launch::fork`],
/// finished its steps) or failed: its pipe is readable then.
#[derive(Debug)]
pub struct Report {
    pipe: OwnedFd,
    program: PathBuf,
    cwd: Option<PathBuf>,
}

impl Report {
    /// The outcome, blocking until it is known.
    pub fn read(self) -> Result<(), LaunchError> {
        let mut bytes = [0u8; REPORT_WORDS * 8];
        let mut got = 0;
        while got < bytes.len() {
            match nix::unistd::read(self.pipe.as_raw_fd(), &mut bytes[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("read exec report", e).into()),
            }
        }
        if got == 0 {
            return Ok(());
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

fn this_process_is_dumpable() -> bool {
    sys::prctl(libc::PR_GET_DUMPABLE, 0, 0) == Ok(1)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SysError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SysError::new("pipe2", e))
}
