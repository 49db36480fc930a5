//! The emperor's vassal table: one entry per config, found by id in O(1), with a slot number
//! that names it in epoll tokens and timers.

use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

/// Where a vassal is in its life (the emperor's view).
pub use super::machine::State;

/// A runtime process: the emperor's child (cloned by the emperor, or by its clone server with
/// CLONE_PARENT), so its pid names it, and nothing else, until the emperor reaps it; the
/// emperor keeps no pidfd for it, one fd per vassal fewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    pub pid: Pid,
}

impl Runtime {
    /// Signal the runtime (not reaped yet: it is in the table).
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> nix::Result<()> {
        nix::sys::signal::kill(self.pid, signal)
    }
}

impl From<jail::launch::Running> for Runtime {
    /// The runtime of a start, its pidfd closed.
    fn from(running: jail::launch::Running) -> Self {
        Runtime { pid: running.pid }
    }
}

/// A vassal's runtime process and the emperor's end of its protocol socket.
#[derive(Debug)]
pub struct Process {
    pub running: Runtime,
    pub link: UnixStream,
    /// The link is closed (EOF) and deregistered; only the exit is still to come.
    pub link_closed: bool,
    /// Commands the link could not take yet (written when it is writable again).
    pub outbox: super::outbox::Outbox,
    /// The link is registered for EPOLLOUT too (while the outbox is not empty).
    pub watching_out: bool,
}

#[derive(Debug)]
pub struct Vassal {
    pub id: String,
    pub name: String,
    pub path: PathBuf,
    pub monitor: String,
    pub owner: Option<(u32, u32)>,
    /// The config's text when it came from a store (pg://, amqp://, zmq://), not a file.
    pub config: Option<std::sync::Arc<str>>,
    pub last_mod: Option<SystemTime>,
    pub state: State,
    pub process: Option<Process>,
    /// Its runs, loyalty, readiness and counters (what the stats show).
    pub history: super::parts::History,
    /// What the stats last read about it from /proc.
    pub seen_in_proc: std::cell::RefCell<super::parts::SeenInProc>,
    /// Its cgroup v2 directories, when the emperor has a cgroup root.
    pub cgroup: Option<jail::cgroup::VassalCgroup>,
    /// Unknown protocol bytes since the last warning, and when that was.
    pub unknown_bytes: u64,
    pub unknown_warned: Option<Instant>,
    /// Its streak of failing runs: the least its next respawn waits.
    pub respawn_floor: super::throttle::RespawnFloor,
    /// Its repeated log lines (spawned, died, respawn delayed), collapsed.
    pub repeats: super::repeats::RepeatedLines,
    /// The socket the emperor holds for it and its idle time, when it runs on demand. Boxed,
    /// as `pool`: most vassals have neither, and each is a few hundred bytes in every entry.
    pub on_demand: Option<Box<super::parts::OnDemandVassal>>,
    /// The socket its pool shares (`pool-socket`), held by the emperor.
    pub pool: Option<Box<crate::policy::SocketSpec>>,
    /// The on-demand socket a store gave in a column of its own (pg:// column 6, zmq://).
    pub store_socket: Option<String>,
    /// It cannot start for want of fds: the limit the emperor would need (shown in stats).
    pub waiting_for_fds: Option<u64>,
    /// Spawns refused for want of fds in a row (its retries back off).
    pub fd_attempts: u32,
    /// When its runtime was spawned, until its payload starts (the spawn latency metric).
    pub spawn_started: Option<Instant>,
}

impl Vassal {
    pub fn new(id: String, name: String, path: PathBuf, monitor: String) -> Self {
        Vassal {
            id,
            name,
            path,
            monitor,
            owner: None,
            config: None,
            last_mod: None,
            state: State::Queued,
            process: None,
            history: Default::default(),
            seen_in_proc: Default::default(),
            cgroup: None,
            unknown_bytes: 0,
            unknown_warned: None,
            respawn_floor: Default::default(),
            repeats: Default::default(),
            on_demand: None,
            pool: None,
            store_socket: None,
            waiting_for_fds: None,
            fd_attempts: 0,
            spawn_started: None,
        }
    }

    pub fn pid(&self) -> Option<Pid> {
        self.process.as_ref().map(|p| p.running.pid)
    }
}

/// Slots with a free list, plus indexes by id and by runtime pid.
#[derive(Debug, Default)]
pub struct Table {
    slots: Vec<Option<Vassal>>,
    free: Vec<usize>,
    by_id: HashMap<String, usize>,
    by_pid: HashMap<Pid, usize>,
}

impl Table {
    pub fn insert(&mut self, vassal: Vassal) -> usize {
        let id = vassal.id.clone();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(vassal);
                slot
            }
            None => {
                self.slots.push(Some(vassal));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    /// Forget a vassal; whatever is left in its cgroup is killed and the cgroup removed.
    pub fn remove(&mut self, slot: usize) -> Option<Vassal> {
        let vassal = self.slots.get_mut(slot)?.take()?;
        if let Some(cgroup) = &vassal.cgroup {
            cgroup.kill_all();
            cgroup.remove();
        }
        self.by_id.remove(&vassal.id);
        if let Some(pid) = vassal.pid() {
            self.by_pid.remove(&pid);
        }
        self.free.push(slot);
        Some(vassal)
    }

    pub fn slot_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn slot_of_pid(&self, pid: Pid) -> Option<usize> {
        self.by_pid.get(&pid).copied()
    }

    pub fn set_pid(&mut self, slot: usize, pid: Option<Pid>, old: Option<Pid>) {
        if let Some(old) = old {
            self.by_pid.remove(&old);
        }
        if let Some(pid) = pid {
            self.by_pid.insert(pid, slot);
        }
    }

    pub fn get(&self, slot: usize) -> Option<&Vassal> {
        self.slots.get(slot)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Vassal> {
        self.slots.get_mut(slot)?.as_mut()
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &Vassal)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
    }

    pub fn slots(&self) -> Vec<usize> {
        self.iter().map(|(slot, _)| slot).collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The vassals' counts by state, for systemd's STATUS=: "3 vassals: 2 running, 1 waiting".
    pub fn status_line(&self) -> String {
        let total = self.len();
        let parts: Vec<String> = self
            .counts_by_state()
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        match parts.is_empty() {
            true => format!("{total} vassals"),
            false => format!("{total} vassals: {}", parts.join(", ")),
        }
    }

    /// How many vassals are in each state, in the order of [`State::NAMES`] (one walk).
    pub fn counts_by_state(&self) -> [(&'static str, usize); State::NAMES.len()] {
        let mut counts = State::NAMES.map(|name| (name, 0));
        for (_, v) in self.iter() {
            if let Some(count) = counts.iter_mut().find(|(name, _)| *name == v.state.name()) {
                count.1 += 1;
            }
        }
        counts
    }

    /// Runtimes alive now (each holds the emperor's fds).
    pub fn running_count(&self) -> usize {
        self.by_pid.len()
    }

    pub fn has_processes(&self) -> bool {
        !self.by_pid.is_empty()
    }

    pub fn runtime_pids(&self) -> Vec<Pid> {
        self.by_pid.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vassal's entry lives in one vector: 10,000 of them are the emperor's largest
    /// allocation (issue 23), so what most vassals do not use stays out of it (boxed). It was
    /// 784 bytes with the on-demand part and the pool socket inline, 552 without.
    #[test]
    fn a_vassal_entry_stays_small() {
        let size = std::mem::size_of::<Option<Vassal>>();
        assert!(size <= 600, "Option<Vassal> is {size} bytes");
    }
}
