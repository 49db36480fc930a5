//! `emperor check CONFIG`: the resolved options with where each came from, and the payload;
//! or the first error with its file, line and option, and exit status 1.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn check(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("check")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_prints_resolved_options_with_their_origin_and_the_payload() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("app.ini"),
        "[uwsgi]\ngreeting = hello-%n\nunprivileged-binary-patch-arg = sh -c \"echo %(greeting)\"\n",
    );

    let out = check(tmp.path(), &["app.ini"]);

    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("greeting = hello-app    # app.ini:2\n"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("unprivileged-binary-patch-arg = sh -c \"echo hello-app\"    # app.ini:3\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "# payload (unprivileged-binary-patch-arg): /usr/bin/sh [\"-c\", \"echo hello-app\"]"
        ) || stdout.contains(
            "# payload (unprivileged-binary-patch-arg): /bin/sh [\"-c\", \"echo hello-app\"]"
        ),
        "{stdout}"
    );
    // A config named relative to the current directory runs there.
    assert!(stdout.contains("# working directory: .\n"), "{stdout}");
}

#[test]
fn check_shows_set_and_include_options_with_their_origin() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("app.yml"), "uwsgi:\n  own: mine\n");
    write(
        &tmp.path().join("defaults.ini"),
        "[uwsgi]\nunprivileged-binary-patch-arg = sleep %(length)\n",
    );

    let out = check(
        tmp.path(),
        &["--set", "length=5", "--include", "defaults.ini", "app.yml"],
    );

    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "length = 5    # app.yml",
            "own = mine    # app.yml:2",
            "unprivileged-binary-patch-arg = sleep 5    # defaults.ini:2",
        ],
        "{stdout}"
    );
}

#[test]
fn check_reports_a_missing_program_with_file_line_and_option() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("app.ini"),
        "[uwsgi]\n\nunprivileged-binary-patch-arg = /nonexistent/program\n",
    );
    let out = check(tmp.path(), &["app.ini"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "app.ini:3: option \"unprivileged-binary-patch-arg\": program \"/nonexistent/program\" not found"
        ),
        "{stderr}"
    );
}

#[test]
fn check_reports_syntax_errors_with_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "bad.json",
            "{\"uwsgi\": {\"a\": 1,}}",
            "bad.json:1:19: invalid JSON",
        ),
        ("bad.yml", "uwsgi:\n  a: [1\n", "bad.yml:3:1: invalid YAML"),
        (
            "bad.xml",
            "<uwsgi><a>1</b></uwsgi>",
            "bad.xml:1:12: invalid XML",
        ),
        (
            "bad.ini",
            "[uwsgi]\nx = %(nope)\n",
            "bad.ini:2: option \"x\": placeholder %(nope) is not defined",
        ),
    ];
    for (name, contents, expected) in cases {
        write(&tmp.path().join(name), contents);
        let out = check(tmp.path(), &[name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

#[test]
fn check_rejects_what_the_runtime_would_reject() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("app.ini"),
        "[uwsgi]\nreload-mercy = soon\nunprivileged-binary-patch-arg = sleep 1\n",
    );
    let out = check(tmp.path(), &["app.ini"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("app.ini:2: option \"reload-mercy\": invalid value \"soon\""),
        "{out:?}"
    );
}

#[test]
fn check_of_a_missing_file_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = check(tmp.path(), &["absent.ini"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("absent.ini"), "{out:?}");
}

#[test]
fn check_warns_about_options_nobody_carries_out_and_strict_fails_on_them() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("patch.ini"),
        "[uwsgi]\nproject = web\nunprivileged-binary-patch-arg = sleep %(project)\n\
         http-sockett = :8080\nmaster = true\n",
    );
    let out = check(tmp.path(), &["patch.ini"]);
    assert!(out.status.success(), "warnings alone pass: {out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: patch.ini:4: option \"http-sockett\": not an option"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("\"project\""),
        "a placeholder is a variable: {stderr}"
    );
    let strict = check(tmp.path(), &["--strict", "patch.ini"]);
    assert_eq!(strict.status.code(), Some(1), "{strict:?}");
    assert!(text(&strict.stderr).contains("--strict"));

    write(
        &tmp.path().join("clean.ini"),
        "[uwsgi]\nunprivileged-binary-patch-arg = sleep 1\nreload-mercy = 2\n",
    );
    let clean = check(tmp.path(), &["--strict", "clean.ini"]);
    assert!(clean.status.success(), "{clean:?}");
    assert!(!text(&clean.stderr).contains("warning"), "{clean:?}");
}

#[test]
fn check_asks_uwsgi_which_options_it_knows_with_the_configs_plugins() {
    const UWSGI: &str = "/usr/bin/uwsgi";
    const PYTHON_PLUGIN: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";
    if !have_tools("check_asks_uwsgi", &[UWSGI, PYTHON_PLUGIN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("app.ini"),
        "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:8080\nwsgi-file = app.py\n\
         master = true\nprocesses = 2\nlogto = /tmp/app.log\nhttp-sockett = :1\n",
    );
    let out = check(tmp.path(), &["--binary-path", UWSGI, "app.ini"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("option \"http-sockett\""), "{stderr}");
    for known in ["wsgi-file", "master", "processes", "logto", "plugins"] {
        assert!(
            !stderr.contains(&format!("\"{known}\"")),
            "{known} is uWSGI's (python3 plugin): {stderr}"
        );
    }
    let strict = check(tmp.path(), &["--strict", "--binary-path", UWSGI, "app.ini"]);
    assert_eq!(strict.status.code(), Some(1), "{strict:?}");
}
