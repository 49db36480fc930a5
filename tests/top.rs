//! `emperor top` as a person sees it: the real binary in a real terminal (tmux), keys typed
//! with `send-keys`, the screen read with `capture-pane`.

mod common;

use common::{have_tools, ini, Emperor, BIN, PATIENCE};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TMUX: &str = "/usr/bin/tmux";

/// `emperor top` in a detached tmux session 200x50 on a tmux server of the test's own (its
/// socket in the test's directory, so no user's sessions are touched), killed with that
/// server when dropped.
struct Pane {
    socket: PathBuf,
    /// The tmux server's pid.
    server: i32,
    /// What `emperor top` wrote on stderr (a panic's message, an error).
    stderr: PathBuf,
    /// `stty -a` in the pane after `emperor top` exited.
    stty: PathBuf,
    /// `emperor top`'s exit status, written after it.
    status: PathBuf,
}

impl Pane {
    fn start(dir: &Path, args: &str) -> Pane {
        // The tmux server daemonizes: it and the pane's processes come back to the test to
        // be reaped.
        common::become_subreaper();
        let mut pane = Pane {
            socket: dir.join("tmux.sock"),
            server: 0,
            stderr: dir.join("top.stderr"),
            stty: dir.join("top.stty"),
            status: dir.join("top.status"),
        };
        // The shell reports how top left the terminal, and how top exited.
        let command = format!(
            "'{BIN}' top {args} 2>'{}'; status=$?; stty -a >'{}'; echo $status >'{}'",
            pane.stderr.display(),
            pane.stty.display(),
            pane.status.display()
        );
        pane.tmux(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "200",
            "-y",
            "50",
            &command,
        ]);
        // Keep the pane after its command exits, to read how it exited.
        pane.tmux(&["set-option", "-t", "top", "remain-on-exit", "on"]);
        pane.server = pane
            .format("#{pid}")
            .parse()
            .expect("the tmux server's pid");
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new(TMUX)
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {output:?}\n--- emperor top's stderr ---\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "top"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// A tmux format of the pane (`#{pane_dead}`, ...).
    fn format(&self, format: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", "top", format])
            .trim()
            .to_string()
    }

