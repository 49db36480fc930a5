//! What the host needs before a VM can boot. Without it a developer's run skips with the reason;
//! under CI=true it fails instead, so CI can never pass by skipping. Installing is the job of the
//! README's test command, never of the tests.

use crate::initramfs::{UWSGI, UWSGI_PYTHON_PLUGIN};
use std::path::{Path, PathBuf};

/// Where the parts of a boot are on this host.
pub struct Host {
    pub kernel: PathBuf,
}

pub fn check() -> Result<Host, String> {
    if effective_uid() != Some(0) {
        return Err("not root (Debian's kernel image is readable by root only)".into());
    }
    if find_in_path("qemu-system-x86_64").is_none() {
        return Err("qemu-system-x86_64 not found (apt-get install qemu-system-x86)".into());
    }
    let kernel = kernel().ok_or(
        "no kernel: set VM_TESTS_KERNEL or install one in /boot (apt-get install linux-image-amd64)",
    )?;
    for (path, package) in [
        ("/bin/busybox", "busybox-static"),
        ("/usr/sbin/nginx", "nginx"),
        (UWSGI, "uwsgi-core"),
        (UWSGI_PYTHON_PLUGIN, "uwsgi-plugin-python3"),
        ("/lib/systemd/systemd", "systemd"),
        ("/lib/systemd/systemd-journald", "systemd"),
        ("/usr/bin/journalctl", "systemd"),
    ] {
        if !Path::new(path).is_file() {
            return Err(format!("{path} not found (apt-get install {package})"));
        }
    }
    Ok(Host { kernel })
}

/// Under CI a missing prerequisite is a failure, not a skip.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `VM_TESTS_KERNEL`, else the last /boot/vmlinuz-* by name.
fn kernel() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VM_TESTS_KERNEL") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    kernels.pop()
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
