//! Starting a vassal runtime: a socketpair for the protocol, then clone3 + execve of our own
//! binary as `emperor vassal`, with a clean environment and stdin on /dev/null.

use super::table::Process;
use super::Settings;
use crate::protocol::{ENV_FD, VASSAL_FD};
use jail::launch::{Launch, LaunchError};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Environment variables the emperor hands down to its runtimes (log settings only).
const PASSED_ENV: [&str; 2] = ["RUST_LOG", "EMPEROR_LOG"];

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("socketpair for the protocol: {0}")]
    SocketPair(std::io::Error),
    #[error("{0}")]
    Launch(#[from] LaunchError),
}

/// What every spawn needs, prepared once.
#[derive(Debug)]
pub struct Spawner {
    binary: PathBuf,
    dev_null: OwnedFd,
    sets: Vec<(String, String)>,
    includes: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Spawner {
    pub fn new(settings: &Settings) -> std::io::Result<Self> {
        let binary = match &settings.binary_path {
            Some(path) => path.clone(),
            None => std::env::current_exe()?,
        };
        let dev_null = std::fs::File::open("/dev/null")?.into();
        let env = PASSED_ENV
            .iter()
            .filter_map(|key| {
                std::env::var(key)
                    .ok()
                    .map(|value| (key.to_string(), value))
            })
            .collect();
        Ok(Spawner {
            binary,
            dev_null,
            sets: settings.vassal_sets.clone(),
            includes: settings.vassals_include.clone(),
            env,
        })
    }

    /// `emperor vassal --set K=V ... CONFIG --include FILE ...`, as uWSGI builds its argv.
    fn argv(&self, config: &Path) -> Vec<String> {
        let mut argv = vec![self.binary.display().to_string(), "vassal".into()];
        for (key, value) in &self.sets {
            argv.push("--set".into());
            argv.push(format!("{key}={value}"));
        }
        for include in &self.includes {
            argv.push("--include".into());
            argv.push(include.display().to_string());
        }
        argv.push(config.display().to_string());
        argv
    }

    pub fn spawn(&self, config: &Path) -> Result<Process, SpawnError> {
        let (emperor_end, vassal_end) = UnixStream::pair().map_err(SpawnError::SocketPair)?;
        emperor_end
            .set_nonblocking(true)
            .map_err(SpawnError::SocketPair)?;
        let mut launch = Launch::new(&self.binary, &self.argv(config))?;
        launch.env(ENV_FD, VASSAL_FD.to_string())?;
        for (key, value) in &self.env {
            launch.env(key, value)?;
        }
        launch
            .map_fd(self.dev_null.as_raw_fd(), 0)
            .map_fd(vassal_end.as_raw_fd(), VASSAL_FD)
            .new_session()
            .parent_death_signal(libc::SIGTERM);
        let running = launch.start()?.release()?;
        drop(vassal_end);
        Ok(Process {
            running,
            link: emperor_end,
            link_closed: false,
        })
    }
}
