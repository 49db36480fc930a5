//! Start a program in a new process with clone3(2): optionally in new namespaces, with a pidfd,
//! a chosen set of fds, a clean signal state and, if asked, held until the parent has finished
//! its part (writing user-namespace maps) and releases it.
//!
//! Everything the child needs is prepared before the clone (C strings, pointer arrays, fd
//! tables), so the child between clone and execve runs only async-signal-safe system calls:
//! the emperor may have other threads, whose locks the child would otherwise inherit held.

use crate::creds::PrivilegeDrop;
use crate::error::{Errno, SysError};
use crate::sys;
use nix::fcntl::OFlag;
use nix::unistd::Pid;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Most fds a launch maps into the child; more is a caller bug.
const MAX_MAPPED_FDS: usize = 64;
/// Exit status of a child that could not exec (as a shell reports a missing program).
const EXEC_FAILED_STATUS: i32 = 127;
/// clone3 flag: start the child in the cgroup given by `clone_args.cgroup` (linux/sched.h).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("argument {0:?} contains a NUL byte")]
    NulByte(String),
    #[error("too many fds to pass: {0} (at most {MAX_MAPPED_FDS})")]
    TooManyFds(usize),
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{step} (before execve {}): {errno}", program.display())]
    Child {
        program: PathBuf,
        step: &'static str,
        errno: Errno,
    },
}

/// What the child was doing when it failed, reported to the parent by index.
const CHILD_STEPS: [&str; 20] = [
    "execve",
    "wait for release",
    "enter the user namespace as root: setgroups",
    "enter the user namespace as root: setresgid",
    "enter the user namespace as root: setresuid",
    "prctl(PR_SET_PDEATHSIG)",
    "parent died before the child started",
    "dup the fds to pass",
    "close_range(CLOSE_RANGE_CLOEXEC)",
    "chdir",
    "setrlimit",
    "prctl(PR_CAPBSET_DROP)",
    "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
    "prctl(PR_SET_KEEPCAPS)",
    "setgroups",
    "setresgid",
    "setresuid",
    "capset",
    "prctl(PR_CAP_AMBIENT_RAISE)",
    "prctl(PR_SET_NO_NEW_PRIVS)",
];
/// Steps reported by name beyond the table above.
const MORE_CHILD_STEPS: [&str; 8] = [
    "getrlimit",
    "verify the drop",
    "capget",
    "install the seccomp filter",
    "prctl(PR_SET_DUMPABLE)",
    "mount proc on /proc",
    "close_range(CLOSE_RANGE_UNSHARE)",
    "unknown step",
];

fn step_index(step: &str) -> u32 {
    let all = CHILD_STEPS.iter().chain(MORE_CHILD_STEPS.iter());
    all.clone()
        .position(|s| *s == step)
        .unwrap_or(CHILD_STEPS.len() + MORE_CHILD_STEPS.len() - 1) as u32
}

fn step_name(index: u32) -> &'static str {
    CHILD_STEPS
        .iter()
        .chain(MORE_CHILD_STEPS.iter())
        .nth(index as usize)
        .copied()
        .unwrap_or("unknown step")
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
    become_root: bool,
    /// The parent denies setgroups(2) in the child's user namespace (it writes its maps
    /// without CAP_SETGID), so the child keeps the groups it has instead of clearing them.
    groups_denied: bool,
    drop: Option<PrivilegeDrop>,
    last_cap: u32,
    cgroup: Option<RawFd>,
    seccomp: Option<crate::seccomp::Filter>,
    mount_proc: bool,
    /// Soft limits set in the child (resource, soft), hard limits untouched.
    soft_limits: Vec<(u32, u64)>,
    /// Index in `envp` of a `KEY=` entry with room for digits, where the child writes its
    /// own pid (systemd's LISTEN_PID must be the pid the payload sees from getpid()).
    own_pid_env: Option<usize>,
    /// Share the parent's fd table at the clone, then keep only its low fds (see
    /// [`Launch::fresh_fd_table`]); the pidfd is parked at or above this floor.
    fresh_fd_table: Option<RawFd>,
    /// The child is our parent's, not ours (CLONE_PARENT): see [`Launch::as_sibling`].
    sibling: bool,
}

