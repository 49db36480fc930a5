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
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(std::slice::from_ref(&byte))];
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SysError::new("sendmsg(SCM_RIGHTS)", e)),
        }
    }
}

/// Most fds one read accepts; more are closed (the sender only ever attaches one).
const MAX_RECEIVED_FDS: usize = 4;

/// Read bytes without blocking, with any fds attached to them (close-on-exec). `Ok((0, _))`
/// is end of file; EAGAIN is returned as the error when nothing is pending.
pub fn recv_with_fds(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Vec<OwnedFd>), SysError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut space = nix::cmsg_space!([RawFd; MAX_RECEIVED_FDS]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
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
    Ok((msg.bytes, fds))
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
}
