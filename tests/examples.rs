//! The README's main job: an emperor over the example vassals shipped in the repo, one per
//! config format, run the way a newcomer would, as an ordinary user.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn the_example_vassals_run_under_an_emperor_started_by_an_ordinary_user() {
    if !nix::unistd::geteuid().is_root() {
        // Already an ordinary user: nothing to switch to, the plain harness will do.
        assert!(std::env::var("CI").is_err(), "CI runs as root");
        eprintln!("skipping: needs root to start the emperor as another user");
        return;
    }
    let nobody = (65534, 65534);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join("vassals")).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vassals");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&path, root.join("vassals").join(&name)).unwrap();
        names.push(name);
    }
    for dir in [root.to_path_buf(), root.join("vassals")] {
        std::os::unix::fs::chown(&dir, Some(nobody.0), Some(nobody.1)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    names.sort();
    assert_eq!(
        names,
        ["clock.ini", "idle.xml", "web.json", "worker.yml"],
        "one example per format"
    );

    let emperor = Emperor::launch(
        root,
        Options {
            user: Some(nobody),
            // The README's flags: an ordinary user's emperor jails each vassal in a user
            // namespace of its own, with its own mounts, pids, IPC and hostname.
            args: vec!["--emperor-use-clone".into(), "user,fs,pid,ipc,uts".into()],
            ..Options::default()
        },
    );
    for name in &names {
        let (runtime, payload) = emperor.running(name);
        let uid = std::fs::read_to_string(format!("/proc/{payload}/status")).unwrap();
        assert!(
            uid.lines().any(|l| l.starts_with("Uid:\t65534\t")),
            "{name}: payload {payload} of runtime {runtime} runs as the user"
        );
    }
    let page = emperor.wait_for("the web example answers on 127.0.0.1:8000", http_get_8000);
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    // The line that starts each payload shows its namespaces and who it runs as on the host;
    // each vassal's namespaces are its own, none the emperor's.
    for name in &names {
        let (_, payload) = emperor.running(name);
        for ns in ["user", "mnt", "pid", "ipc", "uts"] {
            let link = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            assert_ne!(
                link(payload as u32),
                link(emperor.pid as u32),
                "{name}: {ns}"
            );
        }
    }
    let log = emperor.log();
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("payload started"))
        .collect();
    assert_eq!(started.len(), names.len(), "{log}");
    for line in started {
        assert!(
            line.contains("namespaces=fs,ipc,pid,uts,user uid=65534 gid=65534"),
            "{line}"
        );
    }
}

fn http_get_8000() -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect("127.0.0.1:8000").ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut page = String::new();
    stream.read_to_string(&mut page).ok()?;
    Some(page)
}
