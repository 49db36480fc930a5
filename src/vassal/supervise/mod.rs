//! The runtime's init duties while a payload runs: reap every child, forward signals, turn
//! stop and reload requests into SIGTERM then SIGKILL after the mercy time, declare loyalty,
//! and never leave a descendant behind.

use super::channel::PayloadChannel;
use super::emperor_link::{EmperorLink, Heard};
use super::fifo::MasterFifo;
use super::output::PayloadOutput;
use super::ready::{ReadyCheck, PROBE_EVERY};
use crate::policy::payload::PayloadKind;
use crate::policy::timings::Timings;
use crate::protocol::{Command, Message};
use jail::launch::LaunchError;
use jail::process;
use jail::signals::{Sig, SignalEvents};
use nix::unistd::Pid;
use std::os::fd::AsFd;
use std::time::Instant;
use tracing::{info, warn};

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

mod hibernate;
mod master_fifo;
mod start;
mod stop;
mod wait;

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
    /// Nothing to do for the hibernator's quiet time: become the keeper (`super::hibernate`).
    Hibernate,
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
    /// The payload is loyal: it said so (uWSGI) or lasted `loyal-after` (a binary patch).
    loyal: bool,
    /// When something last happened (a wake-up with work, loyalty), for hibernation.
    last_event: Instant,
    /// How this runtime hibernates, if it may.
    pub hibernator: Option<super::hibernate::Hibernator>,
    /// Woken from hibernation: look at every source once before waiting (the keeper took
    /// the SIGCHLD of an exit it woke this runtime for).
    look_first: bool,
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
            loyal: false,
            last_event: Instant::now(),
            hibernator: None,
            look_first: false,
        }
    }

    /// The payload's cgroup directory fd, if the emperor gave one.
    pub fn cgroup_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.cgroup.as_ref().map(AsFd::as_fd)
    }

    /// Wait for events until the payload is gone for good (exit) or restarted (reload).
    pub fn supervise(&mut self, link: &mut EmperorLink, timings: Timings) -> Outcome {
        let mut stopping: Option<Stopping> = self.pending_stop.take();
        // Worked out once per round, at its end, when everything that round did is known.
        let mut hibernate_at = self.hibernate_at(&stopping, link);
        loop {
            let now = Instant::now();
            let loyal_at = (!self.loyal).then(|| self.started_at + timings.loyal_after);
            let deadline = [
                loyal_at,
                stopping.filter(|s| !s.killed).map(|s| s.kill_at),
                self.probe_at.filter(|_| stopping.is_none()),
                hibernate_at,
                std::mem::take(&mut self.look_first).then_some(now),
            ]
            .into_iter()
            .flatten()
            .min();
            let ready = self.wait(link, deadline, now);
            if ready.any() {
                self.last_event = Instant::now();
            }

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
            if !self.loyal && self.payload.is_some() && now >= self.started_at + timings.loyal_after
            {
                link.send(Message::Loyal);
                self.loyal = true;
                self.last_event = now;
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
                            PayloadKind::Patch => !self.loyal,
                            PayloadKind::Uwsgi => !self.said_ready,
                        };
                        Outcome::Exit(status)
                    }
                };
            }
            hibernate_at = self.hibernate_at(&stopping, link);
            if hibernate_at.is_some_and(|at| now >= at) {
                let put_off = self.hibernator.as_mut().map(|h| h.put_off_while_busy(now));
                if put_off != Some(true) {
                    return Outcome::Hibernate;
                }
                hibernate_at = self.hibernate_at(&stopping, link);
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
}
