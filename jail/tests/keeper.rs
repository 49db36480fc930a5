//! `emperor-keeper` on its own, as a shell hands it a payload: it reaps other children
//! without waking, becomes the runtime (here `sh`) when a watched fd has something, and
//! takes the payload down when it cannot.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The keeper as a file, written once for the whole test binary before any test forks: a
/// file open for writing while another thread forks would make its execve fail (ETXTBSY).
fn keeper_file() -> &'static Path {
    static KEEPER: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = KEEPER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emperor-keeper");
        std::fs::write(&path, jail::keeper::image().expect("built here")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    });
    path
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// `sh` starts `exited` (a child that exits at once) and a `sleep` payload, then executes
/// the keeper watching its stdin, with `runtime_fd` and the runtime's argv.
fn keeper_over_sleep(keeper: &Path, runtime_fd: &str, argv: &str) -> Child {
    let script = format!(
        "exec 7</bin/sh; true & sleep 100 >/dev/null 2>&1 & exec {} $! {runtime_fd} 0 {argv}",
        keeper.display()
    );
    Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn the_sleep(keeper: &Child) -> u32 {
    let pid = keeper.id();
    let mut sleep = None;
    wait_until("the payload sleep", || {
        sleep = children(pid)
            .into_iter()
            .find(|&c| comm(c) == "sleep" && state(c) != Some('Z'));
        sleep.is_some()
    });
    sleep.unwrap()
}

#[test]
fn it_reaps_other_children_asleep_and_becomes_the_runtime_when_its_fd_speaks() {
    let keeper = keeper_file();
    let mut child = keeper_over_sleep(keeper, "7", "sh -c 'echo woken; read line; echo $line'");
    let pid = child.id();
    let sleep = the_sleep(&child);
    // The `true` exited: the keeper reaps it without becoming the runtime.
    wait_until("only the payload left, reaped by a sleeping keeper", || {
        comm(pid) == "emperor-keeper" && children(pid) == [sleep]
    });
    child.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    drop(child.stdin.take());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(
        out, "woken\nhello\n",
        "the runtime's argv and the byte unread"
    );
    assert!(child.wait().unwrap().success());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sleep as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[test]
fn a_runtime_it_cannot_execute_takes_the_payload_down_and_says_why() {
    let keeper = keeper_file();
    let mut child = keeper_over_sleep(keeper, "99", "never");
    let sleep = the_sleep(&child);
    child.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(
        err, "emperor-keeper: execveat(the runtime's fd): errno 9\n",
        "EBADF, named"
    );
    // Killed by the keeper, reparented and reaped by whoever adopts orphans here.
    wait_until(
        "the payload killed",
        || !matches!(state(sleep), Some(s) if s != 'Z'),
    );
}

#[test]
fn a_bad_command_line_is_refused_with_its_usage() {
    let keeper = keeper_file();
    for args in [&[][..], &["1", "2", "3"][..], &["x", "7", "-", "a"][..]] {
        let out = Command::new(keeper).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("emperor-keeper: usage:"),
            "{args:?}"
        );
    }
}
