//! Each vassal's runtime runs from `emperor-vassal`, the small binary beside the emperor,
//! unless that binary was built from other sources: then from the emperor's own.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn exe(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

#[test]
fn runtimes_run_from_the_runtime_binary_beside_the_emperor() {
    let dir = open_tempdir();
    let emperor = Emperor::start(dir.path(), &[]);
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, _) = emperor.running("app.ini");

    let beside = Path::new(BIN).with_file_name("emperor-vassal");
    assert_eq!(exe(runtime), beside.canonicalize().unwrap());
}

#[test]
fn a_runtime_binary_from_other_sources_is_not_used() {
    let dir = open_tempdir();
    // A copy of the emperor with a stale emperor-vassal beside it, which would not even run
    // a vassal (it prints a stamp and exits).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let emperor_copy = bin.join("emperor");
    std::fs::copy(BIN, &emperor_copy).unwrap();
    let stale = write(
        &bin.join("emperor-vassal"),
        "#!/bin/sh\necho 0123456789abcdef\n",
    );
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o755)).unwrap();

    let emperor = Emperor::launch(
        dir.path(),
        Options {
            binary: Some(emperor_copy.clone()),
            ..Options::default()
        },
    );
    emperor.write("app.ini", &ini("sleep 1000", &[]));
    let (runtime, _) = emperor.running("app.ini");

    assert_eq!(exe(runtime), emperor_copy);
    let log = emperor.log();
    assert!(
        log.contains("built from other sources (stamp 0123456789abcdef"),
        "the emperor says why it does not use the binary beside it:\n{log}"
    );
}
