//! The emperor's end (SIGINT/SIGTERM/SIGQUIT, "Ragnarok"): every vassal told to stop in
//! waves, whatever is left killed when patience ends, and no child of ours left behind; and
//! the strays a dead vassal leaves (reparented to us, the subreaper), killed with their tree.

use super::lifecycle::force_stop;
use super::machine::Event as LifeEvent;
use super::Emperor;
use jail::process;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long the emperor waits for killed strays before it gives up on them.
const STRAY_PATIENCE: Duration = Duration::from_secs(3);

impl Emperor {
    /// SIGKILL every child of ours that is not a vassal runtime, with its whole tree.
    pub(super) fn kill_strays(&mut self) {
        let mut known = self.table.runtime_pids();
        known.extend(self.spawner.clone_server_pid());
        known.extend(self.reader.borrow().pid());
        let me = nix::unistd::getpid();
        for child in process::children_of(me)
            .into_iter()
            .filter(|c| !known.contains(c))
        {
            if process::is_alive(child) {
                warn!(
                    pid = child.as_raw(),
                    "killing a stray process left by a dead vassal"
                );
                for _ in 0..50 {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    if process::kill_tree_once(child) == 0 {
                        break;
                    }
                }
            }
        }
    }

    /// SIGINT/SIGTERM/SIGQUIT: stop every vassal gracefully, kill what remains at the end.
    pub(super) fn begin_ragnarok(&mut self, signal: jail::signals::Sig) {
        if self.ragnarok.is_some() {
            info!("{signal} again: already stopping");
            return;
        }
        info!("{signal}: stopping every vassal");
        let now = Instant::now();
        self.ragnarok = Some(now + self.settings.curse_tolerance);
        self.queue.clear();
        let mut running = Vec::new();
        for slot in self.table.slots() {
            if self.table.get(slot).is_some_and(|v| v.process.is_some()) {
                running.push(slot);
            } else {
                self.handle(slot, LifeEvent::Shutdown);
            }
        }
        self.stop_waves = super::stop_waves::StopWaves::new(running);
        self.tell_stop_wave(now);
    }

    /// Tell the next wave of vassals to stop, when it is due.
    pub(super) fn tell_stop_wave(&mut self, now: Instant) {
        for slot in self.stop_waves.due(now) {
            if self.table.get(slot).is_some_and(|v| v.process.is_some()) {
                self.handle(slot, LifeEvent::Shutdown);
            } else {
                // Gone while it waited for its wave: nothing of it is under way.
                self.stop_waves.exited();
            }
        }
    }

    /// Patience is over: SIGKILL every runtime still there.
    pub(super) fn brutal_end(&mut self) {
        for (_, v) in self.table.iter() {
            if let Some(process) = &v.process {
                warn!(vassal = %v.name, "still running at the end: SIGKILL");
                force_stop(process);
            }
        }
    }

    /// Before exiting: no child of ours may outlive us.
    pub(super) fn bury_strays(&mut self) {
        let me = nix::unistd::getpid();
        let deadline = Instant::now() + STRAY_PATIENCE;
        while Instant::now() < deadline {
            process::reap_any();
            let children = process::children_of(me);
            if children.is_empty() {
                return;
            }
            for child in children {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                process::kill_tree_once(child);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        warn!("some processes did not die before the emperor exited");
    }
}
