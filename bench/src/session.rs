//! One supervisor running over a temporary vassal directory. Dropping a session stops the
//! supervisor and SIGKILLs, by pid, every process it started that is still alive: nothing on
//! this machine reaps orphans for us.

use crate::procfs::{self, Pid};
use crate::target::{Layout, Target, VassalView, PAYLOAD_COMM};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid as NixPid;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;

pub type BenchResult<T> = Result<T, String>;

/// A stats document as a client keeps it: each vassal's id, pid, state and loyalty (both
/// supervisors' documents have `id`, `pid` and `loyal`; uWSGI's has no `state`).
#[derive(serde::Deserialize)]
struct Listing {
    vassals: Vec<Listed>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)] // Parsed as a client would; the timed read only counts them.
struct Listed {
    #[serde(default)]
    id: String,
    #[serde(default)]
    pid: i64,
    #[serde(default)]
    state: String,
    #[serde(default)]
    loyal: i64,
}

/// How long the stats server may take to answer.
const STATS_PATIENCE: Duration = Duration::from_secs(5);
/// How long after the supervisor's exit its leftovers are counted.
const ORPHAN_GRACE: Duration = Duration::from_millis(200);
/// How long a graceful stop may take before the session kills everything.
const STOP_PATIENCE: Duration = Duration::from_secs(60);

pub struct Session<'t> {
    pub target: &'t dyn Target,
    /// The command line every vassal of this session runs.
    payload: &'static str,
    pub layout: Layout,
    staging: PathBuf,
    child: Option<Child>,
    pub pid: Pid,
    /// When the supervisor process was started.
    pub started: Instant,
    /// Every descendant ever seen, so that even orphans can be killed by pid.
    seen: BTreeSet<Pid>,
    dir: TempDir,
}

/// How a graceful stop went.
#[derive(Debug, Clone)]
pub struct StopReport {
    pub elapsed: Duration,
    /// Descendants from before the stop still alive after the supervisor exited.
    pub orphans: usize,
    /// Descendants left as zombies (dead, never collected).
    pub zombies: usize,
}

