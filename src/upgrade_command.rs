//! `emperor upgrade --control PATH`: ask the emperor to execute the binary installed at its
//! path in its place, and wait for the outcome: the new binary took over (its upgrade count
//! grew), or the upgrade failed and the old binary went on (a new failure is recorded).

use crate::reload::{Control, ReloadError};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the emperor is asked how the upgrade went.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// 0: upgraded; 1: the upgrade failed (the emperor goes on); 2: the emperor cannot be asked.
pub fn run(control: &Path, timeout: Duration) -> u8 {
    let before = match life(control) {
        Ok(life) => life,
        Err(e) => {
            eprintln!("emperor upgrade: {e}");
            return e.exit_code();
        }
    };
    if let Err(e) = Control::connect(control).and_then(|mut c| c.ask("upgrade")) {
        eprintln!("emperor upgrade: {e}");
        return e.exit_code();
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        std::thread::sleep(POLL_EVERY);
        // Refused or unanswered while the new binary takes over: asked again.
        let Ok(now) = life(control) else {
            continue;
        };
        if now["upgrades"] != before["upgrades"] {
            println!(
                "upgraded: {} -> {} (upgrade {})",
                before["version"].as_str().unwrap_or("?"),
                now["version"].as_str().unwrap_or("?"),
                now["upgrades"]
            );
            return 0;
        }
        if now["last_upgrade_failure"] != before["last_upgrade_failure"] {
            let reason = now["last_upgrade_failure"]["reason"]
                .as_str()
                .unwrap_or("?");
            eprintln!(
                "emperor upgrade: failed: {reason} (the emperor goes on, every vassal untouched)"
            );
            return 1;
        }
    }
    eprintln!("emperor upgrade: no outcome within {timeout:?}");
    1
}

fn life(control: &Path) -> Result<Value, ReloadError> {
    let answer = Control::connect(control)?.ask("status")?;
    Ok(answer["emperor"].clone())
}
