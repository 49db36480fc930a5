//! Stamps the build with a hash of the sources the emperor and its runtime share (this
//! package's and the jail crate's, and the lock file), so the emperor can tell whether the
//! `emperor-vassal` beside it was built from the same code: `cargo run` builds the emperor
//! alone and would otherwise leave an older runtime binary in place.

use std::path::{Path, PathBuf};

const SOURCES: [&str; 3] = ["src", "jail/src", "Cargo.lock"];

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
        collect(&root.join(source), &mut files);
    }
    files.sort();
    // FNV-1a over each file's path and contents: a stamp, not a defence against anyone.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        let name = file.strip_prefix(&root).unwrap_or(file).to_string_lossy();
        let contents = std::fs::read(file).unwrap_or_default();
        for byte in name.bytes().chain([0]).chain(contents) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=EMPEROR_SOURCE_STAMP={hash:016x}");
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                collect(&entry.path(), files);
            }
        }
        Err(_) if path.is_file() => files.push(path.to_path_buf()),
        Err(_) => {}
    }
}
