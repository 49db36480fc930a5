//! Imperial monitors: where vassal configs live -> a stream of add / change / remove events.
//! A monitor knows nothing of processes.
//!
//! CONTRACT (used by the emperor's event loop; keep these names and signatures):
//! - `open(spec, &MonitorOptions) -> Result<Box<dyn Monitor>, MonitorError>`
//!   spec: `dir://PATH`, `glob://PATTERN`, a bare path (dir://) or a bare pattern with shell
//!   wildcards (glob://).
//! - the loop registers `watch_fd()` (if any) for readability, calls `poll(now)` when it is
//!   readable or when `deadline()` has passed, and `rescan()` at start and, as a safety net,
//!   every `--emperor-freq` seconds while `needs_periodic_rescan()` (and on SIGWINCH).
//!
//! See docs/monitors.md for the user-facing behaviour.

mod amqp;
mod dir;
mod feed;
mod glob;
mod local_fs;
mod pg;
mod stat;
#[cfg(test)]
mod testutil;
mod tracker;
mod watch;
mod zmq;

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use dir::DirMonitor;
pub use feed::shown;
pub use glob::GlobMonitor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Add,
    Change,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// Unique across all monitors: the absolute path of the config file.
    pub id: String,
    /// The vassal's name as uWSGI shows it: the file name for dir://, the path for glob://.
    pub name: String,
    /// The config file (absolute).
    pub path: PathBuf,
    /// Owner (uid, gid) of the file (of the link itself under nofollow); None on Remove.
    pub owner: Option<(u32, u32)>,
    /// Modification time seen (of the link itself under nofollow); None on Remove.
    pub mtime: Option<SystemTime>,
    /// The monitor's spec, for the stats.
    pub monitor: String,
    /// The config's text, when it came from a store (pg://, amqp://, zmq://) rather than a
    /// file: it reaches the runtime as a sealed memfd, never as a file. `path` is then only
    /// its name (`pg://host/db/app.ini`).
    pub config: Option<Arc<str>>,
    /// The on-demand socket a store gave for the vassal (column 6 of pg://), if any.
    pub socket: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// `--emperor-nofollow`: use the link's own mtime/owner, accept symlinks (even dangling).
    pub nofollow: bool,
    /// How long a file written in place may stay quiet before it counts as written.
    pub debounce: Duration,
    /// `--emperor-freq`: how often a store without notifications is asked again.
    pub freq: Duration,
}

pub trait Monitor: Send {
    fn spec(&self) -> &str;
    /// An fd to register for readability (inotify), if the monitor has one.
    fn watch_fd(&self) -> Option<BorrowedFd<'_>>;
    fn poll(&mut self, now: Instant) -> Vec<Event>;
    fn rescan(&mut self) -> Vec<Event>;
    fn deadline(&self) -> Option<Instant>;
    /// Whether a rescan may find what the monitor's notifications missed; the emperor then
    /// rescans it every `--emperor-freq` seconds. One whose notifications see everything
    /// says no, so an idle emperor is not woken to read thousands of files for nothing.
    fn needs_periodic_rescan(&self) -> bool {
        true
    }
    /// The configs it has reported (an upgrade hands them to the next emperor's monitor).
    fn known(&self) -> serde_json::Value;
    /// Take what the emperor this one replaces had been told of: events are then only the
    /// differences from it.
    fn adopt_known(&mut self, known: serde_json::Value);
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{spec}: not a directory and not a glob pattern")]
    NotDirOrPattern { spec: String },
    #[error("{spec}: unsupported monitor (dir://, glob://, pg://, amqp://, zmq://)")]
    UnsupportedScheme { spec: String },
    #[error("{spec}: {reason}")]
    BadSpec { spec: String, reason: String },
    #[error("{spec}: {what}: {source}")]
    Feed {
        spec: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{spec}: bad glob pattern: {source}")]
    Pattern {
        spec: String,
        source: ::glob::PatternError,
    },
    #[error("{spec}: getcwd: {source}")]
    Cwd {
        spec: String,
        source: std::io::Error,
    },
    #[error("{spec}: {syscall}: {}", .source.desc())]
    Sys {
        spec: String,
        syscall: &'static str,
        source: nix::errno::Errno,
    },
    #[error("{spec}: inotify_add_watch on {}: {}", .path.display(), .source.desc())]
    Watch {
        spec: String,
        path: PathBuf,
        source: nix::errno::Errno,
    },
}

/// A parsed monitor spec, paths made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Dir(PathBuf),
    Glob(String),
    /// A network store (pg://, amqp://, zmq://): the spec as given.
    Pg(String),
    Amqp(String),
    Zmq(String),
}

const SHELL_WILDCARDS: &[char] = &['*', '?', '['];

