use super::*;
use std::io::Write;

#[test]
fn every_uwsgi_command_byte_has_a_meaning_or_a_reason() {
    for byte in b"0123456789+-BCcEflLpPQqRrSsWw" {
        let command = FifoCommand::decode(*byte).unwrap();
        assert!(
            !matches!(command, FifoCommand::Unknown(_)),
            "{}",
            *byte as char
        );
    }
    assert_eq!(FifoCommand::decode(b'\n'), None);
    assert_eq!(FifoCommand::decode(b'7'), Some(FifoCommand::Slot(7)));
    assert_eq!(
        FifoCommand::decode(b'W'),
        Some(FifoCommand::Reload { brutal: true })
    );
    assert_eq!(FifoCommand::decode(b'x'), Some(FifoCommand::Unknown(b'x')));
}

#[test]
fn a_batch_keeps_order_counts_garbage_and_states_each_refusal_once() {
    let batch = decode_all(b"sp\xffzz++p\n");
    assert_eq!(
        batch.commands,
        [
            FifoCommand::Stats,
            FifoCommand::TogglePause,
            FifoCommand::decode(b'+').unwrap(),
            FifoCommand::TogglePause
        ]
    );
    assert_eq!((batch.unknown, batch.last_unknown), (3, Some(b'z')));
}

#[test]
fn the_fifo_is_private_and_comes_back_at_the_selected_slot_after_its_writer_closes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let slots = vec![dir.path().join("a"), dir.path().join("b")];
    let mut fifo = MasterFifo::open(slots.clone()).unwrap();
    let meta = std::fs::metadata(&slots[0]).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(fifo.read_commands().unwrap(), []);

    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&slots[0])
        .unwrap();
    writer.write_all(b"1s").unwrap();
    drop(writer);
    assert_eq!(fifo.read_commands().unwrap(), [FifoCommand::Stats]);
    assert_eq!(fifo.bound(), (slots[1].as_path(), 1));
    assert!(std::fs::metadata(&slots[1]).unwrap().file_type().is_fifo());
    assert_eq!(
        fifo.read_commands().unwrap(),
        [],
        "no writer yet: nothing, no EOF"
    );

    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&slots[1])
        .unwrap();
    writer.write_all(b"9P").unwrap();
    drop(writer);
    assert_eq!(fifo.read_commands().unwrap(), [FifoCommand::Pidfiles]);
    assert_eq!(fifo.bound().1, 0, "a slot beyond the list is the first");
}

fn writer(path: &Path) -> File {
    std::fs::OpenOptions::new().write(true).open(path).unwrap()
}

/// Whether polling the runtime's fd would wake it now.
fn wakes(fifo: &MasterFifo) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
}

#[test]
fn a_gone_writer_wakes_the_runtime_once_not_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let mut fifo = MasterFifo::open(vec![path.clone()]).unwrap();
    assert!(!wakes(&fifo), "no writer yet");
    writer(&path).write_all(b"s").unwrap();
    assert!(wakes(&fifo));
    assert_eq!(fifo.read_commands().unwrap(), [FifoCommand::Stats]);
    assert!(
        !wakes(&fifo),
        "a level-triggered hang-up would spin the runtime"
    );
    writer(&path).write_all(b"p").unwrap();
    assert!(wakes(&fifo), "the same FIFO serves the next writer");
    assert_eq!(fifo.read_commands().unwrap(), [FifoCommand::TogglePause]);
    assert!(!wakes(&fifo));
}

#[test]
fn a_writer_that_came_before_the_last_one_left_loses_nothing_and_its_switch_holds() {
    let dir = tempfile::tempdir().unwrap();
    let slots = vec![dir.path().join("a"), dir.path().join("b")];
    let mut fifo = MasterFifo::open(slots.clone()).unwrap();
    let mut first = writer(&slots[0]);
    let mut second = writer(&slots[0]);
    first.write_all(b"s").unwrap();
    drop(first);
    assert_eq!(fifo.read_commands().unwrap(), [FifoCommand::Stats]);
    second.write_all(b"1").unwrap();
    assert!(wakes(&fifo));
    assert_eq!(fifo.read_commands().unwrap(), []);
    assert_eq!(fifo.bound().0, slots[0], "its writer is still there");
    drop(second);
    assert!(wakes(&fifo), "the last writer's close is an edge");
    assert_eq!(fifo.read_commands().unwrap(), []);
    assert_eq!(fifo.bound(), (slots[1].as_path(), 1));
}

#[test]
fn more_than_one_read_budget_is_all_read_in_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let mut fifo = MasterFifo::open(vec![path.clone()]).unwrap();
    let sent = 3 * READ_BUDGET + 7;
    let flood = std::thread::spawn({
        let path = path.clone();
        move || writer(&path).write_all(&vec![b's'; sent]).unwrap()
    });
    let mut read = 0;
    while read < sent {
        let mut fds = [nix::poll::PollFd::new(
            fifo.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16)).unwrap();
        assert!(
            fds[0].any().unwrap(),
            "stalled after {read} of {sent} bytes"
        );
        read += fifo.read_commands().unwrap().len();
    }
    flood.join().unwrap();
    assert_eq!(read, sent);
}

#[test]
fn a_removed_fifo_is_made_anew_when_its_writer_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let mut fifo = MasterFifo::open(vec![path.clone()]).unwrap();
    let mut late = writer(&path);
    std::fs::remove_file(&path).unwrap();
    late.write_all(b"s").unwrap();
    drop(late);
    assert_eq!(fifo.read_commands().unwrap(), [FifoCommand::Stats]);
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_fifo());
    writer(&path).write_all(b"p").unwrap();
    assert_eq!(fifo.read_commands().unwrap(), [FifoCommand::TogglePause]);
}

#[test]
fn something_else_at_the_path_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, "keep").unwrap();
    let error = MasterFifo::open(vec![path.clone()]).unwrap_err();
    assert!(error.to_string().contains("exists and is not a FIFO"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
}
