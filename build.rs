//! Stamps the build with a hash of the sources the emperor and its runtime share (this
//! package's and the jail crate's, and the lock file), so the emperor can tell whether the
//! `emperor-vassal` beside it was built from the same code: `cargo run` builds the emperor
//! alone and would otherwise leave an older runtime binary in place.

use std::path::{Path, PathBuf};

const SOURCES: [&str; 4] = ["src", "jail/src", "jail/keeper/src", "Cargo.lock"];

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
    println!(
        "cargo:rustc-env=EMPEROR_GIT_REVISION={}",
        git_revision(&root)
    );
}

/// The commit the build is from (`-dirty` when the work tree has changes), for `--version`;
/// `unknown` outside a git checkout (a crate tarball).
fn git_revision(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // A new commit changes HEAD or the branch it names: the revision is taken again then.
    for watched in ["HEAD", "refs/heads"] {
        if let Some(path) = git(&["rev-parse", "--git-path", watched]) {
            println!("cargo:rerun-if-changed={}", root.join(path).display());
        }
    }
    let Some(revision) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_string();
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    if dirty {
        format!("{revision}-dirty")
    } else {
        revision
    }
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
