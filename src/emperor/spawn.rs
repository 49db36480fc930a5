//! Starting a vassal runtime: a socketpair for the protocol, then clone3 + execve of the
//! runtime binary (`emperor-vassal vassal`, see [`super::runtime_binary`]), with a clean
//! environment and stdin on /dev/null.

use super::fd_budget::PARK_FLOOR;
use super::identity;
use super::table::Process;
use super::Settings;
use crate::clone_server::{CloneServer, Failure, RuntimeStart, StartError, WireMaps};
use crate::config::LoadOptions;
use crate::policy::{payload, uwsgi};
use crate::protocol::{ENV_FD, VASSAL_FD};
use crate::runtime_args::VassalArgs;
use jail::cgroup::VassalCgroup;
use jail::launch::LaunchError;
use jail::ns::Namespaces;
use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Where the runtime finds its payload's cgroup directory.
const CGROUP_FD: i32 = 4;
/// Where the runtime finds the socket the emperor holds for an on-demand vassal.
const HELD_FD: i32 = 5;
/// Where the runtime finds the sealed memfd of a config that came from a store.
const CONFIG_FD: i32 = 6;
/// Where the runtime finds the keeper's image it hibernates into.
const KEEPER_FD: i32 = 7;

/// Environment variables the emperor hands down to its runtimes (log settings only).
/// The log settings: the runtimes log as the emperor does (filter, format, the journal).
const PASSED_ENV: [&str; 5] = [
    "RUST_LOG",
    "EMPEROR_LOG",
    crate::logging::FORMAT_VARIABLE,
    "JOURNAL_STREAM",
    crate::logging::journal::SOCKET_VARIABLE,
];

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("socketpair for the protocol: {0}")]
    SocketPair(std::io::Error),
    #[error("{0}")]
    Launch(#[from] LaunchError),
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("{0}")]
    Sys(#[from] jail::SysError),
    /// The clone server could not start it (its reason, worded as a local start's).
    #[error("{0}")]
    Refused(String),
}

impl SpawnError {
    /// The emperor (EMFILE) or the system (ENFILE) is out of file descriptors.
    pub fn out_of_fds(&self) -> bool {
        let errno = match self {
            SpawnError::SocketPair(e) => e.raw_os_error().map(nix::errno::Errno::from_raw),
            SpawnError::Sys(e)
            | SpawnError::Launch(LaunchError::Sys(e))
            | SpawnError::Start(StartError::Launch(LaunchError::Sys(e))) => Some(e.errno),
            SpawnError::Launch(LaunchError::Child { errno, .. })
            | SpawnError::Start(StartError::Launch(LaunchError::Child { errno, .. })) => {
                Some(*errno)
            }
            _ => None,
        };
        matches!(
            errno,
            Some(nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE)
        )
    }
}

/// What one vassal's runtime gets besides what every runtime gets.
#[derive(Debug, Default)]
pub struct RuntimeExtra {
    /// Fallback levels to go down at once (`--fall-back`).
    pub fall_back: u32,
    /// Options set before its config's own (`--set`), after the emperor's `vassal-set`s: the
    /// on-demand socket a store gave in its own column.
    pub sets: Vec<(String, String)>,
    /// Its name and tenant, for its runtime's log records (`--name`, `--tenant`).
    pub name: String,
    pub tenant: String,
}

/// What every spawn needs, prepared once.
#[derive(Debug)]
pub struct Spawner {
    binary: PathBuf,
    /// The uWSGI binary uWSGI applications run, or why there is none.
    uwsgi: Result<PathBuf, crate::policy::uwsgi::UwsgiError>,
    dev_null: OwnedFd,
    sets: Vec<(String, String)>,
    includes: Vec<PathBuf>,
    env: Vec<(String, String)>,
    /// Namespaces created by the clone itself: all asked for but net (entered by the runtime
    /// once its sockets are bound), plus a user namespace when one is needed.
    cloned: Namespaces,
    /// The jail every runtime is told about (its fds are filled in per spawn).
    jail: crate::policy::JailContext,
    /// When runtimes hibernate (`--emperor-hibernate-after`).
    hibernate_after: Option<std::time::Duration>,
    /// The keeper's image, sealed once and handed to every runtime: one copy in memory.
    keeper: Option<OwnedFd>,
    /// The open-files soft limit the emperor started with, given back to its runtimes.
    open_files: Option<u64>,
    /// Clones the runtimes that get a user namespace (see [`crate::clone_server`]); None
    /// when no runtime gets one, or once the server is gone.
    clone_server: RefCell<Option<CloneServer>>,
}

