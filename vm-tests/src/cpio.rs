//! A newc ("070701") cpio archive built in memory, the format the kernel unpacks as an initramfs.
//!
//! Writing the archive ourselves, rather than packing a staging directory with cpio(1), lets every
//! entry carry its own owner and mode (a tenant's 0700 home owned by uid 2001, /dev/console)
//! without the host files needing that owner.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A character device: major, minor.
    CharDev(u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Permission bits only (e.g. 0o755); the file type comes from `node`.
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub node: Node,
}

/// Entries keyed by their path without the leading slash. A `BTreeMap` orders a directory before
/// everything under it (its path is a prefix of theirs), which is the order the kernel needs:
/// it creates each entry as it reads it, so a parent must already exist.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` (absolute, in the guest), creating missing parent directories as root 0755.
    /// A later insert at the same path replaces the earlier one.
    pub fn insert(&mut self, path: &str, entry: Entry) {
        let path = path.trim_matches('/');
        for (slash, _) in path.match_indices('/') {
            let directory = Entry {
                perm: 0o755,
                uid: 0,
                gid: 0,
                node: Node::Dir,
            };
            self.entries
                .entry(path[..slash].to_string())
                .or_insert(directory);
        }
        self.entries.insert(path.to_string(), entry);
    }

    pub fn dir(&mut self, path: &str, perm: u32, uid: u32, gid: u32) {
        let node = Node::Dir;
        self.insert(
            path,
            Entry {
                perm,
                uid,
                gid,
                node,
            },
        );
    }

    pub fn file(&mut self, path: &str, perm: u32, contents: impl Into<Vec<u8>>) {
        self.insert_root_owned(path, perm, Node::File(contents.into()));
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert_root_owned(path, 0o777, Node::Symlink(target.to_string()));
    }

    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.insert_root_owned(path, perm, Node::CharDev(major, minor));
    }

    fn insert_root_owned(&mut self, path: &str, perm: u32, node: Node) {
        let entry = Entry {
            perm,
            uid: 0,
            gid: 0,
            node,
        };
        self.insert(path, entry);
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path.trim_matches('/'))
    }

    /// Writes the archive in newc format, ending with the `TRAILER!!!` entry.
    pub fn write_newc(&self, out: &mut impl Write) -> io::Result<()> {
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let (kind, data, rdev): (u32, &[u8], (u32, u32)) = match &entry.node {
                Node::Dir => (0o040000, &[], (0, 0)),
                Node::File(bytes) => (0o100000, bytes, (0, 0)),
                Node::Symlink(target) => (0o120000, target.as_bytes(), (0, 0)),
                Node::CharDev(major, minor) => (0o020000, &[], (*major, *minor)),
            };
            let nlink = if entry.node == Node::Dir { 2 } else { 1 };
            let header = Header {
                ino,
                mode: kind | (entry.perm & 0o7777),
                uid: entry.uid,
                gid: entry.gid,
                nlink,
                rdev,
            };
            header.write(out, path, data)?;
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            rdev: (0, 0),
        };
        trailer.write(out, "TRAILER!!!", &[])
    }
}

struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    rdev: (u32, u32),
}

impl Header {
    /// One entry: the 110-byte header, the NUL-terminated name and the data, the name and the
    /// data each padded to a multiple of 4 bytes.
    fn write(&self, out: &mut impl Write, name: &str, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| io::Error::other("file over 4 GiB"))?;
        let name_size = name.len() as u32 + 1;
        let fields = [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            0, // mtime: fixed, so the same inputs give the same archive
            size,
            0, // devmajor
            0, // devminor
            self.rdev.0,
            self.rdev.1,
            name_size,
            0, // check: unused by newc
        ];
        let mut header = String::from("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        out.write_all(header.as_bytes())?;
        out.write_all(name.as_bytes())?;
        out.write_all(&[0])?;
        out.write_all(padding(110 + name_size as usize))?;
        out.write_all(data)?;
        out.write_all(padding(data.len()))
    }
}

fn padding(len: usize) -> &'static [u8] {
    &[0, 0, 0][..(4 - len % 4) % 4]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_before_children_and_entries_are_aligned() {
        let mut archive = Archive::new();
        archive.file("/etc/nginx/nginx.conf", 0o644, "events {}\n");
        archive.dir("/home/alice", 0o700, 2001, 2001);
        let mut out = Vec::new();
        archive.write_newc(&mut out).unwrap();

        let names: Vec<&str> = archive.entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/nginx",
                "etc/nginx/nginx.conf",
                "home",
                "home/alice"
            ]
        );
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("070701"));
        assert!(text.contains("TRAILER!!!"));
        // home/alice: a directory (040700) owned by 2001 (0x7d1).
        assert!(text.contains("000041c0000007d1000007d1"));
    }

    #[test]
    fn the_archive_unpacks_with_cpio_when_it_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::new();
        archive.file("/bin/hello", 0o755, "#!/bin/sh\necho hi\n");
        archive.symlink("/bin/hi", "hello");
        let mut out = Vec::new();
        archive.write_newc(&mut out).unwrap();
        let child = std::process::Command::new("cpio")
            .args(["-i", "-d", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { return }; // no cpio(1) here: nothing to check against
        child.stdin.take().unwrap().write_all(&out).unwrap();
        assert!(child.wait().unwrap().success());
        let hello = std::fs::read_to_string(dir.path().join("bin/hello")).unwrap();
        assert_eq!(hello, "#!/bin/sh\necho hi\n");
        assert_eq!(
            std::fs::read_link(dir.path().join("bin/hi"))
                .unwrap()
                .to_str(),
            Some("hello")
        );
    }
}
