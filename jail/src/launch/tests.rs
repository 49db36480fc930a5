//! Launches on the real kernel: what the child gets, and what its parent learns when a step
//! before execve fails.

use super::*;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};

fn open_fds(pid: Pid) -> Vec<RawFd> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect()
}

/// A held child has done its first steps: with a fresh table it holds none of the
/// parent's parked fds (without, it would hold all 300 until its execve closed them);
/// it still gets the fds it is given, and the parent keeps every fd of its own.
#[test]
fn a_fresh_fd_table_child_copies_only_the_low_fds_it_needs() {
    const FLOOR: RawFd = 1024;
    let _ = crate::process::raise_open_files_limit();
    let dev_null = std::fs::File::open("/dev/null").unwrap();
    let parked: Vec<OwnedFd> = (0..300)
        .map(|_| crate::fd::park_above(dev_null.try_clone().unwrap().into(), FLOOR))
        .collect();
    assert!(parked.iter().all(|fd| fd.as_raw_fd() >= FLOOR));
    let (mut output, output_write) = std::io::pipe().unwrap();

    let mut launch = Launch::new(Path::new("/bin/sh"), &["sh", "-c", "echo passed"]).unwrap();
    launch
        .map_fd(output_write.as_raw_fd(), 1)
        .fresh_fd_table(FLOOR)
        .hold();
    let launched = launch.start().unwrap();
    let before_exec = open_fds(launched.pid);
    let running = launched.release().unwrap();
    drop(output_write);
    let mut said = String::new();
    output.read_to_string(&mut said).unwrap();
    nix::sys::wait::waitpid(running.pid, None).unwrap();

    assert!(
        before_exec.iter().all(|&fd| fd < FLOOR),
        "the child copied the parent's parked fds: {before_exec:?}"
    );
    assert_eq!(said, "passed\n", "the mapped fd reached the program");
    assert!(
        running.pidfd.as_raw_fd() >= FLOOR,
        "the pidfd is parked too"
    );
    for fd in &parked {
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD)
            .expect("the parent's fd is still open");
    }
}

/// Start `launch` and release it: the error its child reported (the child is reaped).
fn failure_of(launch: &Launch) -> LaunchError {
    let launched = launch.start().unwrap();
    let pid = launched.pid;
    let error = launched.release().unwrap_err();
    nix::sys::wait::waitpid(pid, None).unwrap();
    error
}

#[test]
fn a_failed_step_before_execve_names_its_call_and_its_path() {
    let mut launch = Launch::new(Path::new("/bin/true"), &["true"]).unwrap();
    launch.cwd(Path::new("/nonexistent/dir")).unwrap();
    let error = failure_of(&launch);
    assert_eq!(
        error.to_string(),
        format!(
            "chdir(\"/nonexistent/dir\") (before execve /bin/true): {}",
            Errno::ENOENT
        )
    );
}

#[test]
fn a_failed_execve_names_the_program() {
    let launch = Launch::new(Path::new("/nonexistent/program"), &["program"]).unwrap();
    let error = failure_of(&launch);
    assert_eq!(
        error.to_string(),
        format!("execve(\"/nonexistent/program\"): {}", Errno::ENOENT)
    );
}

/// Every step the child can report reaches the parent as it was, the privilege check's
/// leftovers included.
#[test]
fn every_child_step_survives_the_report() {
    use crate::caps::CapSet;
    use crate::creds::{DropStep, Ids, Leftover};
    let leftover = Leftover {
        uids: Some(Ids {
            asked: 1000,
            held: [0, 1000, 0],
        }),
        gids: None,
        effective: CapSet(1 << 21),
        permitted: CapSet(u64::MAX),
        inheritable: CapSet(3),
        bounding: CapSet(1 << 40),
        missing: CapSet(1 << 6),
    };
    let steps = [
        ChildStep::UnshareFds { keep_below: 9 },
        ChildStep::Dumpable,
        ChildStep::WaitForRelease,
        ChildStep::RootGroups,
        ChildStep::RootGid,
        ChildStep::RootUid,
        ChildStep::MountProc,
        ChildStep::StageFd {
            source: 5,
            target: 3,
        },
        ChildStep::MapFd {
            source: 5,
            target: 3,
        },
        ChildStep::CloexecFrom(4),
        ChildStep::Getrlimit(7),
        ChildStep::Setrlimit {
            resource: 7,
            soft: 1,
            hard: u64::MAX,
        },
        ChildStep::Drop(DropStep::Setresuid(1000)),
        ChildStep::Drop(DropStep::Setrlimit {
            resource: 7,
            soft: 2,
            hard: 3,
        }),
        ChildStep::Drop(DropStep::KeepCaps(true)),
        ChildStep::Drop(DropStep::Verify(leftover)),
        ChildStep::ParentDeathSignal(9),
        ChildStep::ParentDied { parent: 4242 },
        ChildStep::Chdir(()),
        ChildStep::Seccomp,
        ChildStep::Execve(()),
    ];
    for step in steps {
        let report = step::encode(step, Errno::EPERM);
        assert_eq!(step::decode(&report), (step, Errno::EPERM), "{step:?}");
    }
    // A short report is not taken for a step it does not name.
    let (step, _) = step::decode(&[99]);
    assert_eq!(step, ChildStep::Unknown(99));
}