/// Where the spawner's clone server comes from.
pub enum CloneServerSource {
    /// Started now, if runtimes need one.
    Start,
    /// Handed over by the emperor this one replaces (an upgrade).
    HandedOver(Option<CloneServer>),
}

impl Spawner {
    pub fn new(settings: &Settings, source: CloneServerSource) -> std::io::Result<Self> {
        let binary = super::runtime_binary::choose(settings.runtime_binary.as_deref())?;
        let path = std::env::var("PATH").unwrap_or_else(|_| payload::DEFAULT_PATH.to_string());
        let uwsgi = uwsgi::find_binary(settings.uwsgi_binary.as_deref(), &path);
        match &uwsgi {
            Ok(found) => info!(binary = %found.display(), "uWSGI applications run this uWSGI"),
            Err(e) => info!("{e} (only configs naming a binary patch can run)"),
        }
        let dev_null: OwnedFd = std::fs::File::open("/dev/null")?.into();
        let env: Vec<(String, String)> = PASSED_ENV
            .iter()
            .filter_map(|key| {
                std::env::var(key)
                    .ok()
                    .map(|value| (key.to_string(), value))
            })
            .collect();
        // An unprivileged emperor has no CAP_SYS_ADMIN: only a user namespace of each
        // vassal's own makes namespaces (and tyrant mode) possible.
        let user_ns = settings.tyrant || settings.identity.is_some();
        let cloned = crate::policy::cloned_namespaces(settings.use_clone, user_ns);
        let jail = crate::policy::JailContext {
            emperor_namespaces: settings.use_clone,
            cloned,
            tyrant: settings.tyrant,
            ceilings: settings.ceilings,
            cgroup_fd: None,
            tyrant_ports: if settings.tyrant {
                settings.tyrant_ports.clone()
            } else {
                Default::default()
            },
            held_fd: None,
        };
        // Started now, while the emperor is small and has its full privileges. The root
        // emperor's server starts every runtime, in copies of itself; the unprivileged
        // emperor's, handed over by an upgrade, only those with a user namespace, executing
        // the runtime binary (a copy would keep the old binary's code).
        let in_process = settings.identity.is_none();
        let clone_server = if let CloneServerSource::HandedOver(server) = source {
            server
        } else if in_process || cloned.contains(Namespaces::USER) {
            match CloneServer::start(
                &binary,
                settings.identity,
                &env,
                dev_null.as_fd(),
                in_process,
            ) {
                Ok(server) => {
                    info!(pid = server.pid().as_raw(), "clone server started");
                    Some(server)
                }
                Err(e) => {
                    warn!("{e}: runtimes are cloned by the emperor");
                    None
                }
            }
        } else {
            None
        };
        Ok(Spawner {
            binary,
            uwsgi,
            dev_null,
            sets: settings.vassal_sets.clone(),
            includes: settings.vassals_include.clone(),
            env,
            cloned,
            jail,
            open_files: None,
            hibernate_after: settings.hibernate_after,
            keeper: settings.hibernate_after.and_then(|_| keeper_image()),
            clone_server: RefCell::new(clone_server),
        })
    }

    /// What the runtime for `config` is asked to run, before the fds it is handed.
    fn runtime_args(&self, config: &Path, extra: &RuntimeExtra) -> VassalArgs {
        VassalArgs {
            config: config.to_path_buf(),
            config_fd: None,
            load: LoadOptions {
                sets: self.sets.iter().chain(&extra.sets).cloned().collect(),
                includes: self.includes.clone(),
                environment: None,
            },
            jail: self.jail.clone(),
            fallback_tried: Vec::new(),
            fall_back: extra.fall_back,
            uwsgi_binary: self.uwsgi.as_ref().ok().cloned(),
            name: Some(extra.name.clone()),
            tenant: Some(extra.tenant.clone()),
            hibernate_after: self.hibernate_after,
            resume_fd: None,
            keeper_fd: None,
        }
    }

    /// The uWSGI binary a config without a binary patch runs, or why there is none.
    pub fn uwsgi_binary(&self) -> Result<&Path, &uwsgi::UwsgiError> {
        self.uwsgi.as_deref()
    }

