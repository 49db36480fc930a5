//! Broken vassals: the emperor says what is wrong, where, and carries on with the others.

mod common;

use common::*;
use std::time::Duration;

/// A healthy vassal, then a broken one next to it: the broken one is reported and
/// blacklisted, the healthy one keeps its payload, the emperor keeps running.
fn broken_next_to_a_healthy_one(name: &str, contents: &str, expected: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "200"]);
    emperor.write("good.ini", &ini("sleep 1000", &[]));
    let (good_runtime, good_payload) = emperor.running("good.ini");

    emperor.write(name, contents);
    emperor.wait_until("the broken vassal is reported", || {
        let log = emperor.log();
        expected.iter().all(|e| log.contains(e))
    });
    emperor.wait_until("the broken vassal is blacklisted", || {
        emperor.vassal(name).is_some_and(|v| {
            v["blacklisted"] == true
                && v["last_exit_status"] == 1
                && v["respawns"].as_u64().unwrap() >= 2
        })
    });

    assert_eq!(emperor.runtime_pid("good.ini"), Some(good_runtime));
    assert_eq!(payload_pid(good_runtime), Some(good_payload));
    assert!(alive(emperor.pid), "the emperor survives");
    let good = emperor.vassal("good.ini").unwrap();
    assert_eq!(good["state"], "running");
    assert_eq!(good["respawns"], 0);
}

#[test]
fn malformed_ini_value_is_reported_with_file_line_and_option() {
    broken_next_to_a_healthy_one(
        "bad.ini",
        "[uwsgi]\nunprivileged-binary-patch-arg = sleep 1000\nsocket = %(undefined)\n",
        &["bad.ini:3: option \"socket\": placeholder %(undefined) is not defined"],
    );
}

#[test]
fn malformed_json_is_reported_with_file_line_and_column() {
    broken_next_to_a_healthy_one(
        "bad.json",
        "{\"uwsgi\": {\n  \"unprivileged-binary-patch-arg\": \"sleep 1000\",\n}}\n",
        &["bad.json:3:1: invalid JSON"],
    );
}

#[test]
fn bad_timing_value_is_reported_with_its_option() {
    broken_next_to_a_healthy_one(
        "bad.ini",
        "[uwsgi]\nreload-mercy = soon\nunprivileged-binary-patch-arg = sleep 1000\n",
        &["bad.ini:2: option \"reload-mercy\": invalid value \"soon\""],
    );
}

#[test]
fn missing_binary_is_reported_with_file_line_and_option() {
    broken_next_to_a_healthy_one(
        "missing.ini",
        "[uwsgi]\nunprivileged-binary-patch-arg = /nonexistent/program --flag\n",
        &[
            "missing.ini:2: option \"unprivileged-binary-patch-arg\": program \"/nonexistent/program\" not found",
        ],
    );
}

#[test]
fn a_uwsgi_config_over_the_config_channels_frame_is_refused_never_cut() {
    // A config without a binary patch is a uWSGI application (tests/uwsgi_vassals.rs).
    if !have_tools("a_uwsgi_config_over_the_frame", &["/usr/bin/uwsgi"]) {
        return;
    }
    let long = "x".repeat(40_000);
    broken_next_to_a_healthy_one(
        "big.ini",
        &format!("[uwsgi]\nenv = A={long}\nenv = B={long}\n"),
        &["big.ini: the resolved config is 80", "over the 65535 bytes"],
    );
}

#[test]
fn fixed_config_is_forgiven_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "60000"]);
    let config = emperor.write(
        "app.ini",
        "[uwsgi]\nunprivileged-binary-patch-arg = sh -c '\n",
    );
    emperor.wait_until("the broken vassal waits a minute", || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["state"] == "waiting" && v["throttle"] == 60000)
    });
    assert!(emperor
        .log()
        .contains("app.ini:2: option \"unprivileged-binary-patch-arg\": cannot split"));

    // A fixed config does not wait out the blacklist.
    write(&config, &ini("sleep 1000", &[]));
    emperor.wait_until_for("the fixed vassal runs", Duration::from_secs(10), || {
        emperor
            .vassal("app.ini")
            .is_some_and(|v| v["state"] == "running" && v["blacklisted"] == false)
    });
}

/// The emperor reads configs too (for their held sockets): a config pulling in `/dev/zero`
/// or a FIFO must not hang it or eat its memory; only regular files are read.
#[test]
fn a_config_reading_dev_zero_or_a_fifo_is_refused_and_hangs_nobody() {
    broken_next_to_a_healthy_one(
        "zero.ini",
        "[uwsgi]\nsize = @(/dev/zero)\nunprivileged-binary-patch-arg = sleep 1000\n",
        &["cannot read @(/dev/zero) at /dev/zero: not a regular file"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("part.ini");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    broken_next_to_a_healthy_one(
        "fifo.ini",
        &format!(
            "[uwsgi]\ninclude = {}\nunprivileged-binary-patch-arg = sleep 1000\n",
            fifo.display()
        ),
        &["not a regular file"],
    );
}
