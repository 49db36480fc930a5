//! The child's side of a launch, between clone3 and execve. Async-signal-safe only: system
//! calls (through [`crate::sys`]) on values the parent prepared before the clone, no
//! allocation, no locks, no Rust std I/O. A failed step is reported as a fixed-size record
//! ([`super::step`]) on the report pipe, then the child leaves with status 127.

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

impl ChildSide<'_> {
    /// The child's steps, in order, up to execve.
    fn exec(&self) -> ! {
        let launch = self.launch;
        self.take_own_fd_table();
        self.wait_until_released();
        self.become_root();
        if launch.mount_proc {
            self.check(sys::mount_proc_at_slash_proc(), ChildStep::MountProc);
        }
        if launch.new_session {
            sys::setsid();
        }
        self.map_fds();
        let highest = launch.fd_map.iter().map(|&(_, t)| t).max();
        let first_closed = highest.unwrap_or(2).max(2) as u32 + 1;
        self.check(
            sys::cloexec_from(first_closed),
            ChildStep::CloexecFrom(first_closed),
        );
        sys::reset_signals();
        self.set_soft_limits();
        if let Some(drop) = &launch.drop {
            if let Err(failure) = drop.apply(launch.last_cap) {
                self.fail(ChildStep::Drop(failure.step), failure.errno);
            }
        }
        // After the drop: a credential change clears the parent-death signal.
        self.set_parent_death_signal();
        if let Some(dir) = &launch.cwd {
            self.check(sys::chdir(dir), ChildStep::Chdir(()));
        }
        self.exec.write_own_pid();
        if let Some(filter) = &launch.seccomp {
            self.check(filter.install_in_child(), ChildStep::Seccomp);
        }
        let errno = self.exec.execve();
        self.fail(ChildStep::Execve(()), errno)
    }

    /// First, while the parent waits: every later step changes our fds.
    fn take_own_fd_table(&self) {
        if let Some((keep_below, unshared)) = self.unshare {
            let keep_below = keep_below as u32;
            self.check(
                sys::unshare_fds_below(keep_below),
                ChildStep::UnshareFds { keep_below },
            );
            sys::signal_and_close(unshared);
        }
    }

    /// A held child says it is ready, then waits for the parent's go byte.
    fn wait_until_released(&self) {
        let launch = self.launch;
        if launch.hold && launch.become_root {
            // An emperor that changed its uid makes its children non-dumpable, so their
            // /proc files belong to root and it could not write our id maps. Dumpable while
            // held is harmless: a tracer needs every capability we hold; the switch to the
            // jail's root below resets it, and the runtime makes itself non-dumpable again.
            self.check(sys::prctl(libc::PR_SET_DUMPABLE, 1, 0), ChildStep::Dumpable);
        }
        if let Some(held) = self.held {
            sys::signal_and_close(held);
        }
        if let Some((read_end, write_end)) = self.go {
            // Closing our copy of the write end lets a dead parent be seen as EOF.
            sys::close(write_end);
            let mut byte = [0u8];
            if sys::read(read_end, &mut byte) != Ok(1) {
                self.fail(ChildStep::WaitForRelease, Errno::ECHILD);
            }
        }
    }

    /// In a new user namespace whose maps the parent has written: become its root.
    fn become_root(&self) {
        let launch = self.launch;
        if !launch.become_root {
            return;
        }
        if !launch.groups_denied {
            self.check(sys::setgroups(&[]), ChildStep::RootGroups);
        }
        self.check(sys::setresgid(0), ChildStep::RootGid);
        self.check(sys::setresuid(0), ChildStep::RootUid);
    }

    fn set_soft_limits(&self) {
        for &(resource, soft) in &self.launch.soft_limits {
            match sys::getrlimit(resource) {
                Ok((_, hard)) => {
                    let soft = soft.min(hard);
                    self.check(
                        sys::setrlimit(resource, soft, hard),
                        ChildStep::Setrlimit {
                            resource,
                            soft,
                            hard,
                        },
                    )
                }
                Err(e) => self.fail(ChildStep::Getrlimit(resource), e),
            }
        }
    }

    fn set_parent_death_signal(&self) {
        let launch = self.launch;
        let Some(signal) = launch.parent_death_signal else {
            return;
        };
        self.check(
            sys::set_parent_death_signal(signal),
            ChildStep::ParentDeathSignal(signal),
        );
        // The parent may have died before the prctl: then no signal will ever come.
        // In a new pid namespace getppid() is 0 and the protocol socket tells instead.
        let new_pid_ns = launch.clone_flags & libc::CLONE_NEWPID as u64 != 0;
        if !new_pid_ns && sys::getppid() != self.parent {
            let parent = self.parent;
            self.fail(ChildStep::ParentDied { parent }, Errno::ECHILD);
        }
    }

    fn check<T>(&self, result: Result<T, Errno>, step: ChildStep<()>) {
        if let Err(errno) = result {
            self.fail(step, errno);
        }
    }

    /// Two passes so a source fd is never overwritten by an earlier target: first dup every
    /// source above all of them, then onto its target (dup2 clears close-on-exec).
    fn map_fds(&self) {
        let mut staged = [0 as RawFd; MAX_MAPPED_FDS];
        for (i, &(source, target)) in self.launch.fd_map.iter().enumerate() {
            match sys::dup_from(source, self.scratch_base) {
                Ok(fd) => staged[i] = fd,
                Err(e) => self.fail(ChildStep::StageFd { source, target }, e),
            }
        }
        for (i, &(source, target)) in self.launch.fd_map.iter().enumerate() {
            self.check(
                sys::dup2(staged[i], target),
                ChildStep::MapFd { source, target },
            );
        }
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
