//! How one runtime is started, as a value: the emperor builds it, and either starts it itself
//! or sends it (with the fds it names) to the clone server, which starts it the same way.

use jail::launch::{Forked, Launch, LaunchError, Running};
use jail::userns::{IdMaps, IdRange};
use serde::{Deserialize, Serialize};
use std::os::fd::RawFd;
use std::path::PathBuf;

/// The parent-death signal of every runtime: its emperor is gone, so it stops its vassal.
const RUNTIME_PARENT_DEATH_SIGNAL: i32 = libc::SIGTERM;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Launch(#[from] LaunchError),
    #[error("{given} fds handed with the start of {program}, {expected} expected")]
    FdCount {
        program: String,
        given: usize,
        expected: usize,
    },
    #[error("the start of {0} asks for a user namespace without its id maps, or maps without one")]
    Maps(String),
}

/// What [`RuntimeStart::fork`] returns on each side.
#[derive(Debug)]
pub enum Copied {
    /// In the server: the runtime, at once.
    Runtime(Running),
    /// In the copy: how its steps went (a failure is the copy's to report).
    Copy(Result<(), LaunchError>),
}

/// Ranges of a user namespace's maps: (inside, outside, count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMaps {
    pub uids: Vec<(u32, u32, u32)>,
    pub gids: Vec<(u32, u32, u32)>,
}

impl From<&IdMaps> for WireMaps {
    fn from(maps: &IdMaps) -> Self {
        let ranges = |rs: &[IdRange]| rs.iter().map(|r| (r.inside, r.outside, r.count)).collect();
        WireMaps {
            uids: ranges(&maps.uids),
            gids: ranges(&maps.gids),
        }
    }
}

impl From<&WireMaps> for IdMaps {
    fn from(maps: &WireMaps) -> Self {
        let ranges = |rs: &[(u32, u32, u32)]| {
            rs.iter()
                .map(|&(inside, outside, count)| IdRange {
                    inside,
                    outside,
                    count,
                })
                .collect()
        };
        IdMaps {
            uids: ranges(&maps.uids),
            gids: ranges(&maps.gids),
        }
    }
}

/// A runtime's start: `program argv` with exactly `env`, stdin and the fds it is handed, in a
/// session of its own (or, from the clone server, a process group of its own in the server's
/// session), in `namespaces` (a user namespace with `maps`, entered as its root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeStart {
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where each fd handed with the start lands in the runtime, in the order handed.
    pub fd_targets: Vec<RawFd>,
    /// One more fd is handed after those: the cgroup directory the runtime starts in.
    pub into_cgroup: bool,
    /// CLONE_NEW* flags.
    pub namespaces: u64,
    /// The open-files soft limit to give back (the emperor raised its own).
    pub open_files: Option<u64>,
    /// The maps of its user namespace, when `namespaces` has one.
    pub maps: Option<WireMaps>,
}

impl RuntimeStart {
    pub fn user_namespace(&self) -> bool {
        self.namespaces & libc::CLONE_NEWUSER as u64 != 0
    }

    /// How many fds go with it: one per target, and the cgroup's.
    pub fn fd_count(&self) -> usize {
        self.fd_targets.len() + usize::from(self.into_cgroup)
    }

    /// The launch, with `fds` the fds handed with it, in order.
    pub fn launch(&self, fds: &[RawFd]) -> Result<Launch, StartError> {
        let program = self.program.display().to_string();
        if fds.len() != self.fd_count() {
            return Err(StartError::FdCount {
                program,
                given: fds.len(),
                expected: self.fd_count(),
            });
        }
        if self.user_namespace() != self.maps.is_some() {
            return Err(StartError::Maps(program));
        }
        let mut launch = Launch::new(&self.program, &self.argv)?;
        for (key, value) in &self.env {
            launch.env(key, value)?;
        }
        for (&source, &target) in fds.iter().zip(&self.fd_targets) {
            launch.map_fd(source, target);
        }
        if self.into_cgroup {
            launch.into_cgroup(fds[self.fd_targets.len()]);
        }
        launch
            .new_session()
            .parent_death_signal(RUNTIME_PARENT_DEATH_SIGNAL)
            .namespaces(self.namespaces);
        if let Some(soft) = self.open_files {
            launch.soft_limit(libc::RLIMIT_NOFILE, soft);
        }
        if self.user_namespace() {
            launch.hold().become_root_in_user_namespace();
        }
        Ok(launch)
    }

    /// Start `launch` (made by [`RuntimeStart::launch`]): write its maps while it is held,
    /// then wait until it has exec'ed.
    pub fn start(&self, launch: &Launch) -> Result<Running, LaunchError> {
        let launched = launch.start()?;
        if let Some(maps) = &self.maps {
            if let Err(e) = jail::userns::write_maps_from_parent(launched.pid, &maps.into()) {
                // Still held: it never ran; dropping its pipes makes it exit at once.
                drop(launched);
                return Err(e.into());
            }
        }
        launched.release()
    }

    /// Start `launch` as [`RuntimeStart::start`] does, the child running on in a copy of this
    /// (single-threaded) process instead of executing the program. The parent does not wait
    /// for the copy to be scheduled: its maps written and the copy released, it has the
    /// runtime.
    pub fn fork(&self, launch: &Launch) -> Result<Copied, LaunchError> {
        match launch.fork()? {
            Forked::Child(steps) => Ok(Copied::Copy(steps)),
            Forked::Parent(launched) => {
                if let Some(maps) = &self.maps {
                    if let Err(e) = jail::userns::write_maps_from_parent(launched.pid, &maps.into())
                    {
                        drop(launched);
                        return Err(e.into());
                    }
                }
                // Nobody reads the report: a copy whose step failed says so itself.
                let (running, _report) = launched.release_without_waiting()?;
                Ok(Copied::Runtime(running))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(namespaces: u64, maps: Option<WireMaps>) -> RuntimeStart {
        RuntimeStart {
            program: "/bin/true".into(),
            argv: vec!["true".into()],
            env: vec![("A".into(), "b".into())],
            fd_targets: vec![0, 3],
            into_cgroup: true,
            namespaces,
            open_files: Some(1024),
            maps,
        }
    }

    #[test]
    fn the_fds_handed_must_be_the_targets_and_the_cgroup() {
        let error = start(0, None).launch(&[0, 1]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "2 fds handed with the start of /bin/true, 3 expected"
        );
        assert!(start(0, None).launch(&[0, 1, 2]).is_ok());
    }

    #[test]
    fn a_user_namespace_goes_with_its_maps() {
        let maps = WireMaps {
            uids: vec![(0, 20001, 1)],
            gids: vec![(0, 20001, 1)],
        };
        let user = libc::CLONE_NEWUSER as u64;
        assert!(start(user, None).launch(&[0, 1, 2]).is_err());
        assert!(start(0, Some(maps.clone())).launch(&[0, 1, 2]).is_err());
        assert!(start(user, Some(maps.clone())).launch(&[0, 1, 2]).is_ok());
        let round_trip: WireMaps = (&IdMaps::from(&maps)).into();
        assert_eq!(round_trip, maps);
    }

    #[test]
    fn a_start_survives_its_trip_as_json() {
        let sent = start(0, None);
        let text = serde_json::to_vec(&sent).unwrap();
        let received: RuntimeStart = serde_json::from_slice(&text).unwrap();
        assert_eq!(received, sent);
    }
}
