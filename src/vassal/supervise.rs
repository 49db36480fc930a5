//! The runtime's init duties while a payload runs: reap every child, forward signals, turn
//! stop and reload requests into SIGTERM then SIGKILL after the mercy time, declare loyalty,
//! and never leave a descendant behind.

use super::channel::PayloadChannel;
use super::emperor_link::{EmperorLink, Heard};
use super::fifo::{FifoCommand, MasterFifo};
use super::output::PayloadOutput;
use super::ready::{ReadyCheck, PROBE_EVERY};
use crate::policy::payload::{Payload, PayloadKind};
use crate::policy::timings::Timings;
use crate::policy::VassalPlan;
use crate::protocol::{Command, Message};
use crate::sockets::Bound;
use jail::launch::{Launch, LaunchError};
use jail::process;
use jail::signals::{Sig, SignalEvents};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;
use std::os::fd::AsFd;
use std::time::Instant;
use tracing::{error, info, warn};

/// Log at `$level` when `$loud`, else at debug (a master FIFO flood's lines).
macro_rules! fifo_line {
    ($loud:expr, $level:ident, $($arg:tt)+) => {
        if $loud {
            tracing::$level!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Launch(#[from] LaunchError),
    #[error("cgroup limits: {0}")]
    Cgroup(#[from] jail::SysError),
    #[error("the payload's user namespace: {0}")]
    UserNamespace(jail::SysError),
    #[error("the payload's protocol channel: socketpair: {0}")]
    Channel(std::io::Error),
    #[error("the payload's config channel: write: {0}")]
    ConfigChannel(std::io::Error),
}

/// How a supervised run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Start the payload again on a freshly read config.
    Reload,
    /// A uWSGI payload is asked to reload: read the config again and hand it over while
    /// uWSGI reloads itself gracefully (its sockets and its pid stay).
    ReloadInPlace,
    /// Exit the runtime with this status.
    Exit(i32),
}

/// A stop in progress: what comes after, and when patience ends.
#[derive(Debug, Clone, Copy)]
struct Stopping {
    then: Outcome,
    kill_at: Instant,
    killed: bool,
    /// A uWSGI payload reloading itself: it ends when uWSGI asks for its config (byte 2).
    in_place: bool,
}

#[derive(Debug)]
pub struct Supervisor {
    signals: SignalEvents,
    /// The payload's cgroup directory, if the emperor gave one.
    cgroup: Option<std::os::fd::OwnedFd>,
    payload: Option<Pid>,
    payload_status: Option<i32>,
    /// The running payload's kind and its own protocol channel.
    kind: PayloadKind,
    channel: Option<PayloadChannel>,
    /// The read end of the running payload's stdout and stderr.
    output: Option<PayloadOutput>,
    /// The config a uWSGI payload gets when it asks (at start and before each reload re-exec).
    config_frame: Option<Vec<u8>>,
    /// The uWSGI payload said it is ready (byte 1) since it started.
    said_ready: bool,
    /// A stop begun outside [`Self::supervise`] (an in-place reload), taken up by it.
    pending_stop: Option<Stopping>,
    started_at: Instant,
    /// The master FIFO, if the config names one.
    pub fifo: Option<MasterFifo>,
    /// Where `P` writes the payload's pid (`pidfile`).
    pub pidfile: Option<std::path::PathBuf>,
    /// The payload's process group is stopped (`p`).
    paused: bool,
    /// The last payload exited on its own before it was loyal (uWSGI's "failed to start").
    pub failed_to_start: bool,
    /// What makes the payload ready (byte 5), and when to probe next while it is not.
    pub ready: ReadyCheck,
    probe_at: Option<Instant>,
}

/// How many SIGKILL sweeps over the process tree before giving up, and the pause between
/// them (a killed process takes a moment to become a zombie).
const KILL_PASSES: usize = 200;
const KILL_PASS_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

impl Supervisor {
    pub fn new(signals: SignalEvents, cgroup: Option<std::os::fd::OwnedFd>) -> Self {
        Supervisor {
            signals,
            cgroup,
            payload: None,
            payload_status: None,
            kind: PayloadKind::Patch,
            channel: None,
            output: None,
            config_frame: None,
            said_ready: false,
            pending_stop: None,
            started_at: Instant::now(),
            fifo: None,
            pidfile: None,
            paused: false,
            failed_to_start: false,
            ready: ReadyCheck::AtStart,
            probe_at: None,
        }
    }

    /// Launch the payload in its own session, with a clean environment and signal state, and
    /// SIGKILL if this runtime dies.
    ///
    /// fds: the vassal's sockets at 3, 4, ... (systemd's SD_LISTEN_FDS_START is 3), then the
    /// payload's protocol channel right after them (UWSGI_EMPEROR_FD says where; 3 with no
    /// socket), then a uWSGI payload's config channel (UWSGI_EMPEROR_FD_CONFIG).
    /// A binary patch learns of its sockets two ways: LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID
    /// (systemd; the child writes its own pid into LISTEN_PID, see `Launch::env_own_pid`) and
    /// NGINX="3;4;" (nginx adopts inherited listening sockets whose address matches a
    /// `listen`); uWSGI finds them as `fd://N` in the config it is handed.
    pub fn start(
        &mut self,
        payload: &Payload,
        plan: &VassalPlan,
        config_frame: Option<Vec<u8>>,
        sockets: &[Bound],
        (output, output_end): (PayloadOutput, std::os::fd::OwnedFd),
    ) -> Result<Pid, StartError> {
        let mut launch = Launch::new(&payload.program, &payload.argv)?;
        // Its stdout and stderr: a pipe we read, so its lines are tagged with the vassal.
        let output_fd = std::os::fd::AsRawFd::as_raw_fd(&output_end);
        launch.map_fd(output_fd, 1).map_fd(output_fd, 2);
        let mut namespaces = plan.payload_namespaces.0;
        if plan.payload_as_owner {
            // Its own user namespace, whose maps we write while it is held: the owner's uid
            // there is the jail's root (the owner on the host). A pid namespace's /proc then
            // needs a mount namespace that user namespace owns.
            namespaces |= libc::CLONE_NEWUSER as u64;
            if namespaces & libc::CLONE_NEWPID as u64 != 0 {
                namespaces |= libc::CLONE_NEWNS as u64;
            }
            launch.hold();
        }
        launch.namespaces(namespaces);
        if plan.payload_mounts_proc {
            launch.mount_proc();
        }
        if !plan.privileged_payload {
            launch.drop_privileges(plan.drop.clone());
        }
        if let Some(cgroup) = &self.cgroup {
            jail::cgroup::apply_limits_at(cgroup, &plan.cgroup)?;
            launch.into_cgroup(std::os::fd::AsRawFd::as_raw_fd(cgroup));
        }
        if let Some(filter) = jail::seccomp::build(plan.seccomp) {
            launch.seccomp(filter);
        }
        for (key, value) in &payload.env {
            launch.env(key, value)?;
        }
        let first = crate::protocol::VASSAL_FD;
        for (i, socket) in sockets.iter().enumerate() {
            launch.map_fd(
                std::os::fd::AsRawFd::as_raw_fd(&socket.fd),
                first + i as i32,
            );
        }
        // uWSGI gets its sockets as fd://N in its config: it would adopt LISTEN_FDS twice.
        if !sockets.is_empty() && payload.kind == PayloadKind::Patch {
            let count = sockets.len() as i32;
            let names: Vec<&str> = sockets.iter().map(|s| s.spec.option.as_str()).collect();
            let nginx: String = (first..first + count).map(|fd| format!("{fd};")).collect();
            launch.env("LISTEN_FDS", count.to_string())?;
            launch.env("LISTEN_FDNAMES", names.join(":"))?;
            launch.env_own_pid("LISTEN_PID")?;
            launch.env("NGINX", nginx)?;
        }
        // Its own channel, never the runtime's link: one reader per command byte.
        let mut channel =
            PayloadChannel::new(payload.kind == PayloadKind::Uwsgi).map_err(StartError::Channel)?;
        let (protocol_end, config_end) = channel.payload_ends();
        let target = first + sockets.len() as i32;
        launch.map_fd(
            std::os::fd::AsRawFd::as_raw_fd(&protocol_end.expect("new")),
            target,
        );
        launch.env(crate::protocol::ENV_FD, target.to_string())?;
        if let Some(config_end) = config_end {
            launch.map_fd(std::os::fd::AsRawFd::as_raw_fd(&config_end), target + 1);
            launch.env(
                crate::policy::uwsgi::ENV_CONFIG_FD,
                (target + 1).to_string(),
            )?;
        }
        if let Some(frame) = &config_frame {
            // In the channel before uWSGI starts: it waits at most 5 s for it.
            channel
                .push_config(frame)
                .map_err(StartError::ConfigChannel)?;
        }
        launch
            .new_session()
            .parent_death_signal(libc::SIGKILL)
            .cwd(&payload.cwd)?;
        let launched = launch.start()?;
        if plan.payload_as_owner {
            let maps = owner_maps().map_err(StartError::UserNamespace)?;
            jail::userns::write_maps_from_parent(launched.pid, &maps)
                .map_err(StartError::UserNamespace)?;
        }
        let running = launched.release()?;
        drop(output_end);
        self.output = Some(output);
        channel.handed_over();
        self.channel = Some(channel);
        self.kind = payload.kind;
        self.config_frame = config_frame;
        self.said_ready = false;
        self.pending_stop = None;
        self.payload = Some(running.pid);
        self.payload_status = None;
        self.started_at = Instant::now();
        self.paused = false;
        self.probe_at = self.ready.needs_probing().then_some(self.started_at);
        Ok(running.pid)
    }

    /// The payload's cgroup directory fd, if the emperor gave one.
    pub fn cgroup_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.cgroup.as_ref().map(AsFd::as_fd)
    }

    /// Wait for events until the payload is gone for good (exit) or restarted (reload).
    pub fn supervise(&mut self, link: &mut EmperorLink, timings: Timings) -> Outcome {
        let mut stopping: Option<Stopping> = self.pending_stop.take();
        // uWSGI declares its own loyalty (byte 17 after a worker's first request).
        let mut loyal_sent = self.kind == PayloadKind::Uwsgi;
        loop {
            let now = Instant::now();
            let loyal_at = (!loyal_sent).then(|| self.started_at + timings.loyal_after);
            let deadline = [
                loyal_at,
                stopping.filter(|s| !s.killed).map(|s| s.kill_at),
                self.probe_at.filter(|_| stopping.is_none()),
            ]
            .into_iter()
            .flatten()
            .min();
            let ready = self.wait(link, deadline, now);

            if ready.signals {
                while let Some(signal) = self.signals.next_pending() {
                    match signal {
                        Sig::SIGCHLD => {}
                        Sig::SIGTERM | Sig::SIGINT | Sig::SIGQUIT => {
                            info!("{signal} received: stopping");
                            self.begin_stop(&mut stopping, Outcome::Exit(0), timings)
                        }
                        Sig::SIGHUP if self.reloads_in_place() => {
                            if stopping.is_none() {
                                return Outcome::ReloadInPlace;
                            }
                        }
                        Sig::SIGHUP => self.begin_stop(&mut stopping, Outcome::Reload, timings),
                        other => self.forward(other),
                    }
                }
            }
            if ready.emperor {
                match link.read() {
                    Heard::Lost => {
                        warn!("lost the emperor: killing the payload and everything it started");
                        self.kill_everything();
                        return Outcome::Exit(1);
                    }
                    Heard::Commands(commands) => {
                        let mut reload_in_place = false;
                        for command in commands {
                            info!("emperor asks: {command:?}");
                            match command {
                                Command::Stop => {
                                    self.begin_stop(&mut stopping, Outcome::Exit(0), timings)
                                }
                                Command::Reload if self.reloads_in_place() => {
                                    reload_in_place = true
                                }
                                Command::Reload => {
                                    self.begin_stop(&mut stopping, Outcome::Reload, timings)
                                }
                            }
                        }
                        // A stop read in the same batch outranks the reload.
                        if reload_in_place && stopping.is_none() {
                            return Outcome::ReloadInPlace;
                        }
                    }
                }
            }
            if ready.fifo {
                self.on_fifo(link, &mut stopping, timings);
            }
            if ready.payload {
                self.on_payload_said(link, &mut stopping);
            }
            if ready.output {
                if let Some(output) = self.output.as_mut() {
                    output.relay();
                }
            }
            let now = Instant::now();
            if let Some(stop) = stopping.as_mut().filter(|s| !s.killed && now >= s.kill_at) {
                if stop.in_place {
                    warn!(
                        "uWSGI's reload never asked for its config within {:?} \
                         (worker-reload-mercy plus reload-mercy): SIGKILL",
                        timings.graceful_reload
                    );
                } else {
                    warn!(
                        "payload still running after {:?} of mercy: SIGKILL",
                        timings.mercy
                    );
                }
                self.kill_everything();
                stop.killed = true;
            }
            if stopping.is_none() && self.probe_at.is_some_and(|at| now >= at) {
                self.probe(link, now);
            }
            if !loyal_sent && self.payload.is_some() && now >= self.started_at + timings.loyal_after
            {
                link.send(Message::Loyal);
                loyal_sent = true;
            }
            if let Some(status) = self.reap_payload() {
                // What it said and wrote last still counts.
                self.on_payload_said(link, &mut stopping);
                if let Some(output) = self.output.as_mut() {
                    output.drain();
                }
                // Whatever the payload left behind goes with it.
                self.kill_everything();
                return match stopping {
                    Some(stop) => stop.then,
                    None => {
                        info!(status, "payload exited on its own");
                        self.failed_to_start = match self.kind {
                            PayloadKind::Patch => !loyal_sent,
                            PayloadKind::Uwsgi => !self.said_ready,
                        };
                        Outcome::Exit(status)
                    }
                };
            }
        }
    }

    /// Probe readiness once: tell the emperor (byte 5) on success, else try again shortly.
    fn probe(&mut self, link: &mut EmperorLink, now: Instant) {
        if self.payload.is_none() || self.paused {
            return;
        }
        match self.ready.probe() {
            Ok(()) => {
                info!(
                    after_ms = now.duration_since(self.started_at).as_millis() as u64,
                    "payload ready"
                );
                link.send(Message::Ready);
                self.probe_at = None;
            }
            Err(why) => {
                tracing::debug!("not ready yet: {why}");
                self.probe_at = Some(Instant::now() + PROBE_EVERY);
            }
        }
    }

    /// SIGTERM the payload's process group; a second request only changes what comes after
    /// (a stop outranks a reload).
    fn begin_stop(&mut self, stopping: &mut Option<Stopping>, then: Outcome, timings: Timings) {
        if let Some(stop) = stopping {
            if then != Outcome::Reload {
                stop.then = then;
                if std::mem::take(&mut stop.in_place) {
                    // uWSGI reads the stop once its reload is through; a stop has the mercy
                    // of a stop, not the patience of a graceful reload.
                    self.tell_payload(Command::Stop);
                    stop.kill_at = stop.kill_at.min(Instant::now() + timings.mercy);
                }
            }
            return;
        }
        if let Some(pid) = self.payload {
            if self.kind == PayloadKind::Uwsgi && then != Outcome::Reload {
                // Never a signal: uWSGI 2.0 takes SIGTERM as a brutal reload.
                self.tell_payload(Command::Stop);
            } else {
                process::signal_group(pid, timings.stop_signal);
            }
            process::signal_group(pid, Sig::SIGCONT);
        }
        self.paused = false;
        *stopping = Some(Stopping {
            then,
            kill_at: Instant::now() + timings.mercy,
            killed: false,
            in_place: false,
        });
    }

    /// Whether a reload keeps the payload and lets it reload itself (uWSGI's graceful
    /// reload: its listening sockets survive, no request is refused).
    fn reloads_in_place(&self) -> bool {
        self.kind == PayloadKind::Uwsgi && self.payload.is_some()
    }

    /// Ask the running uWSGI payload to reload gracefully (byte 1); `frame` is the config it
    /// gets when it asks before its re-exec. The reload is over when it asks; if it never
    /// does within uWSGI's own bound on a graceful reload, its tree is killed and a new
    /// payload started.
    pub fn reload_in_place(&mut self, frame: Vec<u8>, ready: ReadyCheck, timings: Timings) {
        self.config_frame = Some(frame);
        self.ready = ready;
        self.probe_at = self.ready.needs_probing().then(Instant::now);
        self.tell_payload(Command::Reload);
        self.pending_stop = Some(Stopping {
            then: Outcome::Reload,
            kill_at: Instant::now() + timings.graceful_reload,
            killed: false,
            in_place: true,
        });
    }

    /// Stop the payload gracefully and wait until it and its tree are gone.
    pub fn stop_and_wait(&mut self, link: &mut EmperorLink, timings: Timings) {
        let mut stopping = self.pending_stop.take();
        self.begin_stop(&mut stopping, Outcome::Exit(0), timings);
        self.pending_stop = stopping;
        self.supervise(link, timings);
    }

    /// Write a command byte on the payload's channel; a payload that cannot be told is
    /// killed when the mercy ends.
    fn tell_payload(&mut self, command: Command) {
        if let Some(channel) = &mut self.channel {
            if let Err(e) = channel.send(command) {
                warn!("cannot tell the payload {command:?}: {e}");
            }
        }
    }

    /// Relay what the payload said to the emperor; answer a uWSGI payload's config request.
    fn on_payload_said(&mut self, link: &mut EmperorLink, stopping: &mut Option<Stopping>) {
        let Some(channel) = &mut self.channel else {
            return;
        };
        let said = channel.read();
        if said.closed {
            tracing::debug!("the payload closed its protocol channel");
        }
        for message in said.messages {
            match (self.kind, message) {
                (PayloadKind::Uwsgi, Message::Spawned) if !self.said_ready => {
                    self.said_ready = true;
                    link.send(Message::Spawned);
                }
                (PayloadKind::Uwsgi, Message::ConfigRequest) => {
                    self.push_config();
                    if stopping.is_some_and(|s| s.in_place) {
                        *stopping = None;
                        info!("uWSGI reloads on the new config");
                        link.send(Message::Spawned);
                    }
                }
                (
                    _,
                    Message::Ready
                    | Message::Loyal
                    | Message::Heartbeat
                    | Message::VoluntaryShutdown
                    | Message::Broodlord,
                ) => link.send(message),
                // The runtime says these itself (1 for a binary patch), or they are not the
                // payload's to say (40).
                (_, other) => tracing::debug!("payload said {other:?}: not relayed"),
            }
        }
    }

    /// Hand the uWSGI payload its config again (it asked, before a reload re-exec).
    fn push_config(&mut self) {
        let (Some(channel), Some(frame)) = (&mut self.channel, &self.config_frame) else {
            return;
        };
        if let Err(e) = channel.push_config(frame) {
            warn!("the payload's config channel: write: {e}");
        }
    }

    /// Kill the payload's whole tree now, without mercy (the brutal `R` and `Q`).
    fn stop_now(&mut self, stopping: &mut Option<Stopping>, then: Outcome) {
        let then = match stopping {
            Some(stop) if then == Outcome::Reload => stop.then,
            _ => then,
        };
        self.kill_everything();
        *stopping = Some(Stopping {
            then,
            kill_at: Instant::now(),
            killed: true,
            in_place: false,
        });
    }

    /// Read the master FIFO and obey it; a FIFO that cannot be read or made again is dropped.
    fn on_fifo(
        &mut self,
        link: &mut EmperorLink,
        stopping: &mut Option<Stopping>,
        timings: Timings,
    ) {
        let Some(fifo) = self.fifo.as_mut() else {
            return;
        };
        match fifo.read_commands() {
            Ok(commands) => {
                for command in commands {
                    self.obey(command, link, stopping, timings);
                }
            }
            Err(e) => {
                error!("{e}: the master FIFO is closed");
                self.fifo = None;
            }
        }
    }

    fn obey(
        &mut self,
        command: FifoCommand,
        link: &mut EmperorLink,
        stopping: &mut Option<Stopping>,
        timings: Timings,
    ) {
        // A flood of commands is obeyed, but past a few lines its log goes to debug.
        let loud = self.fifo.as_mut().is_none_or(MasterFifo::loud);
        match command {
            FifoCommand::Reload { brutal } => {
                fifo_line!(loud, info, brutal, "master FIFO: reload");
                if brutal {
                    self.stop_now(stopping, Outcome::Reload);
                } else {
                    self.begin_stop(stopping, Outcome::Reload, timings);
                }
            }
            FifoCommand::Stop { brutal } => {
                fifo_line!(
                    loud,
                    info,
                    brutal,
                    "master FIFO: shutdown (the emperor is told not to respawn)"
                );
                link.send(Message::VoluntaryShutdown);
                if brutal {
                    self.stop_now(stopping, Outcome::Exit(0));
                } else {
                    self.begin_stop(stopping, Outcome::Exit(0), timings);
                }
            }
            FifoCommand::TogglePause => self.toggle_pause(loud),
            FifoCommand::Stats => self.log_stats(loud),
            FifoCommand::Pidfiles => self.write_pidfile(loud),
            FifoCommand::Broodlord if link.fd().is_some() => {
                fifo_line!(
                    loud,
                    info,
                    "master FIFO: asking the emperor for reinforcement (broodlord, byte 30)"
                );
                link.send(Message::Broodlord);
            }
            FifoCommand::Broodlord => {
                fifo_line!(
                    loud,
                    info,
                    "master FIFO: no emperor to ask for reinforcement"
                )
            }
            FifoCommand::Log { rotate } => match self.output.as_mut().map(|o| o.reopen(rotate)) {
                Some(Ok(path)) => fifo_line!(
                    loud,
                    info,
                    "master FIFO: log {} {}",
                    path.display(),
                    if rotate { "rotated" } else { "reopened" }
                ),
                Some(Err(why)) => fifo_line!(loud, warn, "master FIFO: log: {why}"),
                None => {}
            },
            FifoCommand::Refused(byte, reason) => {
                fifo_line!(
                    loud,
                    warn,
                    "master FIFO: command '{}' refused: {reason}",
                    byte as char
                )
            }
            FifoCommand::Slot(_) | FifoCommand::Unknown(_) => {}
        }
    }

    /// SIGSTOP the payload's process group, or SIGCONT it if paused.
    fn toggle_pause(&mut self, loud: bool) {
        let Some(pid) = self.payload else {
            return;
        };
        let (signal, done) = if self.paused {
            (Sig::SIGCONT, "resumed")
        } else {
            (Sig::SIGSTOP, "paused")
        };
        process::signal_group(pid, signal);
        self.paused = !self.paused;
        fifo_line!(
            loud,
            info,
            group = pid.as_raw(),
            "master FIFO: payload {done} ({signal} to its process group)"
        );
    }

    fn log_stats(&self, loud: bool) {
        let (fifo, slot) = self
            .fifo
            .as_ref()
            .map(|f| (f.bound().0.display().to_string(), f.bound().1))
            .unwrap_or_default();
        fifo_line!(
            loud,
            info,
            payload = self.payload.map_or(0, Pid::as_raw),
            uptime_s = self.started_at.elapsed().as_secs(),
            paused = self.paused,
            fifo,
            slot,
            "master FIFO: stats"
        );
    }

    /// Write the payload's pid to `pidfile` (a logged no-op without one); `loud`: its lines
    /// at info (a flood of `P` is told at debug).
    pub fn write_pidfile(&self, loud: bool) {
        let (Some(path), Some(pid)) = (&self.pidfile, self.payload) else {
            fifo_line!(
                loud,
                info,
                "no pidfile configured (or no payload): nothing to write"
            );
            return;
        };
        match std::fs::write(path, format!("{pid}\n")) {
            Ok(()) => {
                fifo_line!(loud, info, pid = pid.as_raw(), path = %path.display(), "pidfile written")
            }
            Err(e) => warn!("pidfile {}: write: {e}", path.display()),
        }
    }

    fn forward(&self, signal: Sig) {
        if let Some(pid) = self.payload {
            process::signal_group(pid, signal);
        }
    }

    /// SIGKILL every descendant of this runtime until none is left, collecting them (and
    /// remembering the payload's status).
    fn kill_everything(&mut self) {
        let me = nix::unistd::getpid();
        for _ in 0..KILL_PASSES {
            self.reap_children();
            if process::kill_tree_once(me) == 0 {
                return;
            }
            std::thread::sleep(KILL_PASS_PAUSE);
        }
        warn!("some descendants survived {KILL_PASSES} SIGKILL passes");
    }

    /// Collect every exited child, remembering the payload's status.
    fn reap_children(&mut self) {
        while let Some(exit) = process::reap_one() {
            if Some(exit.pid) == self.payload {
                self.payload_status = Some(exit.status);
                self.payload = None;
            }
        }
    }

    /// The payload's exit status, once it has exited and been collected.
    fn reap_payload(&mut self) -> Option<i32> {
        self.reap_children();
        self.payload_status.take()
    }

    /// Block until a signal, a byte from the emperor, or the deadline.
    fn wait(&self, link: &EmperorLink, deadline: Option<Instant>, now: Instant) -> Ready {
        let timeout = match deadline {
            Some(at) => PollTimeout::try_from(
                at.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1,
            )
            .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        let mut emperor = None;
        if let Some(fd) = link.as_fd() {
            emperor = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let mut fifo = None;
        if let Some(f) = &self.fifo {
            fifo = Some(fds.len());
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        let mut payload = None;
        if let Some(fd) = self.channel.as_ref().and_then(PayloadChannel::as_fd) {
            payload = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let mut output = None;
        if let Some(fd) = self.output.as_ref().and_then(PayloadOutput::as_fd) {
            output = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let _ = poll(&mut fds, timeout);
        let readable = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        Ready {
            signals: readable(0),
            emperor: emperor.is_some_and(readable),
            fifo: fifo.is_some_and(readable),
            payload: payload.is_some_and(readable),
            output: output.is_some_and(readable),
        }
    }
}

/// The payload's maps in tyrant mode: the owner's ids (what our root is on the host, read
/// from our own maps) map to our root.
fn owner_maps() -> Result<jail::userns::IdMaps, jail::SysError> {
    let root_outside = |file: &str| -> Result<u32, jail::SysError> {
        let path = format!("/proc/self/{file}");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            jail::SysError::with_path(
                "read",
                &path,
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })?;
        text.lines()
            .find_map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    ["0", outside, _] => outside.parse().ok(),
                    _ => None,
                },
            )
            .ok_or_else(|| {
                jail::SysError::with_path("find root in", &path, nix::errno::Errno::ENOENT)
            })
    };
    let range = |owner: u32| jail::userns::IdRange {
        inside: owner,
        outside: 0,
        count: 1,
    };
    Ok(jail::userns::IdMaps {
        uids: vec![range(root_outside("uid_map")?)],
        gids: vec![range(root_outside("gid_map")?)],
    })
}

/// Which sources had something.
#[derive(Debug, Default)]
struct Ready {
    signals: bool,
    emperor: bool,
    fifo: bool,
    payload: bool,
    output: bool,
}
