//! Test harness: run the real `emperor` binary against a temporary directory, read its stats
//! over its stats socket, look at its processes through /proc, and leave nothing behind.
//!
//! Layout of a test's temporary directory `root`:
//! - `root/vassals/`  the watched directory (`--emperor`);
//! - `root/stats.sock` the stats server (unless a test chooses another address);
//! - `root/emperor.log` the emperor's stderr (shown when a wait times out).

#![allow(dead_code)]

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::Value;
use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long a wait may take before the test fails: generous, the machine may be loaded.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub const BIN: &str = env!("CARGO_BIN_EXE_emperor");

/// A running emperor, killed with everything it started when dropped.
pub struct Emperor {
    child: Option<Child>,
    pub pid: i32,
    pub root: PathBuf,
    pub vassals: PathBuf,
    pub stats_addr: String,
    pub log: PathBuf,
    /// Every process the test looked at (pid, start time), killed on drop if still alive.
    seen: RefCell<Vec<(i32, u64)>>,
}

/// Start options for [`Emperor::launch`].
#[derive(Default)]
pub struct Options<'a> {
    /// Arguments after the harness's own `--emperor` and `--emperor-stats`.
    pub args: Vec<String>,
    pub env: Vec<(&'a str, String)>,
    /// Give only `args` (the test sets `--emperor` itself, e.g. through `--ini`).
    pub raw: bool,
    /// The stats address to query (default: `root/stats.sock`).
    pub stats_addr: Option<String>,
    /// Run the emperor as this uid and gid (the test must be root to do so).
    pub user: Option<(u32, u32)>,
    /// Run this copy of the emperor binary instead of [`BIN`].
    pub binary: Option<PathBuf>,
}

impl Emperor {
    /// `emperor --emperor ROOT/vassals --emperor-stats ROOT/stats.sock EXTRA...`, once its
    /// stats server answers (so the initial scan is done, up to its first 64 configs).
    pub fn start(root: &Path, extra: &[&str]) -> Emperor {
        Emperor::launch(
            root,
            Options {
                args: extra.iter().map(|s| s.to_string()).collect(),
                ..Options::default()
            },
        )
    }

