//! The master FIFO's commands (uWSGI's one-letter commands) as the runtime obeys them.

use super::super::emperor_link::EmperorLink;
use super::super::fifo::{FifoCommand, MasterFifo};
use crate::policy::timings::Timings;
use crate::protocol::Message;
use jail::process;
use jail::signals::Sig;
use nix::unistd::Pid;
use tracing::{error, warn};

use super::*;

impl Supervisor {
    /// Read the master FIFO and obey it; a FIFO that cannot be read or made again is dropped.
    pub(super) fn on_fifo(
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

    pub(super) fn obey(
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
    pub(super) fn toggle_pause(&mut self, loud: bool) {
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

    pub(super) fn log_stats(&self, loud: bool) {
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
}
