use super::*;

#[test]
fn requests_are_words_and_anything_else_is_refused() {
    assert_eq!(Request::parse("lock"), Ok(Request::Lock));
    assert_eq!(Request::parse(" status "), Ok(Request::Status));
    assert_eq!(
        Request::parse("reload app.ini"),
        Ok(Request::Reload("app.ini".into()))
    );
    assert!(Request::parse("reload").is_err());
    assert!(Request::parse("reload a b").is_err());
    assert!(Request::parse("rm -rf /")
        .unwrap_err()
        .contains("unknown request"));
}

/// A bound control socket in a temp dir, its epoll, and connected clients it accepted.
fn server_with_clients(n: usize) -> (tempfile::TempDir, ControlServer, Epoll, Vec<UnixStream>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let mut server = ControlServer::bind(&path, 1, 100, None).unwrap();
    let epoll = Epoll::new(nix::sys::epoll::EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
    let clients: Vec<UnixStream> = (0..n)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    server.accept_pending(&epoll);
    (dir, server, epoll, clients)
}

/// Everything a client has been sent until the server closed it.
fn read_until_closed(client: &mut UnixStream) -> String {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut text = String::new();
    client.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn an_idle_connection_is_closed_but_not_the_lock_holders() {
    let (_dir, mut server, epoll, mut clients) = server_with_clients(2);
    clients[0].write_all(b"lock\n").unwrap();
    // Slot 0 is the first accepted; its request is read, answered and it holds the lock.
    assert_eq!(server.next_request(0, &epoll), None);
    assert_eq!(server.lock, Some(0));

    server.tick(&epoll, Instant::now() + IDLE_TIMEOUT / 2);
    assert!(server.clients[1].is_some(), "not idle yet");
    server.tick(&epoll, Instant::now() + IDLE_TIMEOUT);
    assert!(server.clients[0].is_some(), "the lock holder stays");
    assert!(server.clients[1].is_none());
    assert!(read_until_closed(&mut clients[1]).contains("idle too long"));
}

#[test]
fn a_client_that_does_not_read_its_answers_is_not_read_either() {
    let (_dir, mut server, epoll, clients) = server_with_clients(1);
    let mut asker = &clients[0];
    asker.write_all(&b"status\n".repeat(100)).unwrap();
    let big = vec![b'x'; MAX_UNREAD];
    let mut answered = 0;
    while let Some(request) = server.next_request(0, &epoll) {
        assert_eq!(request, Request::Status);
        server.reply(0, &epoll, big.clone());
        answered += 1;
    }
    let client = server.clients[0].as_ref().unwrap();
    assert!(answered < 100, "every request was answered into the buffer");
    assert!(
        client.output.len() <= 2 * MAX_UNREAD,
        "{}",
        client.output.len()
    );
    assert!(!client.interest().contains(EpollFlags::EPOLLIN));
    assert!(client.interest().contains(EpollFlags::EPOLLOUT));
}