/// Room for the longest pid in decimal, plus its NUL.
const PID_DIGITS: usize = 20;

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
            become_root: false,
            groups_denied: false,
            drop: None,
            last_cap: crate::caps::last_cap(),
            cgroup: None,
            seccomp: None,
            mount_proc: false,
            soft_limits: Vec::new(),
            own_pid_env: None,
            fresh_fd_table: None,
            sibling: false,
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

    /// Add `KEY=PID` to the child's environment, PID being the child's own pid as it sees it
    /// (in its own pid namespace if it has one). The parent cannot know it before the clone,
    /// so the entry is reserved here with room for the digits and the child fills it in,
    /// async-signal-safely, in its own copy of memory just before execve.
    pub fn env_own_pid(&mut self, key: impl AsRef<OsStr>) -> Result<&mut Self, LaunchError> {
        let mut pair = key.as_ref().as_bytes().to_vec();
        pair.push(b'=');
        pair.extend_from_slice(&[b'0'; PID_DIGITS]);
        self.envp.push(cstring(&pair)?);
        self.own_pid_env = Some(self.envp.len() - 1);
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

    /// In a new user namespace whose maps the parent writes: become its root (no groups,
    /// gid 0, uid 0) before anything else, so the child never acts with the parent's host ids.
    ///
    /// A parent without CAP_SETGID can only map its own ids and must deny setgroups(2) in
    /// the namespace first ([`crate::userns::write_maps_from_parent`] does): the child then
    /// keeps the supplementary groups it was started with, which are the parent's own.
    pub fn become_root_in_user_namespace(&mut self) -> &mut Self {
        self.become_root = true;
        self.groups_denied = crate::userns::setgroups_denied_by_us();
        self
    }

    /// Drop privileges in the child just before execve.
    pub fn drop_privileges(&mut self, mut drop: PrivilegeDrop) -> &mut Self {
        drop.groups_locked = crate::userns::setgroups_locked_here();
        self.drop = Some(drop);
        self
    }

    /// Start the child in this cgroup v2 directory (CLONE_INTO_CGROUP).
    pub fn into_cgroup(&mut self, dir_fd: RawFd) -> &mut Self {
        self.cgroup = Some(dir_fd);
        self
    }

    /// Install this seccomp filter last, right before execve.
    pub fn seccomp(&mut self, filter: crate::seccomp::Filter) -> &mut Self {
        self.seccomp = Some(filter);
        self
    }

    /// Set a soft resource limit in the child (e.g. give back the open-files limit the parent
    /// raised for itself).
    pub fn soft_limit(&mut self, resource: u32, soft: u64) -> &mut Self {
        self.soft_limits.push((resource, soft));
        self
    }

    /// Mount a procfs for the child's own (new) pid namespace on /proc before the drop.
    pub fn mount_proc(&mut self) -> &mut Self {
        self.mount_proc = true;
        self
    }

    /// For a parent with thousands of fds (the emperor: a socket and a pidfd per vassal): the
    /// child shares the parent's fd table at the clone (CLONE_FILES, nothing copied) and its
    /// first step takes a private copy of only the fds below the highest one it needs
    /// (close_range with CLOSE_RANGE_UNSHARE), so neither the fork copies nor the execve
    /// closes every fd of the parent, which made each spawn O(vassals). The parent waits for
    /// that step before it touches its fds again. Its own long-lived fds should be parked
    /// above `park_floor` ([`crate::fd::park_above`]), as the child's pidfd is, so the fds a
    /// spawn creates get the low numbers.
    pub fn fresh_fd_table(&mut self, park_floor: RawFd) -> &mut Self {
        self.fresh_fd_table = Some(park_floor);
        self
    }

    /// Make the child our parent's child rather than ours (CLONE_PARENT): how a small helper
    /// clones processes on behalf of a large parent without the parent's memory being copied,
    /// while the parent still reaps them, gets their SIGCHLD, and is the parent whose death
    /// sends the child its [`Launch::parent_death_signal`].
    pub fn as_sibling(&mut self) -> &mut Self {
        self.sibling = true;
        self
    }

    /// Hold the child before it does anything until [`Launched::release`].
    pub fn hold(&mut self) -> &mut Self {
        self.hold = true;
        self
    }

    /// Whether the child may run in the parent's memory until its execve ([`crate::vfork`]):
    /// when nobody waits on it midway (a held child runs while the parent writes its maps),
    /// and it changes no uid or gid (which would reset the dumpable flag of the memory it
    /// shares, the parent's: a drop of capabilities alone, a root vassal's, does not) and
    /// enters no new user namespace (left to the copying clone, as Go does). Everything else
    /// the child changes (credentials, rlimits, seccomp, no_new_privs, signal dispositions)
    /// belongs to the child's task or to its own signal struct, not to the shared memory.
    fn may_share_memory(&self) -> bool {
        crate::vfork::AVAILABLE
            && !self.hold
            && !self.become_root
            && self.drop.as_ref().is_none_or(PrivilegeDrop::keeps_ids)
            && self.clone_flags & libc::CLONE_NEWUSER as u64 == 0
    }

    /// clone3 the child. Unless held, it runs on at once; call [`Launched::release`] either way
    /// to learn whether its execve worked.
    pub fn start(&self) -> Result<Launched, LaunchError> {
        if self.fd_map.len() > MAX_MAPPED_FDS {
            return Err(LaunchError::TooManyFds(self.fd_map.len()));
        }
        let argv_ptrs = null_terminated(&self.argv);
        let mut envp_ptrs = null_terminated(&self.envp);
        // The entry the child fills with its own pid is a buffer of its own, mutable here,
        // which the child's copy of memory may then change.
        let mut own_pid_entry = self
            .own_pid_env
            .map(|i| self.envp[i].as_bytes_with_nul().to_vec());
        if let (Some(i), Some(entry)) = (self.own_pid_env, own_pid_entry.as_mut()) {
            envp_ptrs[i] = entry.as_ptr() as *const libc::c_char;
        }
        let own_pid_slot = own_pid_entry
            .as_mut()
            .map(|entry| (entry.as_mut_ptr(), entry.len()));
        let (report_read, report_write) = pipe()?;
        let go = if self.hold { Some(pipe()?) } else { None };
        // A held child says when it is ready to be worked on (dumpable, waiting for go).
        let held = if self.hold { Some(pipe()?) } else { None };
        // A fresh-table child says when it has its own table (one byte, or it failed).
        let unshared = if self.fresh_fd_table.is_some() {
            Some(pipe()?)
        } else {
            None
        };
        let keep_below = self.fresh_fd_table.map(|_| {
            let needed = self
                .fd_map
                .iter()
                .map(|&(source, _)| source)
                .chain([report_write.as_raw_fd()])
                .chain(go.iter().flat_map(|(r, w)| [r.as_raw_fd(), w.as_raw_fd()]))
                .chain(held.iter().map(|(_, w)| w.as_raw_fd()))
                .chain(unshared.iter().map(|(_, w)| w.as_raw_fd()));
            needed.max().unwrap_or(2).max(2) + 1
        });
        let scratch_base = self
            .fd_map
            .iter()
            .map(|&(s, t)| s.max(t))
            .max()
            .unwrap_or(2)
            .max(report_write.as_raw_fd())
            + 1;
        // The process the child checks is still its parent before it goes on alone.
        let parent = if self.sibling {
            nix::unistd::getppid().as_raw()
        } else {
            nix::unistd::getpid().as_raw()
        };

        let mut pidfd: RawFd = -1;
        let share_files = if self.fresh_fd_table.is_some() {
            libc::CLONE_FILES as u64
        } else {
            0
        };
        let mut args = sys::CloneArgs {
            flags: self.clone_flags | share_files | libc::CLONE_PIDFD as u64,
            pidfd: &mut pidfd as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
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
        let child = ChildSide {
            launch: self,
            argv: &argv_ptrs,
            envp: &envp_ptrs,
            own_pid_slot,
            report: report_write.as_raw_fd(),
            go: go.as_ref().map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd())),
            held: held.as_ref().map(|(_, w)| w.as_raw_fd()),
            unshare: keep_below.zip(unshared.as_ref().map(|(_, w)| w.as_raw_fd())),
            scratch_base,
            parent,
        };
        let pid = if self.may_share_memory() {
            clone_sharing_memory(&mut args, &child)?
        } else {
            // SAFETY: the child branch below calls only `ChildSide::exec`, which is
            // async-signal-safe: it uses only values prepared above (C strings, pointer
            // arrays, raw fds) and raw system calls, and never returns.
            let pid = unsafe { sys::clone3(&mut args) }.map_err(|e| SysError::new("clone3", e))?;
            if pid == 0 {
                child.exec();
            }
            pid
        };
        // SAFETY: CLONE_PIDFD made the kernel store a fresh pidfd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        if let Some((unshared_read, _)) = &unshared {
            // Until the child has its own table, closing or opening an fd here would change
            // what it sees: wait for its byte, or for its end (a failure it has reported).
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
        let mut buf = [0u8; 8];
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
        let step = step_name(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]));
        let errno = Errno::from_raw(i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]));
        Err(LaunchError::Child {
            program: self.program,
            step,
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

/// What the child needs, borrowed from the parent's prepared values.
struct ChildSide<'a> {
    launch: &'a Launch,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// The own-pid env entry's buffer (pointer, length with its NUL), owned by `start`.
    own_pid_slot: Option<(*mut u8, usize)>,
    report: RawFd,
    go: Option<(RawFd, RawFd)>,
    held: Option<RawFd>,
    /// Take a private fd table of the fds below the first number, then say so on the second.
    unshare: Option<(RawFd, RawFd)>,
    scratch_base: RawFd,
    parent: libc::pid_t,
}

impl ChildSide<'_> {
    /// The child between clone3 and execve. Async-signal-safe only: raw syscalls on prepared
    /// values, no allocation, no locks, no Rust std I/O.
    fn exec(&self) -> ! {
        let launch = self.launch;
        if let Some((keep_below, unshared)) = self.unshare {
            // First, while the parent waits: every later step changes our fds.
            self.check(
                sys::unshare_fds_below(keep_below as u32),
                "close_range(CLOSE_RANGE_UNSHARE)",
            );
            // SAFETY: one byte from a local buffer; then our copy is closed.
            unsafe {
                libc::write(unshared, [1u8].as_ptr() as *const libc::c_void, 1);
                libc::close(unshared);
            }
        }
        if launch.hold && launch.become_root {
            // An emperor that changed its uid makes its children non-dumpable, so their
            // /proc files belong to root and it could not write our id maps. Dumpable while
            // held is harmless: a tracer needs every capability we hold; the switch to the
            // jail's root below resets it, and the runtime makes itself non-dumpable again.
            self.check(
                sys::prctl(libc::PR_SET_DUMPABLE, 1, 0),
                "prctl(PR_SET_DUMPABLE)",
            );
        }
        if let Some(held) = self.held {
            // SAFETY: one byte from a local buffer; then our copy is closed.
            unsafe {
                libc::write(held, [1u8].as_ptr() as *const libc::c_void, 1);
                libc::close(held);
            }
        }
        if let Some((read_end, write_end)) = self.go {
            // SAFETY: closing our copy of the write end lets a dead parent be seen as EOF.
            unsafe { libc::close(write_end) };
            let mut byte = 0u8;
            // SAFETY: one byte into a local buffer.
            let n = unsafe { libc::read(read_end, &mut byte as *mut u8 as *mut libc::c_void, 1) };
            if n != 1 {
                self.fail("wait for release", Errno::ECHILD);
            }
        }
        if launch.become_root && !launch.groups_denied {
            self.check(
                sys::setgroups(&[]),
                "enter the user namespace as root: setgroups",
            );
        }
        if launch.become_root {
            self.check(
                sys::setresgid(0),
                "enter the user namespace as root: setresgid",
            );
            self.check(
                sys::setresuid(0),
                "enter the user namespace as root: setresuid",
            );
        }
        if launch.mount_proc {
            self.check(sys::mount_proc_at_slash_proc(), "mount proc on /proc");
        }
        if launch.new_session {
            // SAFETY: no arguments; fails only if already a group leader, which a new child is not.
            unsafe { libc::setsid() };
        }
        self.map_fds();
        let highest = launch
            .fd_map
            .iter()
            .map(|&(_, t)| t)
            .max()
            .unwrap_or(2)
            .max(2);
        self.check(
            sys::cloexec_from(highest as u32 + 1),
            "close_range(CLOSE_RANGE_CLOEXEC)",
        );
        sys::reset_signals();
        for &(resource, soft) in &launch.soft_limits {
            match sys::getrlimit(resource) {
                Ok((_, hard)) => {
                    self.check(sys::setrlimit(resource, soft.min(hard), hard), "setrlimit")
                }
                Err(e) => self.fail("getrlimit", e),
            }
        }
        if let Some(drop) = &launch.drop {
            if let Err(failure) = drop.apply(launch.last_cap) {
                self.fail(failure.step, failure.errno);
            }
        }
        // After the drop: a credential change clears the parent-death signal.
        if let Some(signal) = launch.parent_death_signal {
            self.check(
                sys::set_parent_death_signal(signal),
                "prctl(PR_SET_PDEATHSIG)",
            );
            // The parent may have died before the prctl: then no signal will ever come.
            // In a new pid namespace getppid() is 0 and the protocol socket tells instead.
            let new_pid_ns = launch.clone_flags & libc::CLONE_NEWPID as u64 != 0;
            // SAFETY: no arguments.
            if !new_pid_ns && unsafe { libc::getppid() } != self.parent {
                self.fail("parent died before the child started", Errno::ECHILD);
            }
        }
        if let Some(dir) = &launch.cwd {
            self.check(sys::chdir(dir), "chdir");
        }
        if let Some((base, len)) = self.own_pid_slot {
            write_own_pid(base, len);
        }
        if let Some(filter) = &launch.seccomp {
            self.check(filter.install_in_child(), "install the seccomp filter");
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
        self.fail("execve", Errno::last())
    }

    fn check<T>(&self, result: Result<T, Errno>, step: &'static str) {
        if let Err(errno) = result {
            self.fail(step, errno);
        }
    }

    /// Two passes so a source fd is never overwritten by an earlier target: first dup every
    /// source above all of them, then onto its target (dup2 clears close-on-exec).
    fn map_fds(&self) {
        let mut staged = [0 as RawFd; MAX_MAPPED_FDS];
        for (i, &(source, _)) in self.launch.fd_map.iter().enumerate() {
            // SAFETY: F_DUPFD_CLOEXEC on an fd number; fails cleanly if it is not open.
            let fd = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, self.scratch_base) };
            if fd < 0 {
                self.fail("dup the fds to pass", Errno::last());
            }
            staged[i] = fd;
        }
        for (i, &(_, target)) in self.launch.fd_map.iter().enumerate() {
            // SAFETY: dup2 between fd numbers.
            if unsafe { libc::dup2(staged[i], target) } < 0 {
                self.fail("dup the fds to pass", Errno::last());
            }
        }
    }

    /// Report the failed step and errno to the parent and exit without running any
    /// destructor or atexit handler.
    fn fail(&self, step: &'static str, errno: Errno) -> ! {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&step_index(step).to_ne_bytes());
        bytes[4..].copy_from_slice(&(errno as i32).to_ne_bytes());
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

/// clone3 the child in the parent's memory ([`crate::vfork`]); returns once it has exec'ed.
#[cfg(target_arch = "x86_64")]
fn clone_sharing_memory(args: &mut sys::CloneArgs, child: &ChildSide<'_>) -> Result<i32, SysError> {
    let stack = crate::vfork::ChildStack::new()?;
    let _blocked = crate::vfork::SignalsBlocked::new()?;
    // SAFETY: `child_entry` runs `ChildSide::exec`: async-signal-safe, never returns, and
    // with `may_share_memory` true it changes no credentials and writes only its stack and
    // the own-pid buffer, which the parent only drops. `child` lives in this thread's frame,
    // which stays put while the kernel suspends the thread until the child's execve or exit.
    unsafe {
        crate::vfork::clone3_sharing_memory(
            args,
            &stack,
            child_entry,
            child as *const ChildSide<'_> as *const std::ffi::c_void,
        )
    }
    .map_err(|e| SysError::new("clone3 (CLONE_VM|CLONE_VFORK)", e))
}

#[cfg(not(target_arch = "x86_64"))]
fn clone_sharing_memory(_: &mut sys::CloneArgs, _: &ChildSide<'_>) -> Result<i32, SysError> {
    unreachable!("vfork::AVAILABLE is false on this architecture")
}

/// The first frame of a child sharing the parent's memory.
#[cfg(target_arch = "x86_64")]
extern "C" fn child_entry(arg: *const std::ffi::c_void) -> ! {
    // SAFETY: `clone_sharing_memory` passes a pointer to a live `ChildSide`, which the
    // suspended parent keeps in place until this child has exec'ed or exited.
    let child = unsafe { &*(arg as *const ChildSide<'_>) };
    child.exec()
}

/// Overwrite the reserved digits at the end of a `KEY=000...0\0` buffer with this process's
/// pid and a NUL. Async-signal-safe: getpid and byte writes.
fn write_own_pid(base: *mut u8, len_with_nul: usize) {
    let start = len_with_nul - 1 - PID_DIGITS;
    // SAFETY: no arguments.
    let mut pid = unsafe { libc::getpid() } as u64;
    let mut digits = [0u8; PID_DIGITS];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (pid % 10) as u8;
        n += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    // SAFETY: `base` points to a Vec<u8> of `len_with_nul` bytes that `Launch::start` owns and
    // borrowed mutably for this pointer before the clone; either this child has its own copy
    // of that memory, or it shares it with a parent suspended until this child's execve,
    // which then only drops the buffer. `start + n + 1` is at most
    // `len_with_nul` (n <= PID_DIGITS), so every write stays inside the buffer; the string only
    // gets shorter, which envp (a pointer to its first byte) tolerates.
    unsafe {
        for (i, digit) in digits[..n].iter().rev().enumerate() {
            *base.add(start + i) = *digit;
        }
        *base.add(start + n) = 0;
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
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
mod tests {
    use super::*;
    use std::io::Read;

    fn open_fds(pid: Pid) -> Vec<RawFd> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
            .collect()
    }

    /// A held child has done its first steps: with a fresh table it holds none of the
    /// parent's parked fds (without, it would hold all 300 until its execve closed them);
    /// it still gets the fds it is given, and the parent keeps every fd of its own.
    #[test]
    fn a_fresh_fd_table_child_copies_only_the_low_fds_it_needs() {
        const FLOOR: RawFd = 1024;
        let _ = crate::process::raise_open_files_limit();
        let dev_null = std::fs::File::open("/dev/null").unwrap();
        let parked: Vec<OwnedFd> = (0..300)
            .map(|_| crate::fd::park_above(dev_null.try_clone().unwrap().into(), FLOOR))
            .collect();
        assert!(parked.iter().all(|fd| fd.as_raw_fd() >= FLOOR));
        let (mut output, output_write) = std::io::pipe().unwrap();

        let mut launch = Launch::new(Path::new("/bin/sh"), &["sh", "-c", "echo passed"]).unwrap();
        launch
            .map_fd(output_write.as_raw_fd(), 1)
            .fresh_fd_table(FLOOR)
            .hold();
        let launched = launch.start().unwrap();
        let before_exec = open_fds(launched.pid);
        let running = launched.release().unwrap();
        drop(output_write);
        let mut said = String::new();
        output.read_to_string(&mut said).unwrap();
        nix::sys::wait::waitpid(running.pid, None).unwrap();

        assert!(
            before_exec.iter().all(|&fd| fd < FLOOR),
            "the child copied the parent's parked fds: {before_exec:?}"
        );
        assert_eq!(said, "passed\n", "the mapped fd reached the program");
        assert!(
            running.pidfd.as_raw_fd() >= FLOOR,
            "the pidfd is parked too"
        );
        for fd in &parked {
            nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD)
                .expect("the parent's fd is still open");
        }
    }
}
