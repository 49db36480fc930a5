//! Tier 3 tests: each scenario boots Debian's kernel under QEMU with an initramfs holding the
//! emperor, busybox, nginx and uWSGI; the scenario script runs in the guest and /init prints its
//! verdict on the serial console. See docs/testing.md.

mod cpio;
mod emperor;
mod initramfs;
mod kvm;
mod prereq;
mod qemu;
mod verdict;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use verdict::Verdict;

/// How long a scenario's VM may run before it is killed and the scenario failed.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(240);
/// The guest's own limit on the scenario is this much shorter, so that a scenario that hangs
/// still gets a verdict (and a log) from the guest, rather than a kill from the host.
const GUEST_MARGIN: Duration = Duration::from_secs(20);
/// How much of the guest's log a failure shows.
const LOG_TAIL_LINES: usize = 200;

/// What every scenario of this test process shares: built once, on first use.
struct Setup {
    kernel: PathBuf,
    initramfs: PathBuf,
    accel: String,
    work_dir: PathBuf,
}

/// Boots the guest on `scenario` (the name of vm-tests/scenarios/NAME.sh) and panics with the
/// reason and the guest's log unless its verdict is PASS. Skips (returns) when the host cannot
/// run VMs, except under CI=true.
pub fn run_scenario(scenario: &str) {
    let host = match prereq::check() {
        Ok(host) => host,
        Err(reason) if prereq::on_ci() => panic!("VM tests cannot run under CI=true: {reason}"),
        Err(reason) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| say(&format!("skipping VM tests: {reason}")));
            return;
        }
    };
    static SETUP: OnceLock<Result<Setup, String>> = OnceLock::new();
    let setup = match SETUP.get_or_init(|| prepare(host.kernel)) {
        Ok(setup) => setup,
        Err(e) => panic!("preparing the VM failed: {e}"),
    };

    let timeout = timeout();
    let guest_timeout = timeout
        .saturating_sub(GUEST_MARGIN)
        .max(Duration::from_secs(10));
    let append = format!(
        "console=ttyS0 panic=-1 quiet emperor.scenario={scenario} emperor.timeout={}",
        guest_timeout.as_secs()
    );
    let serial_log = setup.work_dir.join("logs").join(format!("{scenario}.log"));
    let boot = qemu::Boot {
        kernel: &setup.kernel,
        initrd: Some(&setup.initramfs),
        append: &append,
        accel: &setup.accel,
        serial_log: &serial_log,
        timeout,
    };
    let run = boot.run().unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let verdict = match (run.exited, verdict::parse(&run.log)) {
        (false, _) => Verdict::Fail(format!("guest killed after {} s", timeout.as_secs())),
        (true, verdict) => verdict,
    };
    let secs = run.elapsed.as_secs_f32();
    match verdict {
        Verdict::Pass => say(&format!(
            "{scenario}: PASS in {secs:.1} s ({})",
            setup.accel
        )),
        Verdict::Fail(reason) => panic!(
            "{scenario}: FAIL after {secs:.1} s ({}): {reason}\n\
             --- guest log ({}), last {LOG_TAIL_LINES} lines ---\n{}",
            setup.accel,
            serial_log.display(),
            tail(&run.log, LOG_TAIL_LINES)
        ),
    }
}

fn prepare(kernel: PathBuf) -> Result<Setup, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir), // join keeps an absolute dir as it is
        None => workspace.join("target"),
    };
    let work_dir = target.join("vm-work");
    std::fs::create_dir_all(work_dir.join("logs"))
        .map_err(|e| format!("create {}: {e}", work_dir.display()))?;

    let initramfs = work_dir.join("initramfs.cpio");
    // The KVM probe boots a VM for up to 5 s: do it while the emperor builds.
    let (accel, built) = std::thread::scope(|scope| {
        let probe = scope.spawn(|| kvm::choose_accel(&kernel, &work_dir));
        let built = emperor::binary(&workspace, &target.join("vm")).and_then(|emperor| {
            initramfs::build(&initramfs, &emperor, Path::new(env!("CARGO_MANIFEST_DIR")))
        });
        (probe.join().unwrap_or_else(|_| "tcg".into()), built)
    });
    built?;
    Ok(Setup {
        kernel,
        initramfs,
        accel,
        work_dir,
    })
}

/// `VM_TESTS_TIMEOUT` (seconds), else [`DEFAULT_TIMEOUT`].
fn timeout() -> Duration {
    std::env::var("VM_TESTS_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
}

/// A line on stderr that libtest does not capture: skips and boot times show in every run.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
