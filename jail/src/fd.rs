//! File descriptors inherited through exec, which Rust cannot know it owns.

use crate::error::SysError;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Take ownership of an fd inherited across execve (such as the emperor protocol socket at
/// fd 3), marking it close-on-exec so it only reaches a child that is given it on purpose.
pub fn adopt_inherited(fd: RawFd) -> Result<OwnedFd, SysError> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| SysError::new("fcntl(F_SETFD) on inherited fd", e))?;
    // SAFETY: F_SETFD succeeded, so `fd` is open; it was inherited through execve and nothing
    // in this process has wrapped it yet (callers adopt each inherited fd once, at start-up).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Move `fd` to the lowest free number at or above `floor` (close-on-exec), closing the
/// original: long-lived fds parked high leave the low numbers to what a spawn creates (see
/// [`crate::launch::Launch::fresh_fd_table`]). Parking is only an optimisation: when the
/// open-files limit leaves no room up there, the fd stays where it is.
pub fn park_above(fd: OwnedFd, floor: RawFd) -> OwnedFd {
    use std::os::fd::AsRawFd;
    if fd.as_raw_fd() >= floor {
        return fd;
    }
    match fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(floor)) {
        // SAFETY: F_DUPFD_CLOEXEC returned a new open fd that nothing else owns; the
        // original is closed when `fd` drops here.
        Ok(parked) => unsafe { OwnedFd::from_raw_fd(parked) },
        Err(_) => fd,
    }
}

/// Let `fd` survive the next execve (clear close-on-exec): for the fds a runtime keeps when it
/// re-execs itself (the emperor protocol socket, the cgroup directory).
pub fn keep_across_exec(fd: std::os::fd::BorrowedFd<'_>) -> Result<(), SysError> {
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        FcntlArg::F_SETFD(FdFlag::empty()),
    )
    .map(drop)
    .map_err(|e| SysError::new("fcntl(F_SETFD) to keep an fd across execve", e))
}

/// Send one byte with `fd` attached (SCM_RIGHTS) over a Unix stream socket: how the emperor
/// hands a runtime a fresh sealed config together with the command that needs it.
pub fn send_byte_with_fd(
    socket: std::os::fd::BorrowedFd<'_>,
    byte: u8,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<(), SysError> {
    send_message(socket, &[byte], &[fd])
}

/// Most fds one read of [`recv_with_fds`] accepts; more are closed (the sender only ever
/// attaches one).
const MAX_RECEIVED_FDS: usize = 4;

/// Read bytes without blocking, with any fds attached to them (close-on-exec). `Ok((0, _))`
/// is end of file; EAGAIN is returned as the error when nothing is pending.
pub fn recv_with_fds(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Vec<OwnedFd>), SysError> {
    let mut space = nix::cmsg_space!([RawFd; MAX_RECEIVED_FDS]);
    let message = recv_once(
        socket,
        buf,
        &mut space,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )?;
    Ok((message.len, message.fds))
}

/// Most fds one message of [`send_message`] carries.
pub const MAX_MESSAGE_FDS: usize = 16;

/// Send one message (a datagram on a SOCK_SEQPACKET socket, bytes on a stream) with `fds`
/// attached (SCM_RIGHTS), blocking until it is queued.
pub fn send_message(
    socket: std::os::fd::BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<(), SysError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsgs = if raw.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    let iov = [std::io::IoSlice::new(bytes)];
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SysError::new("sendmsg(SCM_RIGHTS)", e)),
        }
    }
}

/// One message read by [`recv_message`].
#[derive(Debug)]
pub struct Message {
    /// Bytes of it in the buffer; 0 is end of file (the peer closed).
    pub len: usize,
    /// The fds attached to it, close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The message or its fds did not fit: the rest was discarded (closed) by the kernel.
    pub truncated: bool,
}

/// Block until one message (SOCK_SEQPACKET) arrives, with any fds attached to it.
pub fn recv_message(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<Message, SysError> {
    let mut space = nix::cmsg_space!([RawFd; MAX_MESSAGE_FDS]);
    loop {
        match recv_once(socket, buf, &mut space, nix::sys::socket::MsgFlags::empty()) {
            Err(e) if e.errno == nix::errno::Errno::EINTR => continue,
            other => return other,
        }
    }
}

/// One recvmsg(2) into `buf`, taking ownership of the fds that come with it (as many as
/// `space` holds; the kernel closes the rest and says so).
fn recv_once(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
    space: &mut Vec<u8>,
    flags: nix::sys::socket::MsgFlags,
) -> Result<Message, SysError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(space),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| SysError::new("recvmsg", e))?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(|e| SysError::new("recvmsg", e))? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: the kernel just installed `fd` in this process for this message
                // (SCM_RIGHTS); nothing else refers to it, so it is ours to own and close.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    Ok(Message {
        len: msg.bytes,
        fds,
        truncated,
    })
}

#[cfg(test)]
mod passing_tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_byte_carries_its_fd_and_plain_bytes_carry_none() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let memfd = crate::memfd::sealed("t.ini", b"[uwsgi]\n").unwrap();
        a.write_all(&[0]).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(recv_with_fds(b.as_fd(), &mut buf).unwrap().0, 1);
        send_byte_with_fd(a.as_fd(), 1, memfd.as_fd()).unwrap();
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, buf[0], fds.len()), (1, 1, 1));
        assert_eq!(
            crate::memfd::read_sealed(fds[0].as_fd()).unwrap(),
            b"[uwsgi]\n"
        );
        let err = recv_with_fds(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.errno, nix::errno::Errno::EAGAIN);
    }

    fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn a_message_keeps_its_bounds_and_its_fds_in_order() {
        let (a, b) = seqpacket_pair();
        let first = crate::memfd::sealed("first", b"1").unwrap();
        let second = crate::memfd::sealed("second", b"2").unwrap();
        send_message(a.as_fd(), b"two fds", &[first.as_fd(), second.as_fd()]).unwrap();
        send_message(a.as_fd(), b"none", &[]).unwrap();
        let mut buf = [0u8; 64];
        let message = recv_message(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..message.len], b"two fds");
        assert!(!message.truncated);
        let contents: Vec<Vec<u8>> = message
            .fds
            .iter()
            .map(|fd| crate::memfd::read_sealed(fd.as_fd()).unwrap())
            .collect();
        assert_eq!(contents, [b"1".to_vec(), b"2".to_vec()]);
        let message = recv_message(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..message.len], message.fds.len()), (&b"none"[..], 0));
        drop(a);
        assert_eq!(
            recv_message(b.as_fd(), &mut buf).unwrap().len,
            0,
            "end of file"
        );
    }

    #[test]
    fn a_message_too_long_for_the_buffer_says_so() {
        let (a, b) = seqpacket_pair();
        send_message(a.as_fd(), &[7u8; 100], &[]).unwrap();
        let mut buf = [0u8; 10];
        let message = recv_message(b.as_fd(), &mut buf).unwrap();
        assert!(message.truncated);
    }
}
