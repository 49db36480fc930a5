//! Every config change is honoured: random churn of configs (create, rewrite in place, atomic
//! replace, touch, remove) with no pause for the emperor, then a settle; the running set must
//! equal the config set, each vassal running its final content, with no process left over.
//! A fixed set of seeds runs every time, plus one fresh seed; a failure prints its seed
//! (`CHURN_SEED=N cargo test --test churn` runs just that one).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const CONFIGS: usize = 24;
/// Operations per seed: with the pauses below, a few seconds of churn.
const OPERATIONS: usize = 600;
const SETTLE: Duration = Duration::from_secs(30);
const FIXED_SEEDS: [u64; 3] = [1, 0x5eed, 20261206];

/// xorshift64*: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A config whose payload carries its version in its command line (`sleep 100000.VVVVVV`);
/// every third config runs a short hook first, which widens its start and reload.
fn config(index: usize, version: u64) -> String {
    let hook: &[&str] = if index.is_multiple_of(3) {
        &["exec-as-user = /bin/sleep 0.05"]
    } else {
        &[]
    };
    ini(&format!("sleep 100000.{version:06}"), hook)
}

fn version_of(cmdline: &str) -> Option<u64> {
    cmdline.strip_prefix("sleep 100000.")?.trim().parse().ok()
}

/// [`OPERATIONS`] random changes; returns each present config's final version.
fn churn(vassals: &Path, staging: &Path, rng: &mut Rng) -> BTreeMap<String, u64> {
    let mut present: BTreeMap<String, u64> = BTreeMap::new();
    for version in 1..=OPERATIONS as u64 {
        let index = rng.below(CONFIGS as u64) as usize;
        let name = format!("c{index:02}.ini");
        let path = vassals.join(&name);
        match (present.contains_key(&name), rng.below(4)) {
            (false, _) => {
                write(&path, &config(index, version));
                present.insert(name, version);
            }
            (true, 0) => {
                // Rewritten in place: truncate and write.
                write(&path, &config(index, version));
                present.insert(name, version);
            }
            (true, 1) => {
                let staged = write(&staging.join(&name), &config(index, version));
                std::fs::rename(staged, &path).unwrap();
                present.insert(name, version);
            }
            (true, 2) => touch(&path),
            (true, _) => {
                std::fs::remove_file(&path).unwrap();
                present.remove(&name);
            }
        }
        if rng.below(4) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(30)));
        }
    }
    present
}

/// What runs: each vassal's payload version, from the stats and /proc; and every payload
/// process under the emperor, by version.
fn running(emperor: &Emperor) -> (BTreeMap<String, Option<u64>>, Vec<u64>) {
    let stats = emperor.stats();
    let vassals = stats["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let pid = v["payload_pid"].as_i64().unwrap_or(-1) as i32;
            let version = (v["state"] == "running" && pid > 0)
                .then(|| version_of(&cmdline(pid)))
                .flatten();
            (v["name"].as_str().unwrap().to_string(), version)
        })
        .collect();
    let mut payloads: Vec<u64> = descendants(emperor.pid)
        .into_iter()
        .filter_map(|pid| version_of(&cmdline(pid)))
        .collect();
    payloads.sort();
    (vassals, payloads)
}

fn run_seed(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "0"]);
    let mut rng = Rng(seed.max(1));
    let wanted = churn(&emperor.vassals, &staging, &mut rng);
    let expected: BTreeMap<String, Option<u64>> = wanted
        .iter()
        .map(|(name, &version)| (name.clone(), Some(version)))
        .collect();
    let mut expected_payloads: Vec<u64> = wanted.values().copied().collect();
    expected_payloads.sort();

    let deadline = Instant::now() + SETTLE;
    loop {
        let (vassals, payloads) = running(&emperor);
        if vassals == expected && payloads == expected_payloads {
            eprintln!("seed {seed}: {} configs settled", wanted.len());
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "seed {seed} (rerun: CHURN_SEED={seed} cargo test --test churn): {SETTLE:?} \
                 after the churn\n wanted {expected:?}\n    got {vassals:?}\n payloads wanted \
                 {expected_payloads:?}\n    got {payloads:?}\n--- emperor log ---\n{}",
                emperor.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn after_random_churn_every_vassal_runs_its_final_config_and_nothing_else_runs() {
    let seeds: Vec<u64> = match std::env::var("CHURN_SEED") {
        Ok(seed) => vec![seed.parse().expect("CHURN_SEED is a number")],
        Err(_) => {
            let fresh = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            FIXED_SEEDS.iter().copied().chain([fresh]).collect()
        }
    };
    for seed in seeds {
        eprintln!("churn seed {seed}");
        run_seed(seed);
    }
}
