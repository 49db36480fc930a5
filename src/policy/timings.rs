//! A vassal's timing options: how long a payload gets to stop, to reload (uWSGI's own
//! graceful reload), to be counted loyal, and the signal that asks it to stop.

use crate::config::{self, Config};
use jail::signals::Sig;
use std::time::Duration;

/// Default time a payload gets between SIGTERM and SIGKILL (uWSGI's 30 s is far too long).
pub const DEFAULT_MERCY: Duration = Duration::from_secs(5);
/// Default time a payload must stay up before the vassal counts as loyal.
pub const DEFAULT_LOYAL_AFTER: Duration = Duration::from_secs(5);
/// uWSGI's default `worker-reload-mercy`: how long its master lets a worker finish its
/// requests in a graceful reload before it kills the worker itself.
pub const UWSGI_WORKER_RELOAD_MERCY: Duration = Duration::from_secs(60);

/// Timings a vassal's config may set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    pub mercy: Duration,
    pub loyal_after: Duration,
    /// The signal that asks the payload to stop, for a stop or a reload (`stop-signal`,
    /// default SIGTERM; nginx wants SIGQUIT to finish its requests first).
    pub stop_signal: Sig,
    /// How long a uWSGI payload may take to reload itself before it asks for its config:
    /// uWSGI's own bound on its workers' graceful reload (`worker-reload-mercy`), plus the
    /// mercy for the master's re-exec. uWSGI kills its slow workers itself; this only catches
    /// a master that is stuck (a loaded host took more than 5 s here).
    pub graceful_reload: Duration,
}

/// The vassal's timing options (`reload-mercy`, `worker-reload-mercy`, `loyal-after`,
/// `stop-signal`), or the first invalid one.
pub fn timings(config: &Config) -> Result<Timings, config::ConfigError> {
    let seconds = |key: &str, default: Duration| -> Result<Duration, config::ConfigError> {
        Ok(config
            .get_parsed::<f64>(key)?
            .map(Duration::from_secs_f64)
            .unwrap_or(default))
    };
    let mercy = seconds("reload-mercy", DEFAULT_MERCY)?;
    Ok(Timings {
        mercy,
        graceful_reload: seconds("worker-reload-mercy", UWSGI_WORKER_RELOAD_MERCY)? + mercy,
        loyal_after: seconds("loyal-after", DEFAULT_LOYAL_AFTER)?,
        stop_signal: match config.get("stop-signal") {
            Some(entry) => {
                let name = entry.value.trim().to_ascii_uppercase();
                let name = if name.starts_with("SIG") {
                    name
                } else {
                    format!("SIG{name}")
                };
                name.parse::<Sig>()
                    .ok()
                    .filter(|s| !matches!(s, Sig::SIGKILL | Sig::SIGSTOP))
                    .ok_or_else(|| config::ConfigError::BadOption {
                        path: entry.origin.file.clone(),
                        line: entry.origin.line,
                        key: entry.key.clone(),
                        message: format!(
                            "invalid value \"{}\": not a signal name (QUIT, TERM, INT, ...)",
                            entry.value
                        ),
                    })?
            }
            None => Sig::SIGTERM,
        },
    })
}
