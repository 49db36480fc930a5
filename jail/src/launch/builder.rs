//! A launch described before it starts: what to exec, with which arguments, environment and
//! fds, in which namespaces and cgroup, held or not, and what the child does to itself before
//! execve (become root of its user namespace, mount /proc, drop privileges, seccomp).

use super::{cstring, LaunchError};
use crate::creds::PrivilegeDrop;
use crate::sys::PID_DIGITS;
use std::ffi::{CString, OsStr};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A process to start: what to exec, with which arguments, environment and fds.
#[derive(Debug)]
pub struct Launch {
    pub(super) program: CString,
    pub(super) program_path: PathBuf,
    pub(super) argv: Vec<CString>,
    pub(super) envp: Vec<CString>,
    pub(super) fd_map: Vec<(RawFd, RawFd)>,
    pub(super) clone_flags: u64,
    pub(super) grouping: Grouping,
    pub(super) parent_death_signal: Option<i32>,
    pub(super) cwd: Option<CString>,
    pub(super) hold: bool,
    pub(super) become_root: bool,
    /// The parent denies setgroups(2) in the child's user namespace (it writes its maps
    /// without CAP_SETGID), so the child keeps the groups it has instead of clearing them.
    pub(super) groups_denied: bool,
    pub(super) drop: Option<PrivilegeDrop>,
    pub(super) last_cap: u32,
    pub(super) cgroup: Option<RawFd>,
    pub(super) seccomp: Option<crate::seccomp::Filter>,
    pub(super) mount_proc: bool,
    /// Soft limits set in the child (resource, soft), hard limits untouched.
    pub(super) soft_limits: Vec<(u32, u64)>,
    /// Index in `envp` of a `KEY=` entry with room for digits, where the child writes its
    /// own pid (systemd's LISTEN_PID must be the pid the payload sees from getpid()).
    pub(super) own_pid_env: Option<usize>,
    /// Share the parent's fd table at the clone, then keep only its low fds (see
    /// [`Launch::fresh_fd_table`]); the pidfd is parked at or above this floor.
    pub(super) fresh_fd_table: Option<RawFd>,
    /// The child is our parent's, not ours (CLONE_PARENT): see [`Launch::as_sibling`].
    pub(super) sibling: bool,
    /// Fds above the mapped ones that a child continuing in this process keeps at their
    /// numbers (see [`Launch::keep_fd`]), sorted.
    pub(super) kept_fds: Vec<RawFd>,
}

/// The session and process group a child starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grouping {
    /// Its parent's.
    Inherited,
    /// A process group of its own, in its parent's session.
    OwnProcessGroup,
    /// A session (and so a process group) of its own.
    OwnSession,
}

impl Launch {
    /// `program` is the path to exec (not searched in PATH: see [`super::find_program`]); `argv`
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
            grouping: Grouping::Inherited,
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
            kept_fds: Vec::new(),
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

    /// setsid(2) in the child: no controlling terminal, its own process group (the last of
    /// this and [`Launch::new_process_group`] asked for holds).
    pub fn new_session(&mut self) -> &mut Self {
        self.grouping = Grouping::OwnSession;
        self
    }

    /// setpgid(0, 0) in the child: its own process group in its parent's session. For a
    /// child of a session leader that has no controlling terminal, this is a new session's
    /// isolation from terminal signals without what setsid also costs: every session is a
    /// scheduler autogroup of its own (`kernel.sched_autogroup_enabled`), a task group the
    /// kernel's load balancing walks on every tick while its load decays.
    pub fn new_process_group(&mut self) -> &mut Self {
        self.grouping = Grouping::OwnProcessGroup;
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

    /// For [`Launch::fork`]: the child keeps this fd of ours at its number (a log socket its
    /// code goes on using), where every other fd above the mapped ones is closed.
    pub fn keep_fd(&mut self, fd: RawFd) -> &mut Self {
        if let Err(at) = self.kept_fds.binary_search(&fd) {
            self.kept_fds.insert(at, fd);
        }
        self
    }

    /// Hold the child before it does anything until [`super::Launched::release`].
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
    pub(super) fn may_share_memory(&self) -> bool {
        crate::vfork::AVAILABLE
            && !self.hold
            && !self.become_root
            && self.drop.as_ref().is_none_or(PrivilegeDrop::keeps_ids)
            && self.clone_flags & libc::CLONE_NEWUSER as u64 == 0
    }
}
