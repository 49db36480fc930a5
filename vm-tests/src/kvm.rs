//! Whether KVM works here. /dev/kvm can exist while a KVM guest hangs at boot, so the only
//! honest test is a boot: the kernel alone, without an initramfs, runs until it panics for
//! want of a root filesystem, and panic=-1 with -no-reboot makes qemu exit. Under KVM that takes
//! about a second; a guest that has not got there in five is taken as hung, and we use TCG.

use crate::qemu::Boot;
use std::path::Path;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `kvm` or `tcg`. `VM_TESTS_ACCEL` forces one without probing.
pub fn choose_accel(kernel: &Path, work_dir: &Path) -> String {
    if let Ok(accel) = std::env::var("VM_TESTS_ACCEL") {
        return accel;
    }
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if kvm_usable && kvm_boots(kernel, work_dir) {
        "kvm".into()
    } else {
        "tcg".into()
    }
}

fn kvm_boots(kernel: &Path, work_dir: &Path) -> bool {
    let probe = Boot {
        kernel,
        initrd: None,
        append: "console=ttyS0 panic=-1",
        accel: "kvm",
        serial_log: &work_dir.join("kvm-probe.log"),
        timeout: PROBE_TIMEOUT,
    };
    match probe.run() {
        Ok(run) => run.exited && run.log.contains("Kernel panic"),
        Err(_) => false,
    }
}