    /// The environment every runtime starts with (what `$(VAR)` sees in its config).
    /// The runtime binary (which also serves as the clone server and the config reader).
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn runtime_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(ENV_FD.to_string(), VASSAL_FD.to_string())];
        env.extend(self.env.iter().cloned());
        env
    }

    /// The open-files soft limit runtimes get (the emperor raised its own).
    pub fn give_back_open_files_limit(&mut self, soft: u64) {
        self.open_files = Some(soft);
    }

    /// Start a runtime for `config`; `owner` (uid, gid) becomes its user namespace's root;
    /// `held` is the socket the emperor holds for it (on demand or a pool); `extra` what this
    /// runtime gets besides the others. `text` is the config's text when it came from a
    /// store (`config` is then its name): it reaches the runtime as a sealed memfd on fd 6.
    ///
    /// A start the clone server takes is only sent here ([`Begun::Sent`]): its answer is
    /// [`Spawner::finish`]'s, so that a batch of spawns waits for the server once, not once
    /// per spawn while the server waits for a CPU among the runtimes it started.
    pub fn begin(
        &self,
        config: &Path,
        owner: Option<(u32, u32)>,
        cgroup: Option<&VassalCgroup>,
        held: Option<BorrowedFd<'_>>,
        extra: &RuntimeExtra,
        text: Option<&str>,
    ) -> Result<Begun, SpawnError> {
        let (emperor_end, vassal_end) = UnixStream::pair().map_err(SpawnError::SocketPair)?;
        emperor_end
            .set_nonblocking(true)
            .map_err(SpawnError::SocketPair)?;
        let emperor_end = UnixStream::from(jail::fd::park_above(emperor_end.into(), PARK_FLOOR));
        let mut args = self.runtime_args(config, extra);
        // The runtime starts in its cgroup leaf; as root, the emperor also hands it its
        // payload's leaf as fd 4 (an unprivileged emperor cannot give that leaf to a tenant).
        let cgroup_fds = match cgroup {
            Some(cgroup) => {
                let runtime = jail::cgroup::open_dir(&cgroup.runtime_dir())?;
                let payload = if nix::unistd::geteuid().is_root() {
                    args.jail.cgroup_fd = Some(CGROUP_FD);
                    Some(jail::cgroup::open_dir(&cgroup.payload_dir())?)
                } else {
                    None
                };
                Some((runtime, payload))
            }
            None => None,
        };
        args.jail.held_fd = held.is_some().then_some(HELD_FD);
        let memfd = text
            .map(|text| super::inline::sealed(config, text))
            .transpose()?;
        args.config_fd = memfd.is_some().then_some(CONFIG_FD);
        args.keeper_fd = self.keeper.is_some().then_some(KEEPER_FD);
        let mut argv = vec![self.binary.display().to_string()];
        argv.extend(args.to_argv());
        // The fds it is handed, each with where it lands; the cgroup it starts in comes last.
        let mut fds = vec![(self.dev_null.as_fd(), 0), (vassal_end.as_fd(), VASSAL_FD)];
        fds.extend(memfd.as_ref().map(|memfd| (memfd.as_fd(), CONFIG_FD)));
        if let Some((_, Some(payload))) = &cgroup_fds {
            fds.push((payload.as_fd(), CGROUP_FD));
        }
        fds.extend(held.map(|held| (held, HELD_FD)));
        fds.extend(
            self.keeper
                .as_ref()
                .map(|keeper| (keeper.as_fd(), KEEPER_FD)),
        );
        let start = RuntimeStart {
            program: self.binary.clone(),
            argv,
            env: self.runtime_env(),
            fd_targets: fds.iter().map(|&(_, target)| target).collect(),
            into_cgroup: cgroup_fds.is_some(),
            namespaces: self.cloned.0,
            open_files: self.open_files,
            maps: self.cloned.contains(Namespaces::USER).then(|| {
                let (uid, gid) = owner.unwrap_or((
                    nix::unistd::getuid().as_raw(),
                    nix::unistd::getgid().as_raw(),
                ));
                WireMaps::from(&identity::maps_for(uid, gid))
            }),
        };
        let mut handed: Vec<BorrowedFd<'_>> = fds.iter().map(|&(fd, _)| fd).collect();
        handed.extend(cgroup_fds.as_ref().map(|(runtime, _)| runtime.as_fd()));
        // The fds sent with a start are the message's: ours close when this returns.
        if self.send_to_clone_server(&start, &handed)? {
            return Ok(Begun::Sent(SentSpawn { link: emperor_end }));
        }
        let running = self.start_here(&start, &handed)?;
        drop(vassal_end);
        Ok(Begun::Started(process(running.into(), emperor_end)))
    }

    /// The runtime of a start sent to the clone server: its answers come in the order the
    /// starts were sent. A server gone meanwhile fails the start (the vassal is spawned again
    /// as after any failed spawn, by the emperor itself from then on); a runtime the server
    /// may have started before it died finds its link closed and stops.
    pub fn finish(&self, sent: SentSpawn) -> Result<Process, SpawnError> {
        let mut server = self.clone_server.borrow_mut();
        let Some(active) = server.as_ref() else {
            return Err(SpawnError::Refused(
                "the clone server went away before it answered".to_string(),
            ));
        };
        match active.receive_started() {
            Ok(running) => Ok(process(running.into(), sent.link)),
            Err(Failure::Refused(reason)) => Err(SpawnError::Refused(reason)),
            Err(Failure::Gone(reason)) => {
                lose_clone_server(&mut server, &reason);
                Err(SpawnError::Refused(format!(
                    "the clone server went away before it answered ({reason})"
                )))
            }
        }
    }

    /// The clone server takes the starts it is for while there is one (all of them, or those
    /// with a user namespace): true once `start` is sent to it.
    fn send_to_clone_server(
        &self,
        start: &RuntimeStart,
        fds: &[BorrowedFd<'_>],
    ) -> Result<bool, SpawnError> {
        let mut server = self.clone_server.borrow_mut();
        let takes = |server: &&CloneServer| server.starts_every_runtime() || start.user_namespace();
        let Some(active) = server.as_ref().filter(takes) else {
            return Ok(false);
        };
        match active.send_start(start, fds) {
            Ok(()) => Ok(true),
            Err(Failure::Refused(reason)) => Err(SpawnError::Refused(reason)),
            Err(Failure::Gone(reason)) => {
                lose_clone_server(&mut server, &reason);
                Ok(false)
            }
        }
    }

    /// Start a runtime here, in the emperor's memory until its execve.
    fn start_here(
        &self,
        start: &RuntimeStart,
        fds: &[BorrowedFd<'_>],
    ) -> Result<jail::launch::Running, SpawnError> {
        let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let mut launch = start.launch(&raw)?;
        launch.fresh_fd_table(PARK_FLOOR);
        Ok(start.start(&launch)?)
    }

    /// The emperor is done spawning: the server's socket closes and it exits.
    /// The clone server the emperor this one replaces started (an upgrade).
    pub fn adopt_clone_server(&mut self, server: CloneServer) {
        self.clone_server = RefCell::new(Some(server));
    }

    /// The clone server's process and socket, for the binary that replaces the emperor; none
    /// for a server running runtimes in copies of itself, which would keep this binary's
    /// code: it exits once the execve closes its socket, and the new emperor starts its own.
    pub fn clone_server_handover(&self) -> Option<(nix::unistd::Pid, RawFd, RawFd)> {
        let server = self.clone_server.borrow();
        let server = server.as_ref().filter(|s| !s.starts_every_runtime())?;
        let (running, socket) = server.handover();
        Some((running.pid, running.pidfd.as_raw_fd(), socket.as_raw_fd()))
    }

    /// The open-files soft limit the emperor started with (given back to its runtimes).
    pub fn open_files(&self) -> Option<u64> {
        self.open_files
    }

    pub fn stop_clone_server(&self) {
        self.clone_server.borrow_mut().take();
    }

    /// The clone server's pid while it runs: a child of the emperor that is not a stray.
    pub fn clone_server_pid(&self) -> Option<nix::unistd::Pid> {
        self.clone_server.borrow().as_ref().map(CloneServer::pid)
    }
}

/// The clone server is gone (it has been killed): say so, and start runtimes here from now on.
fn lose_clone_server(server: &mut Option<CloneServer>, reason: &str) {
    if let Some(gone) = server.take() {
        warn!(
            pid = gone.pid().as_raw(),
            "the clone server is gone ({reason}): runtimes are cloned by the emperor from now on"
        );
    }
}

/// A spawn begun by [`Spawner::begin`].
#[derive(Debug)]
pub enum Begun {
    /// Its runtime started here.
    Started(Process),
    /// Sent to the clone server: [`Spawner::finish`] takes its answer.
    Sent(SentSpawn),
}

/// A start sent to the clone server, waiting for its answer: the emperor's end of the
/// runtime's link.
#[derive(Debug)]
pub struct SentSpawn {
    link: UnixStream,
}

fn process(running: super::table::Runtime, link: UnixStream) -> Process {
    Process {
        running,
        link,
        link_closed: false,
        outbox: Default::default(),
        watching_out: false,
    }
}

/// The keeper's image sealed in a memfd for every runtime; none (each runtime seals its own,
/// or cannot hibernate) when that fails.
fn keeper_image() -> Option<OwnedFd> {
    jail::keeper::image()?;
    match jail::keeper::sealed_image() {
        Ok(image) => Some(jail::fd::park_above(image, PARK_FLOOR)),
        Err(e) => {
            warn!("the keeper's image for runtimes to hibernate into: {e}");
            None
        }
    }
}
