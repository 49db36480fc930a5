//! Stopping and reloading a payload: the emperor's stop or reload turned into the payload's
//! own commands, then SIGTERM and SIGKILL after the mercy time.

use super::super::emperor_link::EmperorLink;
use super::super::ready::ReadyCheck;
use crate::policy::payload::PayloadKind;
use crate::policy::timings::Timings;
use crate::protocol::{Command, Message};
use jail::process;
use jail::signals::Sig;
use std::time::Instant;
use tracing::{info, warn};

use super::*;

impl Supervisor {
    /// SIGTERM the payload's process group; a second request only changes what comes after
    /// (a stop outranks a reload).
    pub(super) fn begin_stop(
        &mut self,
        stopping: &mut Option<Stopping>,
        then: Outcome,
        timings: Timings,
    ) {
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
    pub(super) fn reloads_in_place(&self) -> bool {
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
    pub(super) fn tell_payload(&mut self, command: Command) {
        if let Some(channel) = &mut self.channel {
            if let Err(e) = channel.send(command) {
                warn!("cannot tell the payload {command:?}: {e}");
            }
        }
    }

    /// Relay what the payload said to the emperor; answer a uWSGI payload's config request.
    pub(super) fn on_payload_said(
        &mut self,
        link: &mut EmperorLink,
        stopping: &mut Option<Stopping>,
    ) {
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
    pub(super) fn push_config(&mut self) {
        let (Some(channel), Some(frame)) = (&mut self.channel, &self.config_frame) else {
            return;
        };
        if let Err(e) = channel.push_config(frame) {
            warn!("the payload's config channel: write: {e}");
        }
    }

    /// Kill the payload's whole tree now, without mercy (the brutal `R` and `Q`).
    pub(super) fn stop_now(&mut self, stopping: &mut Option<Stopping>, then: Outcome) {
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
}
