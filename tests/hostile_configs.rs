//! A tenant's config can never take the emperor down: the configs that did (issue 18) are
//! generated here and dropped next to a healthy neighbour. Each is refused with the limit it
//! went over, naming its file; the emperor stays up, the neighbour keeps its pids, and
//! `emperor check` refuses it too, quickly and within a bounded address space.
//!
//! As root the emperor runs in tyrant mode, the hostile file owned by one tenant and the
//! neighbour by another; otherwise a plain emperor.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TENANT: u32 = 20001;
const NEIGHBOUR: u32 = 20002;

/// `emperor check` must refuse each hostile file within this address space (the placeholder
/// bomb alone asked for gigabytes) and this time.
const CHECK_ADDRESS_SPACE: &str = "1073741824";
const CHECK_PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn deeply_nested_xml_is_refused_and_the_emperor_survives() {
    let text = format!("<uwsgi>\n{}", "<a>".repeat(13_000));
    assert!(text.len() > 30_000);
    refused_next_to_a_neighbour(
        "deep.xml",
        &text,
        |_| {},
        "deep.xml:2: nesting deeper than 64 levels",
    );
}

#[test]
fn placeholder_bomb_is_refused_and_the_emperor_survives() {
    let mut text =
        String::from("[uwsgi]\nunprivileged-binary-patch-arg = sleep 1000\na0 = 0123456789\n");
    for level in 1..=12 {
        let previous = format!("%(a{})", level - 1);
        text.push_str(&format!("a{level} = {}\n", previous.repeat(10)));
    }
    assert!(text.len() < 1_000, "a small file");
    refused_next_to_a_neighbour(
        "bomb.ini",
        &text,
        |_| {},
        "bomb.ini:7: option \"a4\": expands to more than 65536 bytes (limit of one value)",
    );
}

#[test]
fn include_bomb_is_refused_and_the_emperor_survives() {
    // 2000 includes of a 3.9 MB file: gigabytes if each were read.
    let text = format!("[uwsgi]\n{}", "include = ../shared/big.ini\n".repeat(2000));
    refused_next_to_a_neighbour(
        "includes.ini",
        &text,
        |root| {
            let shared = root.join("shared");
            std::fs::create_dir_all(&shared).unwrap();
            let padding = format!("# {}\n", "x".repeat(97));
            let big = format!("[uwsgi]\nx = 1\n{}", padding.repeat(39_000));
            assert!(big.len() > 3_900_000);
            write(&shared.join("big.ini"), &big);
        },
        "includes.ini:4: option \"include\": reads more than 8388608 bytes of files (limit of includes and @(file) of one config)",
    );
}

/// Starts an emperor with a healthy neighbour, lets `prepare` write what the hostile file
/// needs beside the watched directory, drops the hostile file `name` in, and checks that it
/// is refused with `expected` while the emperor and the neighbour carry on.
fn refused_next_to_a_neighbour(
    name: &str,
    text: &str,
    prepare: impl FnOnce(&Path),
    expected: &str,
) {
    let tyrant = nix::unistd::geteuid().is_root();
    if !tyrant {
        assert!(std::env::var("CI").is_err(), "CI runs as root: tyrant mode");
        eprintln!("{name}: not root, so a plain emperor instead of tyrant mode");
    }
    let tmp = open_tempdir();
    let args: &[&str] = if tyrant {
        &["--emperor-tyrant", "--emperor-use-clone", "fs,ipc,pid,uts"]
    } else {
        &[]
    };
    let emperor = Emperor::start(tmp.path(), args);
    prepare(tmp.path());
    let owned_by = |file: &str, text: &str, uid: u32| -> PathBuf {
        // Written outside and renamed in, so the emperor never sees it half written.
        let staged = write(&tmp.path().join(file), text);
        if tyrant {
            std::os::unix::fs::chown(&staged, Some(uid), Some(uid)).unwrap();
        }
        let path = emperor.vassals.join(file);
        std::fs::rename(&staged, &path).unwrap();
        path
    };
    owned_by("neighbour.ini", &ini("sleep 1000", &[]), NEIGHBOUR);
    let (runtime, payload) = emperor.running("neighbour.ini");

    let hostile = owned_by(name, text, TENANT);
    emperor.wait_until("the hostile config is refused with its limit", || {
        emperor.log().contains(expected)
    });

    assert!(alive(emperor.pid), "the emperor survives {name}");
    assert!(
        emperor.try_stats().is_some(),
        "the emperor still answers after {name}"
    );
    assert_eq!(emperor.runtime_pid("neighbour.ini"), Some(runtime));
    assert_eq!(payload_pid(runtime), Some(payload));
    assert_eq!(emperor.vassal("neighbour.ini").unwrap()["state"], "running");

    check_refuses(&hostile, expected);
}

/// `emperor check FILE` under an address-space limit: exits non-zero in time, naming the
/// file and the limit.
fn check_refuses(file: &Path, expected: &str) {
    let start = Instant::now();
    let out = Command::new("prlimit")
        .arg(format!("--as={CHECK_ADDRESS_SPACE}"))
        .arg("--")
        .arg(BIN)
        .arg("check")
        .arg(file)
        .output()
        .expect("run prlimit (util-linux)");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "check refuses: {stderr}");
    assert!(stderr.contains(expected), "{stderr}");
    assert!(took < CHECK_PATIENCE, "check took {took:?}");
}
