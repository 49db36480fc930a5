//! What an emperor hands to the binary it executes in its place: every vassal with its state,
//! history and open runtime, every socket it holds, its helpers, its monitors' view of the
//! configs. Plain data (JSON in a sealed memfd); fds travel as their numbers, kept open
//! across the execve.

use super::super::held::HeldSocket;
use super::super::machine::State;
use super::super::parts::History;
use super::super::throttle::{Punishment, RespawnFloor};
use super::super::timers::TimerKind;
use crate::policy::SocketSpec;
use serde::{Deserialize, Serialize};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::SystemTime;

/// The snapshot's layout; a binary that does not know it refuses the takeover (and the old
/// binary goes on).
pub const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    /// The version of the binary that wrote it.
    pub version: String,
    /// The protocol its runtimes speak ([`crate::protocol::PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// When the first emperor of this pid started, and the upgrades since.
    pub started: SystemTime,
    pub upgrades: u32,
    pub upgraded: Option<SystemTime>,
    /// The binary that wrote it, open: what a failed takeover executes again.
    pub old_binary: RawFd,
    /// The path the emperor was started as (where an upgrade finds the new binary).
    pub binary_path: PathBuf,
    /// Its command line as it was started (what every binary taking over is given).
    pub argv: Vec<Vec<u8>>,
    /// The open-files soft limit the first emperor started with (given back to runtimes).
    pub open_files: Option<u64>,
    /// systemd's variables, which the emperor takes out of its environment at start.
    pub notify: Vec<(String, String)>,
    pub stats: Option<RawFd>,
    pub metrics: Option<RawFd>,
    pub control: Option<RawFd>,
    pub clone_server: Option<Helper>,
    pub reader: Option<Helper>,
    pub held: Vec<HeldSocket>,
    /// Each monitor's view, in the order of the settings' monitors.
    pub monitors: Vec<serde_json::Value>,
    pub blacklist: Vec<(String, Punishment)>,
    pub refused: Vec<(String, (u32, u32))>,
    pub vassals: Vec<VassalSnapshot>,
}

/// A helper process (clone server, config reader): its pid, pidfd and socket.
#[derive(Debug, Serialize, Deserialize)]
pub struct Helper {
    pub pid: i32,
    pub pidfd: RawFd,
    pub socket: RawFd,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RuntimeSnapshot {
    pub pid: i32,
    /// Written by emperors that kept a pidfd per runtime (the new one closes it); none now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfd: Option<RawFd>,
    pub link: RawFd,
    pub link_closed: bool,
    /// Commands its link had not taken yet, as protocol bytes.
    pub outbox: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OnDemandSnapshot {
    pub socket: SocketSpec,
    pub idle_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VassalSnapshot {
    pub id: String,
    pub name: String,
    pub path: PathBuf,
    pub monitor: String,
    pub owner: Option<(u32, u32)>,
    pub config: Option<String>,
    pub last_mod: Option<SystemTime>,
    pub state: State,
    pub runtime: Option<RuntimeSnapshot>,
    pub history: History,
    pub cgroup: Option<PathBuf>,
    pub respawn_floor: RespawnFloor,
    pub on_demand: Option<OnDemandSnapshot>,
    pub pool: Option<SocketSpec>,
    pub store_socket: Option<String>,
    /// Its armed timers, as milliseconds from the snapshot.
    pub timers: Vec<(TimerKind, u64)>,
}

impl Snapshot {
    /// The command line the emperor was started with.
    pub fn argv(&self) -> Vec<std::ffi::OsString> {
        use std::os::unix::ffi::OsStringExt;
        self.argv
            .iter()
            .map(|a| std::ffi::OsString::from_vec(a.clone()))
            .collect()
    }

    /// Every fd the snapshot names: what must stay open across the execve.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.old_binary];
        fds.extend(
            [self.stats, self.metrics, self.control]
                .into_iter()
                .flatten(),
        );
        for helper in [&self.clone_server, &self.reader].into_iter().flatten() {
            fds.extend([helper.pidfd, helper.socket]);
        }
        fds.extend(self.held.iter().map(|h| h.fd));
        for runtime in self.vassals.iter().filter_map(|v| v.runtime.as_ref()) {
            fds.extend(runtime.pidfd);
            fds.push(runtime.link);
        }
        fds
    }
}
