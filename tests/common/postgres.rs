//! A throwaway PostgreSQL server for one test: its own cluster (initdb) in a temp dir, on a
//! free port, run as the `postgres` user when the test is root; stopped (fast shutdown) and
//! removed when dropped. Nothing of the system's own clusters is touched.

#![allow(dead_code)]

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

/// Debian's server binaries: /usr/lib/postgresql/VERSION/bin (the newest version).
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop()
}

impl PgServer {
    /// A running server, or None (printed why) when PostgreSQL is not installed. Under
    /// `CI=true` a missing server fails the test instead: tests/run-all.sh installs it.
    pub fn start(test: &str) -> Option<PgServer> {
        let bin = server_bin();
        if !super::have(
            test,
            bin.is_some(),
            "PostgreSQL (apt-get install postgresql)",
        ) {
            return None;
        }
        let (dir, user) = super::server_home("postgres");
        let mut server = PgServer {
            port: super::free_port(),
            dir,
            bin: bin.expect("checked"),
            user,
            child: None,
        };
        let status = server
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-N", "-E", "UTF8", "-D"])
            .arg(server.data())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        server.restart();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Start the server (again) on the same data and port, and wait until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let port = self.port.to_string();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &port, "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let start = Instant::now();
        while self.try_client().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not answer within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (SIGINT: clients are disconnected), and wait for the server to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A libpq conninfo for the emperor's pg:// spec.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    fn try_client(&self) -> Option<postgres::Client> {
        postgres::Client::connect(&self.conninfo(), postgres::NoTls).ok()
    }

    pub fn client(&self) -> postgres::Client {
        self.try_client().expect("connect to the test server")
    }

    /// Run SQL statements (no results).
    pub fn sql(&self, statements: &str) {
        self.client()
            .batch_execute(statements)
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
