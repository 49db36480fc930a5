//! One boot of the guest under qemu-system-x86_64, its serial console going to a log file,
//! killed if it has not powered off by the deadline.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub struct Boot<'a> {
    pub kernel: &'a Path,
    pub initrd: Option<&'a Path>,
    /// The kernel command line.
    pub append: &'a str,
    /// `tcg` or `kvm`.
    pub accel: &'a str,
    pub serial_log: &'a Path,
    pub timeout: Duration,
}

pub struct Run {
    /// False if qemu was killed at the deadline.
    pub exited: bool,
    pub elapsed: Duration,
    /// Everything the guest wrote on its serial console, then anything qemu itself printed.
    pub log: String,
}

impl Boot<'_> {
    pub fn run(&self) -> Result<Run, String> {
        let mut command = Command::new("qemu-system-x86_64");
        command
            .args([
                "-accel",
                self.accel,
                "-nographic",
                "-no-reboot",
                "-monitor",
                "none",
            ])
            .args(["-m", "1024", "-smp", "1", "-nic", "none"])
            .arg("-serial")
            .arg(format!("file:{}", self.serial_log.display()))
            .arg("-kernel")
            .arg(self.kernel)
            .args(["-append", self.append]);
        if let Some(initrd) = self.initrd {
            command.arg("-initrd").arg(initrd);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());

        let start = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("run qemu-system-x86_64: {e}"))?;
        // The guest powers itself off after its verdict (and the kernel exits qemu on a panic,
        // thanks to panic=-1 and -no-reboot); a hung guest is killed here.
        let exited = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if start.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                Ok(None) => sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("wait for qemu: {e}")),
            }
        };
        let elapsed = start.elapsed();

        let mut log = fs::read(self.serial_log)
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\r', ""))
            .unwrap_or_default();
        let mut qemu_stderr = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut qemu_stderr);
        }
        if !qemu_stderr.trim().is_empty() {
            log.push_str("\n--- qemu stderr ---\n");
            log.push_str(&qemu_stderr);
        }
        Ok(Run {
            exited,
            elapsed,
            log,
        })
    }
}