    pub fn launch(root: &Path, options: Options<'_>) -> Emperor {
        become_subreaper();
        let vassals = root.join("vassals");
        std::fs::create_dir_all(&vassals).unwrap();
        let stats_addr = options
            .stats_addr
            .clone()
            .unwrap_or_else(|| root.join("stats.sock").display().to_string());
        let log = root.join("emperor.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(options.binary.as_deref().unwrap_or(Path::new(BIN)));
        if !options.raw {
            command
                .arg("--emperor")
                .arg(&vassals)
                .arg("--emperor-stats")
                .arg(&stats_addr);
        }
        command
            .args(&options.args)
            .env_remove("EMPEROR_LOG")
            .env_remove("RUST_LOG")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some((uid, gid)) = options.user {
            use std::os::unix::process::CommandExt;
            // As root, std also drops the supplementary groups when it sets the uid.
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("spawn the emperor");
        let emperor = Emperor {
            pid: child.id() as i32,
            child: Some(child),
            root: root.to_path_buf(),
            vassals,
            stats_addr,
            log,
            seen: RefCell::new(Vec::new()),
        };
        emperor.wait_until("the stats server answers", || emperor.try_stats().is_some());
        emperor
    }

    /// The emperor's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll `ready` every 10 ms until it holds; fail with the log after [`PATIENCE`].
    pub fn wait_until(&self, what: &str, ready: impl FnMut() -> bool) -> Duration {
        self.wait_until_for(what, PATIENCE, ready)
    }

    pub fn wait_until_for(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if ready() {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\n--- emperor log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Poll `value` until it returns Some.
    pub fn wait_for<T>(&self, what: &str, mut value: impl FnMut() -> Option<T>) -> T {
        let mut found = None;
        self.wait_until(what, || {
            found = value();
            found.is_some()
        });
        found.unwrap()
    }

    pub fn try_stats(&self) -> Option<Value> {
        let mut body = String::new();
        if self.stats_addr.starts_with('/') {
            let mut stream = std::os::unix::net::UnixStream::connect(&self.stats_addr).ok()?;
            stream.set_read_timeout(Some(PATIENCE)).ok()?;
            stream.read_to_string(&mut body).ok()?;
        } else {
            let mut stream = std::net::TcpStream::connect(&self.stats_addr).ok()?;
            stream.set_read_timeout(Some(PATIENCE)).ok()?;
            stream.read_to_string(&mut body).ok()?;
        }
        serde_json::from_str(&body).ok()
    }

    /// The stats document (the emperor must be up).
    pub fn stats(&self) -> Value {
        self.try_stats().unwrap_or_else(|| {
            panic!(
                "no stats from {}\n--- emperor log ---\n{}",
                self.stats_addr,
                self.log()
            )
        })
    }

    /// The stats entry of the vassal named `name` (its file name, e.g. `app.ini`).
    pub fn vassal(&self, name: &str) -> Option<Value> {
        self.stats()["vassals"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
    }

    /// Wait until `pid` runs `expected`: a payload found right after its start may still be
    /// the fork of its runtime, before its execve.
    pub fn wait_exec(&self, pid: i32, expected: &str) {
        self.wait_until(&format!("{pid} runs {expected}"), || {
            cmdline(pid) == expected
        });
    }

    /// The names of every vassal in the stats.
    pub fn vassal_names(&self) -> std::collections::BTreeSet<String> {
        self.stats()["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The runtime pid of a vassal, when it has one.
    pub fn runtime_pid(&self, name: &str) -> Option<i32> {
        let pid = self.vassal(name)?["pid"].as_i64()?;
        (pid > 0).then_some(pid as i32)
    }

    /// Wait until `name` runs a live payload: (runtime pid, payload pid).
    pub fn running(&self, name: &str) -> (i32, i32) {
        let found = self.wait_for(&format!("{name} runs a payload"), || {
            let v = self.vassal(name)?;
            if v["state"] != "running" {
                return None;
            }
            let runtime = self.runtime_pid(name)?;
            Some((runtime, payload_pid(runtime)?))
        });
        self.remember(&[found.0, found.1]);
        found
    }

    /// Wait until `name` runs a live payload other than `old`.
    pub fn running_other_than(&self, name: &str, old: i32) -> (i32, i32) {
        let found = self.wait_for(&format!("{name} runs a payload other than {old}"), || {
            let v = self.vassal(name)?;
            if v["state"] != "running" {
                return None;
            }
            let runtime = self.runtime_pid(name)?;
            payload_pid(runtime)
                .filter(|&p| p != old)
                .map(|p| (runtime, p))
        });
        self.remember(&[found.0, found.1]);
        found
    }

    fn remember(&self, pids: &[i32]) {
        let mut seen = self.seen.borrow_mut();
        for &pid in pids {
            if let Some(start) = start_time(pid) {
                if !seen.contains(&(pid, start)) {
                    seen.push((pid, start));
                }
            }
        }
    }

    /// Write a config into the watched directory (written in place and closed).
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        write(&self.vassals.join(name), contents)
    }

    /// A config owned by `uid` (its gid the same number), written beside the watched
    /// directory and renamed in whole: what a tenant dropping a config does.
    pub fn drop_as(&self, uid: u32, name: &str, contents: &str) -> PathBuf {
        let staging = self.root.join(".staging");
        std::fs::create_dir_all(&staging).unwrap();
        let staged = write(&staging.join(name), contents);
        std::os::unix::fs::chown(&staged, Some(uid), Some(uid)).unwrap();
        let path = self.vassals.join(name);
        std::fs::rename(&staged, &path).unwrap();
        path
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid), signal).expect("signal the emperor");
    }

    /// Wait for the emperor to exit on its own (after a signal).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            let child = self.child.as_mut().expect("emperor not yet collected");
            if let Some(status) = child.try_wait().expect("wait for the emperor") {
                self.child = None;
                return status;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "the emperor did not exit within {PATIENCE:?}\n--- emperor log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The emperor and every living descendant.
    pub fn tree(&self) -> Vec<i32> {
        let mut pids = vec![self.pid];
        pids.extend(descendants(self.pid));
        self.remember(&pids);
        pids
    }
}

impl Drop for Emperor {
    fn drop(&mut self) {
        // Processes the test saw that are still there (only if the emperor failed to stop
        // them: a test that checks for leftovers fails first).
        let mut known: Vec<i32> = self
            .seen
            .borrow()
            .iter()
            .filter(|&&(pid, start)| alive(pid) && start_time(pid) == Some(start))
            .map(|&(pid, _)| pid)
            .collect();
        if self.child.is_none() {
            for &pid in &known {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            reap(&known);
            return;
        }
        // Freeze the tree so nothing forks while we collect it, then kill it all.
        for _ in 0..50 {
            let tree = self.tree();
            let fresh: Vec<i32> = tree
                .iter()
                .copied()
                .filter(|p| !known.contains(p))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for &pid in &fresh {
                let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            }
            known.extend(fresh);
        }
        for &pid in &known {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        reap(&known);
        if std::thread::panicking() {
            eprintln!(
                "--- emperor log ({}) ---\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Orphans of a killed emperor come to the test process instead of pid 1 (which does not
/// reap here), so the harness can collect them.
pub fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integer arguments and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Collect the given pids once they are our zombies (reparented to us as subreaper).
pub fn reap(pids: &[i32]) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|&pid| match stat(pid) {
            None => false,
            Some((state, ppid)) if state == 'Z' && ppid == me => !matches!(
                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_)
            ),
            // Dead but still another process's child (which is dying too), or alive.
            Some(_) => true,
        });
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The fields of /proc/PID/stat after the command name (state first; the name may hold
/// spaces and parentheses, so they start after its last ')').
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// (state, ppid) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(char, i32)> {
    let fields = stat_fields(pid)?;
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    Some((state, ppid))
}

/// (process group, session, controlling terminal) of a living process, from /proc/PID/stat.
pub fn grouping(pid: i32) -> (i32, i32, i32) {
    let fields = stat_fields(pid).unwrap_or_else(|| panic!("/proc/{pid}/stat"));
    let number = |field: usize| -> i32 { fields[field].parse().unwrap() };
    (number(2), number(3), number(4))
}

/// A process's start time (clock ticks since boot), which tells it from a later one with
/// the same pid.
fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The parent of a living process.
pub fn parent(pid: i32) -> Option<i32> {
    stat(pid).map(|(_, ppid)| ppid)
}

/// Living direct children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    found.retain(|&p| alive(p));
    found
}

/// A value of `/proc/PID/status`, its words joined by single spaces.
pub fn status(pid: i32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The emperor's flags that make it the unprivileged emperor (uid/gid 10000, CAP_SETUID and
/// CAP_SETGID only).
pub const UNPRIVILEGED: [&str; 6] = ["--uid", "10000", "--gid", "10000", "--cap", "setuid,setgid"];

/// Living vassal runtimes among the children of `emperor` (not its clone server or config
/// reader).
pub fn runtimes_of(emperor: i32) -> Vec<i32> {
    let mut found = children(emperor);
    found.retain(|&pid| cmdline(pid).contains(" vassal "));
    found
}

/// Every living descendant of `pid` (not `pid` itself).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for child in children(parent) {
            if !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// The payload of a vassal runtime: its living child that leads its own session. (A killed
/// payload's children are reparented to the runtime, its subreaper, for a moment before they
/// die; they are not session leaders, so they are never taken for the next payload.)
pub fn payload_pid(runtime: i32) -> Option<i32> {
    children(runtime)
        .into_iter()
        .find(|&pid| session(pid) == Some(pid))
}

/// The session id of a process (field 6 of /proc/PID/stat).
fn session(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// A process's command line, arguments separated by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Write a file in place and close it.
pub fn write(path: &Path, contents: &str) -> PathBuf {
    std::fs::write(path, contents).unwrap();
    path.to_path_buf()
}

/// Set a file's mtime to now (a `touch`).
pub fn touch(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now()).unwrap();
}

/// A minimal ini vassal running `command` (shell-split), plus extra lines.
pub fn ini(command: &str, extra: &[&str]) -> String {
    let mut text = String::from("[uwsgi]\n");
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!("unprivileged-binary-patch-arg = {command}\n"));
    text
}

/// Wait (without an emperor to blame) until `ready` holds.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if ready() {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Times (unix seconds) that payloads appended to a file with `date +%s.%N >> FILE`.
pub fn stamps(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Timing-sensitive tests of one test binary take turns (they run in parallel otherwise).
pub fn timing_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Root, or a skip message (a failure under CI, where root is promised).
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "{test} needs root, and CI runs as root"
    );
    eprintln!("skipping {test}: needs root (namespaces, other uids)");
    false
}

/// A temp dir any tenant can read, with `server.py` (holding `script`) in it.
pub fn site(script: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = open_tempdir();
    let server = write(&tmp.path().join("server.py"), script);
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o644)).unwrap();
    (tmp, server)
}

/// A temp dir with a `vassals` dir that tenants can traverse (tempdir makes 0700 dirs).
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    for dir in [tmp.path().to_path_buf(), tmp.path().join("vassals")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    tmp
}

/// A TCP port nobody listens on right now, and never one this test process was given
/// before: two calls in a row may get the same port back from the kernel (the first one's
/// listener is closed at once), and two vassals then race for it (reload.rs's stuck and good
/// vassals did in CI).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<std::collections::BTreeSet<u16>> =
        Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// `GET /` on 127.0.0.1:PORT: the whole response when it is a 200, None otherwise.
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.contains("200 OK").then_some(body)
}

/// Whether something a test needs is there; if not, a skip message, or a failure under CI
/// (where tests/run-all.sh installs it).
pub fn have(test: &str, found: bool, what: &str) -> bool {
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{test}: {what} is missing (tests/run-all.sh installs it)"
        );
        eprintln!("skipping {test}: {what} is missing");
    }
    found
}

/// A temp dir for a throwaway server that must run as its system account `user` when the test
/// is root (PostgreSQL refuses root): the dir is given to that user, whose ids are returned.
pub fn server_home(user: &str) -> (tempfile::TempDir, Option<(u32, u32)>) {
    let dir = tempfile::tempdir().unwrap();
    if !nix::unistd::geteuid().is_root() {
        return (dir, None);
    }
    let account = nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap_or_else(|| panic!("no user {user}: its Debian package creates it"));
    nix::unistd::chown(dir.path(), Some(account.uid), Some(account.gid)).unwrap();
    (dir, Some((account.uid.as_raw(), account.gid.as_raw())))
}

/// Whether every tool the test needs is installed; without one it says why it skips, except
/// under CI, which installs them all.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    for tool in tools {
        if !Path::new(tool).exists() {
            assert!(std::env::var("CI").is_err(), "CI installs {tool}");
            eprintln!("skipping {test}: {tool} is not installed");
            return false;
        }
    }
    true
}

