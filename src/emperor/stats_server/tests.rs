use super::*;
use nix::sys::epoll::EpollCreateFlags;

/// A stats server on a UNIX socket in a temp dir, and its epoll.
fn server() -> (tempfile::TempDir, PathBuf, StatsServer, Epoll) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.sock");
    let server = StatsServer::bind(path.to_str().unwrap(), 1, 100).unwrap();
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
    (dir, path, server, epoll)
}

#[test]
fn silent_clients_share_a_few_documents_and_the_newest_goes_to_newcomers() {
    let (_dir, path, mut server, epoll) = server();
    // Larger than a UNIX socket buffers: a client that does not read keeps its slot.
    let body = "x".repeat(1 << 20);
    let mut made = 0;
    let mut silent = Vec::new();
    for _ in 0..2 * MAX_DOCUMENTS {
        silent.push(UnixStream::connect(&path).unwrap());
        silent.push(UnixStream::connect(&path).unwrap());
        server.accept_pending(&epoll, || {
            made += 1;
            body.clone()
        });
    }
    assert_eq!(
        made, MAX_DOCUMENTS,
        "one document per wake-up, up to the bound"
    );
    assert_eq!(server.documents_held(), MAX_DOCUMENTS);
    assert_eq!(server.clients.iter().flatten().count(), silent.len());

    // Past the write timeout they are closed, and the documents freed.
    server.tick(&epoll, Instant::now() + WRITE_TIMEOUT);
    assert_eq!(server.clients.iter().flatten().count(), 0);
    assert!(server.newest.as_ref().and_then(Weak::upgrade).is_none());
}

#[test]
fn a_newcomer_beyond_the_slots_takes_the_one_stalled_longest() {
    let (_dir, path, mut server, epoll) = server();
    let body = "x".repeat(1 << 20);
    let mut silent: Vec<UnixStream> = Vec::new();
    for _ in 0..=MAX_CLIENTS {
        silent.push(UnixStream::connect(&path).unwrap());
        server.accept_pending(&epoll, || body.clone());
    }
    assert_eq!(server.clients.iter().flatten().count(), MAX_CLIENTS);
    // The first client was closed after what its socket had taken.
    silent[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut silent[0], &mut got).unwrap();
    assert!(!got.is_empty() && got.len() < body.len(), "{}", got.len());
}
