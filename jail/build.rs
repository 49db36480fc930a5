//! Builds `emperor-keeper` (keeper/: no std, no libc, panic = "abort") with rustc alone, into
//! OUT_DIR, for `keeper::IMAGE` to embed: the workspace's profiles unwind, which a no-std
//! binary cannot, and a profile's panic strategy cannot be set per package. On an
//! architecture the keeper has no system calls for, nothing is built and runtimes never
//! hibernate.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=keeper/src");
    println!("cargo:rustc-check-cfg=cfg(emperor_keeper)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" || !matches!(arch.as_str(), "x86_64" | "aarch64") {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin"])
        .args(["--crate-name", "emperor_keeper"])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=s",
            "-C",
            "debuginfo=0",
        ])
        .args([
            "-C",
            "strip=symbols",
            "-C",
            "relocation-model=pie",
            "-C",
            "lto=fat",
        ])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args([
            "-C",
            "link-arg=-static-pie",
            "-C",
            "link-arg=-Wl,--gc-sections",
        ])
        .args(["-C", "link-arg=-Wl,-z,noexecstack"])
        .arg("-o")
        .arg(out.join("emperor-keeper"))
        .arg("keeper/src/main.rs")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run rustc for keeper/src/main.rs");
    assert!(status.success(), "rustc failed to build keeper/src/main.rs");
    println!("cargo:rustc-cfg=emperor_keeper");
}