#[test]
fn a_child_step_names_the_call_and_its_argument() {
    let program = Path::new("/bin/app");
    let named = [
        (ChildStep::MountProc, "mount(\"/proc\", \"proc\")"),
        (ChildStep::Execve(()), "execve(\"/bin/app\")"),
        (ChildStep::Chdir(()), "chdir(\"/srv\")"),
        (
            ChildStep::RootUid,
            "setresuid(0) to become root of the user namespace",
        ),
        (
            ChildStep::MapFd {
                source: 7,
                target: 3,
            },
            "dup2 to pass fd 7 as fd 3",
        ),
        (
            ChildStep::Drop(crate::creds::DropStep::Setresuid(1000)),
            "setresuid(1000)",
        ),
    ];
    for (step, text) in named {
        let step = step.with_paths(program, Some(Path::new("/srv")));
        assert_eq!(step.to_string(), text);
    }
}

/// The fds open in this process, sorted (the listing's own fd left out).
fn own_fds() -> Vec<RawFd> {
    let mut fds = open_fds(Pid::this());
    fds.retain(|&fd| nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok());
    fds.sort();
    fds
}

/// Fork `launch` in process with a pipe mapped at fd 3: the child writes there what `says`
/// makes of how its steps went and exits; the parent returns what it heard and the child's
/// pid (in a single-threaded copy of the test: see `in_forked_child`).
fn fork_and_hear(
    launch: &mut Launch,
    says: impl FnOnce(Result<(), LaunchError>) -> String,
) -> Result<(String, Pid), String> {
    let (mut output, output_write) = std::io::pipe().map_err(|e| e.to_string())?;
    launch.map_fd(output_write.as_raw_fd(), 3);
    match launch.fork().map_err(|e| e.to_string())? {
        Forked::Child(steps) => {
            let _ = crate::sys::write(3, says(steps).as_bytes());
            crate::sys::exit_now(0)
        }
        Forked::Parent(launched) => {
            let (running, _report) = launched.release_without_waiting().unwrap();
            drop(output_write);
            let mut heard = String::new();
            output.read_to_string(&mut heard).unwrap();
            nix::sys::wait::waitpid(running.pid, None).unwrap();
            Ok((heard, running.pid))
        }
    }
}

/// Forked in process, the child runs on here with its mapped fds, 0-2 and the kept one, every
/// other fd of ours closed, in its own session; the parent learns its pid at once.
#[test]
fn a_launch_forked_in_process_runs_on_with_only_its_mapped_and_kept_fds() {
    crate::testing::in_forked_child(|| {
        let dev_null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let kept = crate::fd::park_above(dev_null.try_clone().unwrap().into(), 70);
        let mut launch = Launch::new(Path::new("/proc/self/exe"), &["copy"]).unwrap();
        launch.keep_fd(kept.as_raw_fd()).new_session();
        let (heard, pid) = fork_and_hear(&mut launch, |steps| match steps {
            Ok(()) => format!("{:?} {}", own_fds(), nix::unistd::getsid(None).unwrap()),
            Err(e) => e.to_string(),
        })?;
        // `dev_null` stays open here: the copy closed its own.
        drop(dev_null);
        let expected = format!("{:?} {pid}", [0, 1, 2, 3, kept.as_raw_fd()]);
        crate::testing::expect_eq("fds and session of the copy", heard, expected)
    });
}

/// With a process group of its own, the copy leads its group in its parent's session.
#[test]
fn a_launch_in_a_process_group_of_its_own_stays_in_its_parents_session() {
    crate::testing::in_forked_child(|| {
        let mut launch = Launch::new(Path::new("/proc/self/exe"), &["copy"]).unwrap();
        launch.new_process_group();
        let (heard, pid) = fork_and_hear(&mut launch, |steps| match steps {
            Ok(()) => format!(
                "{} {}",
                nix::unistd::getpgrp(),
                nix::unistd::getsid(None).unwrap()
            ),
            Err(e) => e.to_string(),
        })?;
        let ours = nix::unistd::getsid(None).map_err(|e| e.to_string())?;
        crate::testing::expect_eq(
            "group and session of the copy",
            heard,
            format!("{pid} {ours}"),
        )
    });
}

/// A launch that maps an fd onto the number of one it keeps is refused before any clone: the
/// copy would have lost the kept one.
#[test]
fn a_kept_fd_that_is_also_a_mapped_target_is_refused() {
    let dev_null = std::fs::File::open("/dev/null").unwrap();
    let kept = crate::fd::park_above(dev_null.try_clone().unwrap().into(), 70);
    let mut launch = Launch::new(Path::new("/bin/true"), &["true"]).unwrap();
    launch
        .keep_fd(kept.as_raw_fd())
        .map_fd(dev_null.as_raw_fd(), kept.as_raw_fd());
    let error = launch.fork().expect_err("refused");
    assert!(
        error.to_string().contains("both kept and mapped onto"),
        "{error}"
    );
}

/// A step that fails in process is the child's to say: it learns which, with its path.
#[test]
fn a_step_failing_in_process_is_the_childs_to_report() {
    crate::testing::in_forked_child(|| {
        let mut launch = Launch::new(Path::new("/bin/true"), &["true"]).unwrap();
        launch.cwd(Path::new("/nonexistent/dir")).unwrap();
        let (heard, _) = fork_and_hear(&mut launch, |steps| match steps {
            Ok(()) => "no failure".to_string(),
            Err(e) => e.to_string(),
        })?;
        let expected = format!(
            "chdir(\"/nonexistent/dir\") (before execve /bin/true): {}",
            Errno::ENOENT
        );
        crate::testing::expect_eq("the failed step", heard, expected)
    });
}

/// A process with another thread cannot continue in a copy of itself.
#[test]
fn a_launch_in_process_needs_a_single_threaded_parent() {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || stopped.recv());
    let launch = Launch::new(Path::new("/bin/true"), &["true"]).unwrap();
    let error = launch.fork().expect_err("refused with another thread");
    assert!(error.to_string().contains("EDEADLK"), "{error}");
    stop.send(()).unwrap();
    let _ = other.join();
}
