//! The supervisor's side of hibernation (`super::super::hibernate`): when it may sleep, what
//! it keeps, and how it comes back.

use super::super::channel::PayloadChannel;
use super::super::hibernate::{Hibernator, SupervisorAsleep};
use super::super::output::PayloadOutput;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::*;

impl Supervisor {
    /// When this runtime hibernates if nothing happens first: only with a payload running,
    /// loyal and ready, no stop or pause under way, no master FIFO (its own timers and
    /// slots stay awake), no config memfd waiting, no half-read output line, and a payload
    /// that cannot reach this process while an execve leaves it dumpable (a privileged
    /// binary patch keeps its runtime awake: `jail::keeper::payload_cannot_reach`).
    pub(super) fn hibernate_at(
        &self,
        stopping: &Option<Stopping>,
        link: &EmperorLink,
    ) -> Option<Instant> {
        let hibernator = self.hibernator.as_ref()?;
        let idle = self.loyal
            && stopping.is_none()
            && self.pending_stop.is_none()
            && !self.paused
            && self.probe_at.is_none()
            && self.fifo.is_none()
            && !link.has_config()
            && self.output.as_ref().is_none_or(PayloadOutput::may_sleep)
            && self
                .payload
                .is_some_and(|pid| jail::keeper::payload_cannot_reach(pid.as_raw()));
        let due = self.last_event + hibernator.quiet;
        idle.then(|| {
            hibernator
                .not_before
                .map_or(due, |put_off| due.max(put_off))
        })
    }

    /// What it keeps while asleep; None when it cannot sleep now.
    pub fn asleep(&self) -> Option<SupervisorAsleep> {
        let output = match &self.output {
            Some(output) => Some(output.asleep()?),
            None => None,
        };
        Some(SupervisorAsleep {
            payload: self.payload?.as_raw(),
            uwsgi: self.kind == PayloadKind::Uwsgi,
            channel: self.channel.as_ref().map(PayloadChannel::asleep),
            output,
            config_frame: self.config_frame.clone(),
            said_ready: self.said_ready,
            running_for: self.started_at.elapsed(),
            pidfile: self.pidfile.clone(),
        })
    }

    /// Its fds across a hibernation: those the keeper watches (the payload's channel and
    /// output while open), and those only kept (the config channel, the log file, the
    /// payload's cgroup).
    pub fn sleeping_fds(&self) -> (Vec<RawFd>, Vec<RawFd>) {
        let (channel, config) = self.channel.as_ref().map_or((None, None), |c| c.fds());
        let (output, log) = self.output.as_ref().map_or((None, None), |o| o.fds());
        let cgroup = self.cgroup.as_ref().map(AsRawFd::as_raw_fd);
        (
            [channel, output].into_iter().flatten().collect(),
            [config, log, cgroup].into_iter().flatten().collect(),
        )
    }

    /// A supervisor woken from hibernation, watching the payload it left.
    pub fn woken(
        signals: SignalEvents,
        cgroup: Option<OwnedFd>,
        asleep: &SupervisorAsleep,
        hibernator: Hibernator,
    ) -> Result<Self, jail::SysError> {
        let mut supervisor = Supervisor::new(signals, cgroup);
        supervisor.payload = Some(Pid::from_raw(asleep.payload));
        supervisor.kind = match asleep.uwsgi {
            true => PayloadKind::Uwsgi,
            false => PayloadKind::Patch,
        };
        supervisor.channel = asleep
            .channel
            .as_ref()
            .map(PayloadChannel::woken)
            .transpose()?;
        supervisor.output = asleep
            .output
            .as_ref()
            .map(PayloadOutput::woken)
            .transpose()?;
        supervisor.config_frame = asleep.config_frame.clone();
        supervisor.said_ready = asleep.said_ready;
        let now = Instant::now();
        supervisor.started_at = now.checked_sub(asleep.running_for).unwrap_or(now);
        supervisor.pidfile = asleep.pidfile.clone();
        supervisor.loyal = true;
        supervisor.hibernator = Some(hibernator);
        supervisor.look_first = true;
        Ok(supervisor)
    }
}