impl<'t> Session<'t> {
    /// Write `count` configs (vassal-0000 ...) running `payload`, without starting the
    /// supervisor yet (`spawn` does): a measurement can then read its counters just before.
    pub fn prepared(
        target: &'t dyn Target,
        count: usize,
        payload: &'static str,
    ) -> BenchResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("emperor-bench-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let layout = Layout {
            vassals: dir.path().join("vassals"),
            stats: dir.path().join("stats.sock"),
            log: dir.path().join("supervisor.log"),
        };
        let staging = dir.path().join("staging");
        for d in [&layout.vassals, &staging] {
            fs::create_dir(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let session = Session {
            target,
            payload,
            layout,
            staging,
            child: None,
            pid: 0,
            started: Instant::now(),
            seen: BTreeSet::new(),
            dir,
        };
        for i in 0..count {
            session.add_config(&initial_name(i))?;
        }
        Ok(session)
    }

    /// Start the supervisor over the prepared directory.
    pub fn spawn(&mut self) -> BenchResult<()> {
        let log = fs::File::create(&self.layout.log).map_err(|e| format!("log file: {e}"))?;
        let err_log = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let started = Instant::now();
        let child = self
            .target
            .command(&self.layout)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.target.name()))?;
        self.started = started;
        self.pid = child.id() as Pid;
        self.child = Some(child);
        Ok(())
    }

    /// The config file's path for vassal `name`.
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.layout.vassals.join(self.target.config_file(name))
    }

    /// The name the stats document uses for vassal `name` (its config file name).
    pub fn stats_name(&self, name: &str) -> String {
        self.target.config_file(name)
    }

    /// Write a config atomically: into the staging dir, then rename into the vassal dir.
    pub fn add_config(&self, name: &str) -> BenchResult<()> {
        let file = self.target.config_file(name);
        let staged = self.staging.join(&file);
        fs::write(&staged, self.target.config_text(self.payload))
            .map_err(|e| format!("{}: {e}", staged.display()))?;
        fs::rename(&staged, self.config_path(name)).map_err(|e| format!("rename {file}: {e}"))
    }

    /// Write `text` as vassal `name`'s config in the staging dir, for `commit_config` to
    /// rename into the vassal dir (so that many configs can appear in a burst).
    pub fn stage_config(&self, name: &str, text: &str) -> BenchResult<()> {
        let staged = self.staging.join(self.target.config_file(name));
        fs::write(&staged, text).map_err(|e| format!("{}: {e}", staged.display()))
    }

    /// Rename a staged config into the vassal dir.
    pub fn commit_config(&self, name: &str) -> BenchResult<()> {
        let file = self.target.config_file(name);
        fs::rename(self.staging.join(&file), self.config_path(name))
            .map_err(|e| format!("rename {file}: {e}"))
    }

    /// The session's own directory (the vassal dir, the staging dir and the log are in it).
    pub fn work_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Every descendant of the supervisor now, remembered for the cleanup.
    pub fn tree(&mut self) -> BTreeSet<Pid> {
        let all = procfs::descendants(self.pid);
        self.seen.extend(all.iter().copied());
        all
    }

    /// Give the config a new mtime (now), which reloads the vassal.
    pub fn touch_config(&self, name: &str) -> BenchResult<()> {
        let path = self.config_path(name);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .map_err(|e| format!("touch {}: {e}", path.display()))
    }

    pub fn remove_config(&self, name: &str) -> BenchResult<()> {
        let path = self.config_path(name);
        fs::remove_file(&path).map_err(|e| format!("unlink {}: {e}", path.display()))
    }

    /// The vassals as the supervisor's stats server reports them now.
    pub fn vassals(&mut self) -> BenchResult<HashMap<String, VassalView>> {
        match self.read_stats()? {
            Ok(body) => self.parse_stats(&body),
            Err(silent) => Err(silent),
        }
    }

    /// The same, or None while the stats are silent: no socket yet, or no answer within
    /// `STATS_PATIENCE` (uWSGI serves them from the loop that spawns).
    pub fn vassals_if_answering(&mut self) -> BenchResult<Option<HashMap<String, VassalView>>> {
        match self.read_stats()? {
            Ok(body) => self.parse_stats(&body).map(Some),
            Err(_silent) => Ok(None),
        }
    }

    /// One stats document; the inner error says why the stats are silent.
    fn read_stats(&mut self) -> BenchResult<Result<String, String>> {
        self.check_alive()?;
        let stats = &self.layout.stats;
        let mut stream = match UnixStream::connect(stats) {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(format!("stats {}: {e}", stats.display()))),
        };
        stream
            .set_read_timeout(Some(STATS_PATIENCE))
            .map_err(|e| format!("stats socket: {e}"))?;
        let mut body = String::new();
        Ok(match stream.read_to_string(&mut body) {
            Ok(_) => Ok(body),
            Err(e) => Err(format!("reading stats (a stuck event loop?): {e}")),
        })
    }

    /// One stats read as a client sees it: from connect until the whole document is parsed
    /// into typed entries, as `emperor top` parses it (serde_json checks every byte; the
    /// fields a client does not keep are skipped, not built into a tree). Returns how long it
    /// took, the document's size and how many vassals it listed.
    pub fn timed_stats_read(&mut self) -> BenchResult<(Duration, usize, usize)> {
        self.check_alive()?;
        let started = Instant::now();
        let body = self
            .read_stats()?
            .map_err(|silent| format!("timed stats read: {silent}"))?;
        let listing: Listing =
            serde_json::from_str(&body).map_err(|e| format!("stats JSON: {e}"))?;
        Ok((started.elapsed(), body.len(), listing.vassals.len()))
    }

    fn parse_stats(&self, body: &str) -> BenchResult<HashMap<String, VassalView>> {
        let doc = serde_json::from_str(body).map_err(|e| format!("stats JSON: {e}"))?;
        Ok(self.target.vassals(&doc))
    }

    /// One vassal's stats entry (None: not listed).
    pub fn vassal(&mut self, name: &str) -> BenchResult<Option<VassalView>> {
        let key = self.stats_name(name);
        Ok(self.vassals()?.remove(&key))
    }

    /// The supervisor's runtimes (its direct children), remembered for the cleanup.
    pub fn runtimes(&mut self) -> BenchResult<BTreeSet<Pid>> {
        self.check_alive()?;
        let runtimes = procfs::children(self.pid);
        self.seen.extend(runtimes.iter().copied());
        Ok(runtimes)
    }

    /// How many runtimes have an exec'd payload, from /proc alone: a uWSGI vassal is running
    /// when it has an exec'd `sleep` child, and ours too. The pids are remembered for the
    /// cleanup.
    pub fn running_by_proc(&mut self) -> BenchResult<usize> {
        let runtimes = self.runtimes()?;
        Ok(runtimes
            .into_iter()
            .filter(|&runtime| self.payload_of(runtime, None).is_some())
            .count())
    }

    /// The exec'd payload under `runtime` (other than `except`), remembered for the cleanup.
    pub fn payload_of(&mut self, runtime: Pid, except: Option<Pid>) -> Option<Pid> {
        let payload = procfs::payload_of(runtime, PAYLOAD_COMM, except)?;
        self.seen.insert(payload);
        Some(payload)
    }

    /// An error (with the log's tail) if the supervisor has exited.
    pub fn check_alive(&mut self) -> BenchResult<()> {
        let Some(child) = self.child.as_mut() else {
            return Err("the supervisor was stopped".into());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); log tail:\n{}",
                self.target.name(),
                self.log_tail(20)
            )),
            Err(e) => Err(format!("waitpid: {e}")),
        }
    }

    /// The last `lines` lines of the supervisor's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(&self.layout.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM the supervisor, time its exit, count what it left alive.
    pub fn stop(&mut self) -> BenchResult<StopReport> {
        let before = procfs::descendants(self.pid);
        self.seen.extend(before.iter().copied());
        let started = Instant::now();
        signal(self.pid, Signal::SIGTERM);
        let exited = self.wait_exit(STOP_PATIENCE);
        let elapsed = started.elapsed();
        if !exited {
            return Err(format!(
                "{} did not exit {STOP_PATIENCE:?} after SIGTERM",
                self.target.name()
            ));
        }
        // SIGKILLs sent just before the exit take a moment to land: judge after a grace.
        std::thread::sleep(ORPHAN_GRACE);
        let orphans = before.iter().filter(|&&p| procfs::is_alive(p)).count();
        let zombies = before
            .iter()
            .filter(|&&p| procfs::state(p) == Some('Z'))
            .count();
        Ok(StopReport {
            elapsed,
            orphans,
            zombies,
        })
    }

    /// Poll for the supervisor's exit (1 ms steps); true once it is collected.
    fn wait_exit(&mut self, patience: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Whatever happened: stop the supervisor, then SIGKILL every known process by pid.
    fn clean_up(&mut self) {
        if self.child.is_some() {
            self.seen.extend(procfs::descendants(self.pid));
            signal(self.pid, Signal::SIGTERM);
            if !self.wait_exit(Duration::from_secs(10)) {
                self.seen.extend(procfs::descendants(self.pid));
                signal(self.pid, Signal::SIGKILL);
                self.wait_exit(Duration::from_secs(5));
            }
        }
        for &pid in &self.seen {
            if procfs::is_alive(pid) {
                signal(pid, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.clean_up();
    }
}

fn signal(pid: Pid, signal: Signal) {
    let _ = kill(NixPid::from_raw(pid), signal);
}

/// SIGKILL one process (the kill-to-respawn test).
pub fn sigkill(pid: Pid) -> BenchResult<()> {
    kill(NixPid::from_raw(pid), Signal::SIGKILL).map_err(|e| format!("kill {pid}: {e}"))
}

/// The name of the i-th vassal present at start.
pub fn initial_name(i: usize) -> String {
    format!("vassal-{i:05}")
}
