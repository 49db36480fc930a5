//! The child's side of a launch, between clone3 and execve. Async-signal-safe only: system
//! calls (through [`crate::sys`]) on values the parent prepared before the clone, no
//! allocation, no locks, no Rust std I/O. A failed step is reported as a fixed-size record
//! ([`super::step`]) on the report pipe, then the child leaves with status 127. A child of
//! [`super::Launch::fork`] takes the same steps (keeping its parent's signal state, closing
//! what it does not keep) and returns how they went to the code it runs on.

use super::builder::Grouping;
use super::step::{self, ChildStep};
use super::{Launch, MAX_MAPPED_FDS};
use crate::error::{Errno, SysError};
use crate::sys;
use std::os::fd::{OwnedFd, RawFd};

/// Exit status of a child that could not exec (as a shell reports a missing program).
const EXEC_FAILED_STATUS: i32 = 127;

/// What the child needs, borrowed from the parent's prepared values.
pub(super) struct ChildSide<'a> {
    pub launch: &'a Launch,
    pub exec: &'a sys::ExecArgs<'a>,
    pub report: RawFd,
    pub go: Option<(RawFd, RawFd)>,
    pub held: Option<RawFd>,
    /// Take a private fd table of the fds below the first number, then say so on the second.
    pub unshare: Option<(RawFd, RawFd)>,
    pub scratch_base: RawFd,
    pub parent: libc::pid_t,
    /// In process: the fds kept above the mapped ones, sorted (the launch's and
    /// [`crate::ahead`]'s).
    pub kept_fds: &'a [RawFd],
}