/// `dir://PATH`, `glob://PATTERN`, a bare existing directory, or a bare pattern with wildcards.
/// Relative paths are taken against the current directory now.
pub fn parse_spec(spec: &str) -> Result<Spec, MonitorError> {
    if let Some(path) = spec.strip_prefix("dir://") {
        return Ok(Spec::Dir(absolute_path(spec, path)?));
    }
    if let Some(pattern) = spec.strip_prefix("glob://") {
        return Ok(Spec::Glob(absolute_pattern(spec, pattern)?));
    }
    for (scheme, kind) in [
        ("pg://", Spec::Pg as fn(String) -> Spec),
        ("amqp://", Spec::Amqp),
        ("zmq://", Spec::Zmq),
    ] {
        if spec.starts_with(scheme) {
            return Ok(kind(spec.to_owned()));
        }
    }
    if has_scheme(spec) {
        return Err(MonitorError::UnsupportedScheme {
            spec: spec.to_owned(),
        });
    }
    if !spec.is_empty() && Path::new(spec).is_dir() {
        return Ok(Spec::Dir(absolute_path(spec, spec)?));
    }
    if spec.contains(SHELL_WILDCARDS) {
        return Ok(Spec::Glob(absolute_pattern(spec, spec)?));
    }
    Err(MonitorError::NotDirOrPattern {
        spec: spec.to_owned(),
    })
}

/// `mongodb://...`: a scheme we do not implement (as opposed to a path with `://`).
fn has_scheme(spec: &str) -> bool {
    spec.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

fn absolute_path(spec: &str, path: &str) -> Result<PathBuf, MonitorError> {
    let path = Path::new(path);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(current_dir(spec)?.join(path))
}

fn absolute_pattern(spec: &str, pattern: &str) -> Result<String, MonitorError> {
    if pattern.starts_with('/') {
        return Ok(pattern.to_owned());
    }
    // The cwd is literal text: its own `*?[` must not act as wildcards.
    let cwd = current_dir(spec)?;
    let cwd = ::glob::Pattern::escape(&cwd.to_string_lossy());
    Ok(format!("{}/{pattern}", cwd.trim_end_matches('/')))
}

fn current_dir(spec: &str) -> Result<PathBuf, MonitorError> {
    std::env::current_dir().map_err(|source| MonitorError::Cwd {
        spec: spec.to_owned(),
        source,
    })
}

pub fn open(spec: &str, opts: &MonitorOptions) -> Result<Box<dyn Monitor>, MonitorError> {
    Ok(match parse_spec(spec)? {
        Spec::Dir(dir) => Box::new(DirMonitor::open(spec, dir, opts)?),
        Spec::Glob(pattern) => Box::new(GlobMonitor::open(spec, pattern, opts)?),
        Spec::Pg(spec) => Box::new(pg::open(&spec, opts.freq)?),
        Spec::Zmq(spec) => Box::new(zmq::open(&spec)?),
        Spec::Amqp(spec) => Box::new(amqp::open(&spec, opts.freq)?),
    })
}

#[cfg(test)]
mod tests {
    use super::testutil::opts;
    use super::*;

    #[test]
    fn schemes_are_taken_as_given_and_made_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            parse_spec("dir:///etc/vassals").unwrap(),
            Spec::Dir("/etc/vassals".into())
        );
        assert_eq!(
            parse_spec("dir://vassals").unwrap(),
            Spec::Dir(cwd.join("vassals"))
        );
        assert_eq!(
            parse_spec("glob:///etc/*.ini").unwrap(),
            Spec::Glob("/etc/*.ini".into())
        );
        let Spec::Glob(pattern) = parse_spec("glob://v/*.ini").unwrap() else {
            panic!("not a glob")
        };
        assert!(pattern.starts_with('/') && pattern.ends_with("/v/*.ini"));
    }

    #[test]
    fn bare_directory_is_dir_bare_wildcards_are_glob() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        assert_eq!(parse_spec(dir).unwrap(), Spec::Dir(tmp.path().into()));
        // cargo runs tests in the package root, which has src/
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(parse_spec("src").unwrap(), Spec::Dir(cwd.join("src")));
        let pattern = format!("{dir}/app*/app?.[iy]*");
        assert_eq!(parse_spec(&pattern).unwrap(), Spec::Glob(pattern.clone()));
    }

    #[test]
    fn bare_non_directory_without_wildcards_is_an_error() {
        let err = parse_spec("/no/such/vassals").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/no/such/vassals: not a directory and not a glob pattern"
        );
        assert!(matches!(
            parse_spec("mongodb://127.0.0.1:27107,emperor.vassals,{enabled:1}"),
            Err(MonitorError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn missing_directory_names_path_and_syscall() {
        let err = open("dir:///no/such/vassals", &opts(false)).err().unwrap();
        assert_eq!(
            err.to_string(),
            "dir:///no/such/vassals: inotify_add_watch on /no/such/vassals: No such file or directory"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let spec = format!("dir://{}", file.path().display());
        let err = open(&spec, &opts(false)).err().unwrap();
        assert!(err.to_string().ends_with(": Not a directory"), "{err}");
    }

    #[test]
    fn open_dispatches_on_the_spec() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        let monitor = open(dir, &opts(false)).unwrap();
        assert_eq!(monitor.spec(), dir);
        assert!(monitor.watch_fd().is_some());
        let glob = open(&format!("glob://{dir}/*.ini"), &opts(false)).unwrap();
        assert!(glob.watch_fd().is_some());
        assert!(open("glob:///x/[", &opts(false)).is_err());
    }
}
