//! Configs handed to a vassal runtime as sealed memory files: the emperor writes the text once
//! and seals it, so neither a tenant nor anything else can change what the runtime reads, and
//! no file ever lies where a tenant could swap it.

use crate::error::SysError;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// The seals a config file must carry: no write, no shrink, no grow, no further sealing.
fn required_seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// A memfd holding `bytes`, sealed against any change (close-on-exec: it reaches a runtime
/// only when mapped there on purpose).
pub fn sealed(name: &str, bytes: &[u8]) -> Result<OwnedFd, SysError> {
    // memfd names are for /proc/PID/fd only; a NUL would be refused, so it is dropped.
    let name = CString::new(name.replace('\0', "")).unwrap_or_default();
    let fd = memfd_create(
        &name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(|e| SysError::new("memfd_create", e))?;
    let mut file = File::from(fd);
    file.write_all(bytes)
        .map_err(|e| SysError::new("write to a memfd", io_errno(&e)))?;
    fcntl(file.as_raw_fd(), FcntlArg::F_ADD_SEALS(required_seals()))
        .map_err(|e| SysError::new("fcntl(F_ADD_SEALS)", e))?;
    Ok(file.into())
}

/// The whole content of a sealed memfd, read from offset 0 (so it can be read again on every
/// reload). A file without every seal is refused: it could change under the reader.
pub fn read_sealed(fd: BorrowedFd<'_>) -> Result<Vec<u8>, SysError> {
    let seals = fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS)
        .map_err(|e| SysError::new("fcntl(F_GET_SEALS)", e))?;
    if !SealFlag::from_bits_truncate(seals).contains(required_seals()) {
        return Err(SysError::new(
            "a config memfd without every seal",
            nix::errno::Errno::EPERM,
        ));
    }
    let file = File::from(
        fd.try_clone_to_owned()
            .map_err(|e| SysError::new("fcntl(F_DUPFD_CLOEXEC)", io_errno(&e)))?,
    );
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = file
            .read_at(&mut chunk, bytes.len() as u64)
            .map_err(|e| SysError::new("pread on a config memfd", io_errno(&e)))?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

fn io_errno(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn sealed_text_reads_back_and_cannot_be_changed() {
        let fd = sealed("app.ini", b"[uwsgi]\nx = 1\n").unwrap();
        assert_eq!(read_sealed(fd.as_fd()).unwrap(), b"[uwsgi]\nx = 1\n");
        let file = File::from(fd.try_clone().unwrap());
        assert!(
            file.write_at(b"evil", 0).is_err(),
            "a sealed memfd took a write"
        );
        assert!(file.set_len(0).is_err(), "a sealed memfd was truncated");
        assert_eq!(read_sealed(fd.as_fd()).unwrap(), b"[uwsgi]\nx = 1\n");
    }

    #[test]
    fn an_unsealed_file_is_refused() {
        let fd = memfd_create(c"plain", MemFdCreateFlag::MFD_CLOEXEC).unwrap();
        let err = read_sealed(fd.as_fd()).unwrap_err();
        assert!(err.to_string().contains("without every seal"), "{err}");
    }
}
