//! Reading a config file, or a file a config pulls in (`include`, `@(file)`). A tenant names
//! these paths and the emperor reads them too (for on-demand and pool sockets), so a read must
//! end: only regular files, opened without blocking (a FIFO would hang the reader, a terminal
//! become its controlling one), and at most [`MAX_BYTES`] (`/dev/zero` would never end).

use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Larger than any sane config; a file this big is refused, not truncated.
pub const MAX_BYTES: u64 = 4 << 20;

/// The whole file as UTF-8 text; an error for anything but a regular file of at most
/// [`MAX_BYTES`].
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    file.take(MAX_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_BYTES >> 20),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_a_sane_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.ini");
        std::fs::write(&plain, "[uwsgi]\n").unwrap();
        assert_eq!(read_text(&plain).unwrap(), "[uwsgi]\n");

        let fifo = dir.path().join("fifo.ini");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = read_text(&fifo).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");

        let error = read_text(Path::new("/dev/zero")).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert!(read_text(dir.path()).is_err(), "a directory");

        let big = dir.path().join("big.ini");
        std::fs::write(&big, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        let error = read_text(&big).unwrap_err();
        assert!(error.to_string().contains("larger than 4 MiB"), "{error}");
    }
}
