//! The emperor's own options that shape vassals: vassal-set, UWSGI_VASSAL_* variables,
//! vassals-include, and `--ini` for the emperor's options.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn read_marker(emperor: &Emperor, path: &Path) -> String {
    emperor.wait_for(&format!("{} is written", path.display()), || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.ends_with('\n'))
    })
}

#[test]
fn vassal_set_env_and_vassals_include_shape_every_vassal() {
    let tmp = tempfile::tempdir().unwrap();
    let include = write(
        &tmp.path().join("defaults.ini"),
        "[uwsgi]\nunprivileged-binary-patch-arg = sh -c 'echo %(greeting) %(farewell) \
         %(own) inc=%n vassal=%N > %D../marker-%N; exec sleep 1000'\n",
    );
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            args: vec![
                "--vassal-set".into(),
                "greeting=hi-%n".into(),
                "--vassal-set".into(),
                "chdir=/".into(),
                "--vassals-include".into(),
                include.display().to_string(),
                "--emperor-throttle".into(),
                "10".into(),
            ],
            env: vec![("UWSGI_VASSAL_FAREWELL", "bye-%n".into())],
            ..Options::default()
        },
    );
    emperor.write("alpha.ini", "[uwsgi]\nown = mine-%n\n");
    // A vassal's own single-value option wins over vassal-set.
    emperor.write("beta.yml", "uwsgi:\n  own: theirs-%n\n  chdir: \"%d..\"\n");

    let (_, alpha) = emperor.running("alpha.ini");
    let (_, beta) = emperor.running("beta.yml");

    assert_eq!(
        read_marker(&emperor, &tmp.path().join("marker-alpha")),
        "hi-alpha bye-alpha mine-alpha inc=defaults vassal=alpha\n"
    );
    assert_eq!(
        read_marker(&emperor, &tmp.path().join("marker-beta")),
        "hi-beta bye-beta theirs-beta inc=defaults vassal=beta\n"
    );
    let cwd = |pid: i32| std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd(alpha), Path::new("/"), "chdir from vassal-set");
    assert_eq!(
        cwd(beta),
        std::fs::canonicalize(tmp.path()).unwrap(),
        "the vassal's own chdir wins"
    );
}

#[test]
fn emperor_options_come_from_its_ini_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ini_file = write(
        &tmp.path().join("emperor.ini"),
        "[uwsgi]\nemperor = %dvassals\nemperor-stats = %dini-stats.sock\n\
         emperor-throttle = 250\nvassal-set = greeting=from-ini\n",
    );
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            args: vec!["--ini".into(), ini_file.display().to_string()],
            raw: true,
            stats_addr: Some(tmp.path().join("ini-stats.sock").display().to_string()),
            ..Options::default()
        },
    );
    emperor.write(
        "app.ini",
        &ini(
            "sh -c 'echo %(greeting) > %d../marker; exec sleep 1000'",
            &[],
        ),
    );
    emperor.write("crash.ini", &ini("false", &[]));

    emperor.running("app.ini");
    assert_eq!(
        read_marker(&emperor, &tmp.path().join("marker")),
        "from-ini\n"
    );
    // The first unloyal death costs one --emperor-throttle delta (default 1000 ms).
    emperor.wait_until("the crashing vassal is blacklisted for 250 ms", || {
        emperor
            .log()
            .contains("blacklisted: respawn delayed vassal=crash.ini throttle_ms=250\n")
    });
}

#[test]
fn command_line_wins_over_the_ini_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ini_file = write(
        &tmp.path().join("emperor.ini"),
        "[uwsgi]\nemperor = %dvassals\nemperor-stats = %dini-stats.sock\nemperor-throttle = 250\n",
    );
    let emperor = Emperor::launch(
        tmp.path(),
        Options {
            args: vec![
                "--ini".into(),
                ini_file.display().to_string(),
                "--emperor-throttle".into(),
                "7000".into(),
            ],
            raw: true,
            stats_addr: Some(tmp.path().join("ini-stats.sock").display().to_string()),
            ..Options::default()
        },
    );
    emperor.write("crash.ini", &ini("false", &[]));
    emperor.wait_until("the crashing vassal is blacklisted for 7 s", || {
        emperor
            .vassal("crash.ini")
            .is_some_and(|v| v["blacklisted"] == true && v["throttle"] == 7000)
    });
}

#[test]
fn unknown_option_in_the_emperor_ini_is_an_error_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let ini_file = write(
        &tmp.path().join("emperor.ini"),
        "[uwsgi]\nemperor = %dvassals\nemperor-bogus = 1\n",
    );
    let out = Command::new(BIN)
        .arg("--ini")
        .arg(&ini_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("emperor.ini:3: option \"emperor-bogus\": not an emperor option"),
        "{stderr}"
    );
}

#[test]
fn missing_monitor_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let out = Command::new(BIN)
        .arg("--emperor")
        .arg(format!("dir://{}", missing.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}