    /// `emperor top`'s exit status, once it has exited and its pane is dead. (The shell
    /// writes it: tmux 3.3 does not always collect `#{pane_dead_status}`.)
    fn exit_status(&self) -> String {
        let start = Instant::now();
        loop {
            let status = std::fs::read_to_string(&self.status).unwrap_or_default();
            if status.ends_with('\n') && self.format("#{pane_dead}") == "1" {
                return status.trim().to_string();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "emperor top did not exit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Poll the screen until `shows` holds; fail with the screen after [`PATIENCE`].
    fn wait_until(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if shows(&screen) {
                return screen;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "timed out after {PATIENCE:?} waiting for the screen to show {what}:\n{screen}\n\
                     --- emperor top's stderr ---\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        // The server, the pane's shell and `emperor top`, if still there.
        let mut pids = vec![self.server];
        pids.extend(common::descendants(self.server));
        let _ = Command::new(TMUX)
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        if self.server > 0 {
            common::reap(&pids);
        }
    }
}

/// The row of the vassal `name`, split into its columns (NAME TENANT STATE PID UPTIME
/// RESPAWNS LOYAL MEMORY CPU%), when the screen shows it.
fn row(screen: &str, name: &str) -> Option<Vec<String>> {
    screen
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().map(String::as_str) == Some(name))
}

#[test]
fn top_shows_each_vassal_filters_sorts_and_outlives_its_emperor() {
    if !have_tools(
        "top_shows_each_vassal_filters_sorts_and_outlives_its_emperor",
        &[TMUX],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Two monitors are two tenants.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut emperor = Emperor::start(tmp.path(), &["--emperor", other.to_str().unwrap()]);
    emperor.write("first.ini", &ini("sleep 1000", &[]));
    common::write(&other.join("second.ini"), &ini("sleep 1000", &[]));
    let (first_runtime, _) = emperor.running("first.ini");
    let (second_runtime, _) = emperor.running("second.ini");
    let vassals_tenant = emperor.vassals.display().to_string();
    let other_tenant = other.display().to_string();

    let pane = Pane::start(tmp.path(), &format!("'{}'", emperor.stats_addr));
    let screen = pane.wait_until("both vassals running, with memory and CPU", |screen| {
        [("first.ini", first_runtime), ("second.ini", second_runtime)]
            .iter()
            .all(|&(name, runtime)| {
                row(screen, name).is_some_and(|cells| {
                    cells.len() == 9
                        && cells[2] == "running"
                        && cells[3] == runtime.to_string()
                        && cells[8] != "-"
                })
            })
    });
    assert!(
        screen.contains("vassals 2  running 2  blacklisted 0  tenants 2"),
        "{screen}"
    );
    for name in ["first.ini", "second.ini"] {
        let cells = row(&screen, name).unwrap();
        // Memory from /proc: the runtime and its payload's RSS.
        assert!(
            cells[7].ends_with('K') || cells[7].ends_with('M'),
            "{name}'s memory: {cells:?}"
        );
        assert!(cells[8].parse::<f64>().is_ok(), "{name}'s CPU: {cells:?}");
    }
    assert_eq!(row(&screen, "first.ini").unwrap()[1], vassals_tenant);
    assert!(screen.contains("s sort: name ascending"), "{screen}");

    // t: the first tenant in order (the `other` directory), then the next: one at a time.
    pane.keys(&["t"]);
    pane.wait_until("only the other tenant's vassal", |screen| {
        screen.contains(&format!("tenant: {other_tenant} "))
            && row(screen, "second.ini").is_some()
            && row(screen, "first.ini").is_none()
    });
    pane.keys(&["t"]);
    pane.wait_until("only the watched directory's vassal", |screen| {
        screen.contains(&format!("tenant: {vassals_tenant} "))
            && row(screen, "first.ini").is_some()
            && row(screen, "second.ini").is_none()
    });
    pane.keys(&["t"]);
    pane.wait_until("every tenant again", |screen| {
        screen.contains("tenant: all ")
            && row(screen, "first.ini").is_some()
            && row(screen, "second.ini").is_some()
    });

    // s: the next column; r: its other direction.
    pane.keys(&["s"]);
    pane.wait_until("the sort by tenant", |screen| {
        screen.contains("s sort: tenant ascending")
    });
    pane.keys(&["r"]);
    let screen = pane.wait_until("the sort by tenant, reversed", |screen| {
        screen.contains("s sort: tenant descending")
    });
    let at = |name: &str| screen.find(&format!("\n{name} ")).unwrap();
    assert!(at("first.ini") < at("second.ini"), "{screen}");

    // The emperor goes: top says so and keeps asking.
    emperor.signal(Signal::SIGTERM);
    assert_eq!(emperor.wait_exit().code(), Some(0));
    pane.wait_until("that the emperor is gone", |screen| {
        screen.contains(&format!(
            "no emperor at {}: connecting: No such file or directory",
            emperor.stats_addr
        )) && screen.contains("retrying every 1s")
    });

    // q: top exits 0, out of the alternate screen and raw mode.
    pane.keys(&["q"]);
    assert_eq!(pane.exit_status(), "0", "{}", pane.screen());
    assert_eq!(pane.format("#{alternate_on}"), "0");
    let stty = std::fs::read_to_string(&pane.stty).unwrap();
    let modes: Vec<&str> = stty.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig"] {
        assert!(modes.contains(&mode), "{mode} is off after top: {stty}");
    }
}

#[test]
fn top_says_what_is_wrong_with_the_address_and_keeps_asking() {
    if !have_tools(
        "top_says_what_is_wrong_with_the_address_and_keeps_asking",
        &[TMUX],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A server that answers something other than a stats document, until told to stop.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = std::thread::spawn({
        let stop = stop.clone();
        move || {
            use std::io::Write;
            for stream in listener.incoming() {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let _ = stream.and_then(|mut s| s.write_all(b"HTTP/1.0 404 Not Found\r\n\r\n"));
            }
        }
    });
    let pane = Pane::start(tmp.path(), &format!("{addr} --interval 0.2"));
    pane.wait_until("that the answer is not a stats document", |screen| {
        screen.contains(&format!(
            "no emperor at {addr}: the answer is not a stats document"
        )) && screen.contains("retrying every 0.2s")
    });
    // The server goes (a last connection wakes it to see it must): refused from then on.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(&addr);
    server.join().unwrap();
    pane.wait_until("that the port refuses", |screen| {
        screen.contains(&format!(
            "no emperor at {addr}: connecting: Connection refused"
        ))
    });
    assert_eq!(pane.format("#{pane_dead}"), "0", "top is still running");
}