/// Clone the child that runs `child.exec()`: in the parent's memory when `share_memory`
/// ([`crate::vfork`]: this returns once it has exec'ed), else in a copy (fork-like). Returns
/// its pid and pidfd.
#[allow(unsafe_code)]
pub(super) fn clone(
    args: &mut sys::CloneArgs,
    child: &ChildSide<'_>,
    share_memory: bool,
) -> Result<(libc::pid_t, OwnedFd), SysError> {
    if share_memory {
        // SAFETY: `ChildSide::exec` is async-signal-safe and never returns, and with
        // `Launch::may_share_memory` true it changes no credentials and writes only its stack
        // and the own-pid buffer, which the parent only drops.
        return unsafe { crate::vfork::clone_sharing_memory(args, child, ChildSide::exec) };
    }
    // SAFETY: the child branch below calls only `ChildSide::exec`, which is
    // async-signal-safe: it uses only values prepared before the clone (C strings, pointer
    // arrays, raw fds) and raw system calls, and never returns.
    match unsafe { sys::clone3(args) }.map_err(|e| SysError::new("clone3", e))? {
        sys::Cloned::Child => child.exec(),
        sys::Cloned::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}

/// What [`clone_in_process`] returns on each side.
pub(super) enum InProcess {
    /// The child, with the step that failed (it is then the caller's to report and exit).
    Child(Result<(), (ChildStep<()>, Errno)>),
    Parent(libc::pid_t, OwnedFd),
}

/// Clone the child of [`Launch::fork`], in a copy of this single-threaded process: in the
/// child, how its steps went; in the parent, the child's pid and pidfd.
#[allow(unsafe_code)]
pub(super) fn clone_in_process(
    args: &mut sys::CloneArgs,
    child: &ChildSide<'_>,
) -> Result<InProcess, SysError> {
    // SAFETY: `Launch::fork` checked that this process has one thread, so the copy has every
    // lock (the allocator's, stdio's) in the state this thread left it: free. The child runs
    // its steps (system calls on prepared values) and then the caller's code, which owns the
    // whole copy; glibc's cached thread id in the copy stays the parent's, which only
    // pthread's owner-checked mutexes would read (Rust's locks are its own futexes).
    match unsafe { sys::clone3(args) }.map_err(|e| SysError::new("clone3", e))? {
        sys::Cloned::Child => Ok(InProcess::Child(child.run_in_process())),
        sys::Cloned::Parent { pid, pidfd } => Ok(InProcess::Parent(pid, pidfd)),
    }
}

/// A failed step and its errno.
type Failed = (ChildStep<()>, Errno);

impl ChildSide<'_> {
    /// The child's steps, in order, up to execve.
    fn exec(&self) -> ! {
        if let Err((step, errno)) = self.steps(false) {
            self.fail(step, errno)
        }
        let errno = self.exec.execve();
        self.fail(ChildStep::Execve(()), errno)
    }

    /// The steps of a child that runs on in its copy of the parent, which reports a failure
    /// itself: the report pipe only closes (nobody waits on it).
    fn run_in_process(&self) -> Result<(), Failed> {
        let outcome = self.steps(true);
        sys::close(self.report);
        outcome
    }

    /// Every step but the execve. In process, the child keeps the parent's signal state (the
    /// code it runs on set it up) and closes the fds it does not keep, as an execve would.
    fn steps(&self, in_process: bool) -> Result<(), Failed> {
        let launch = self.launch;
        self.take_own_fd_table()?;
        self.wait_until_released()?;
        self.become_root()?;
        if launch.mount_proc {
            check(sys::mount_proc_at_slash_proc(), ChildStep::MountProc)?;
        }
        match launch.grouping {
            Grouping::Inherited => {}
            Grouping::OwnProcessGroup => sys::setpgid_self(),
            Grouping::OwnSession => sys::setsid(),
        }
        self.map_fds()?;
        let highest = launch.fd_map.iter().map(|&(_, t)| t).max();
        let first_closed = highest.unwrap_or(2).max(2) as u32 + 1;
        if in_process {
            check(
                sys::close_from_except(first_closed, self.kept_fds, self.report),
                ChildStep::CloseFrom(first_closed),
            )?;
        } else {
            check(
                sys::cloexec_from(first_closed),
                ChildStep::CloexecFrom(first_closed),
            )?;
            sys::reset_signals();
        }
        self.set_soft_limits()?;
        if let Some(drop) = &launch.drop {
            if let Err(failure) = drop.apply(launch.last_cap) {
                return Err((ChildStep::Drop(failure.step), failure.errno));
            }
        }
        // After the drop: a credential change clears the parent-death signal.
        self.set_parent_death_signal()?;
        if let Some(dir) = &launch.cwd {
            check(sys::chdir(dir), ChildStep::Chdir(()))?;
        }
        if !in_process {
            self.exec.write_own_pid();
        }
        if let Some(filter) = &launch.seccomp {
            check(filter.install_in_child(), ChildStep::Seccomp)?;
        }
        Ok(())
    }

    /// First, while the parent waits: every later step changes our fds.
    fn take_own_fd_table(&self) -> Result<(), Failed> {
        if let Some((keep_below, unshared)) = self.unshare {
            let keep_below = keep_below as u32;
            check(
                sys::unshare_fds_below(keep_below),
                ChildStep::UnshareFds { keep_below },
            )?;
            sys::signal_and_close(unshared);
        }
        Ok(())
    }

    /// A held child says it is ready, then waits for the parent's go byte.
    fn wait_until_released(&self) -> Result<(), Failed> {
        let launch = self.launch;
        let new_user_ns = launch.clone_flags & libc::CLONE_NEWUSER as u64 != 0;
        if launch.hold && (launch.become_root || new_user_ns) {
            // A non-dumpable parent has non-dumpable children, whose /proc files belong to the
            // root of their memory's user namespace: the host's root for the children of an
            // emperor that changed its uid, and of a runtime running in a copy of the clone
            // server (its memory was made by an execve in the host's namespace). The parent
            // could not write our id maps then. Dumpable while held is harmless: a tracer
            // needs CAP_SYS_PTRACE over our new user namespace, which only processes of our
            // parent's namespace with our uid have (our parent, its hooks); a change of uid
            // resets the flag, the runtime makes itself non-dumpable again, and a payload's
            // execve sets it anew.
            check(sys::prctl(libc::PR_SET_DUMPABLE, 1, 0), ChildStep::Dumpable)?;
        }
        if let Some(held) = self.held {
            sys::signal_and_close(held);
        }
        if let Some((read_end, write_end)) = self.go {
            // Closing our copy of the write end lets a dead parent be seen as EOF.
            sys::close(write_end);
            let mut byte = [0u8];
            if sys::read(read_end, &mut byte) != Ok(1) {
                return Err((ChildStep::WaitForRelease, Errno::ECHILD));
            }
        }
        Ok(())
    }

    /// In a new user namespace whose maps the parent has written: become its root.
    fn become_root(&self) -> Result<(), Failed> {
        let launch = self.launch;
        if !launch.become_root {
            return Ok(());
        }
        if !launch.groups_denied {
            check(sys::setgroups(&[]), ChildStep::RootGroups)?;
        }
        check(sys::setresgid(0), ChildStep::RootGid)?;
        check(sys::setresuid(0), ChildStep::RootUid)
    }

    fn set_soft_limits(&self) -> Result<(), Failed> {
        for &(resource, soft) in &self.launch.soft_limits {
            match sys::getrlimit(resource) {
                Ok((_, hard)) => {
                    let soft = soft.min(hard);
                    check(
                        sys::setrlimit(resource, soft, hard),
                        ChildStep::Setrlimit {
                            resource,
                            soft,
                            hard,
                        },
                    )?
                }
                Err(e) => return Err((ChildStep::Getrlimit(resource), e)),
            }
        }
        Ok(())
    }

    fn set_parent_death_signal(&self) -> Result<(), Failed> {
        let launch = self.launch;
        let Some(signal) = launch.parent_death_signal else {
            return Ok(());
        };
        check(
            sys::set_parent_death_signal(signal),
            ChildStep::ParentDeathSignal(signal),
        )?;
        // The parent may have died before the prctl: then no signal will ever come.
        // In a new pid namespace getppid() is 0 and the protocol socket tells instead.
        let new_pid_ns = launch.clone_flags & libc::CLONE_NEWPID as u64 != 0;
        if !new_pid_ns && sys::getppid() != self.parent {
            let parent = self.parent;
            return Err((ChildStep::ParentDied { parent }, Errno::ECHILD));
        }
        Ok(())
    }

    /// Two passes so a source fd is never overwritten by an earlier target: first dup every
    /// source above all of them, then onto its target (dup2 clears close-on-exec).
    fn map_fds(&self) -> Result<(), Failed> {
        let mut staged = [0 as RawFd; MAX_MAPPED_FDS];
        for (i, &(source, target)) in self.launch.fd_map.iter().enumerate() {
            match sys::dup_from(source, self.scratch_base) {
                Ok(fd) => staged[i] = fd,
                Err(e) => return Err((ChildStep::StageFd { source, target }, e)),
            }
        }
        for (i, &(source, target)) in self.launch.fd_map.iter().enumerate() {
            check(
                sys::dup2(staged[i], target),
                ChildStep::MapFd { source, target },
            )?;
        }
        Ok(())
    }

    /// Report the failed step and errno to the parent and exit without running any
    /// destructor or atexit handler.
    fn fail(&self, step: ChildStep<()>, errno: Errno) -> ! {
        let words = step::encode(step, errno);
        let mut bytes = [0u8; step::REPORT_WORDS * 8];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        let _ = sys::write(self.report, &bytes);
        sys::exit_now(EXEC_FAILED_STATUS)
    }
}

/// `step` failed when `result` is an error.
fn check<T>(result: Result<T, Errno>, step: ChildStep<()>) -> Result<(), Failed> {
    result.map(drop).map_err(|errno| (step, errno))
}