/// An nginx config for a test under `root`: one worker, logs to stderr, its pid file named
/// after `name`, serving `root/www` on every `listen` address (nginx adopts an inherited
/// socket whose address matches one).
pub fn nginx_conf(root: &Path, name: &str, listen: &[String]) -> PathBuf {
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::create_dir_all(root.join("nginx-tmp")).unwrap();
    let listen: String = listen.iter().map(|a| format!("listen {a}; ")).collect();
    write(
        &root.join(format!("{name}.nginx.conf")),
        &format!(
            "worker_processes 1;\nerror_log stderr;\npid {r}/{name}.pid;\nevents {{ worker_connections 256; }}\n\
             http {{ access_log off; keepalive_timeout 0; client_body_temp_path {r}/nginx-tmp; \
             proxy_temp_path {r}/nginx-tmp; fastcgi_temp_path {r}/nginx-tmp; uwsgi_temp_path {r}/nginx-tmp; \
             scgi_temp_path {r}/nginx-tmp; server {{ {listen}root {r}/www; }} }}\n",
            r = root.display()
        ),
    )
}

/// wrk's report, after checking it ran, made more than 1000 requests, and counted no socket
/// error and no non-2xx response.
pub fn wrk_clean_report(output: &std::process::Output) -> String {
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("{report}");
    assert!(output.status.success(), "wrk failed: {report}");
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .expect("wrk reports its request count");
    assert!(requests > 1000, "{report}");
    assert!(
        !report.contains("Socket errors"),
        "wrk saw socket errors: {report}"
    );
    assert!(
        !report.contains("Non-2xx"),
        "wrk saw non-2xx responses: {report}"
    );
    report
}

/// Requests one after another until stopped; counts the failed ones.
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RequestLoop {
    pub fn start(ports: Vec<u16>) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, failed, done) = (stop.clone(), failed.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for &port in &ports {
                        if http_get(port).is_none() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        RequestLoop {
            stop,
            failed,
            done,
            thread: Some(thread),
        }
    }

    /// Wait until it has made `n` more requests.
    pub fn wait_for_more(&self, n: u64) {
        let from = self.done.load(Ordering::Relaxed);
        wait_until("the request loop goes on", PATIENCE, || {
            self.done.load(Ordering::Relaxed) >= from + n
        });
    }

    /// Stop it: (requests made, requests failed).
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
