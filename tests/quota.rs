//! Tenant quotas set on the emperor's side: `--emperor-tenant-max-vassals`. A config over its
//! tenant's quota waits, shown over-quota, and starts when one of its tenant's vassals goes;
//! other tenants are untouched.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn states(emperor: &Emperor, prefix: &str) -> Vec<String> {
    let mut states: Vec<String> = emperor.stats()["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"].as_str().unwrap().starts_with(prefix))
        .map(|v| v["state"].as_str().unwrap().to_string())
        .collect();
    states.sort();
    states
}

fn count(states: &[String], state: &str) -> usize {
    states.iter().filter(|s| *s == state).count()
}

/// Tenant A (quota 3) drops 5 configs, tenant B one.
fn over_quota_configs_wait_and_start_when_room_appears(
    emperor: &Emperor,
    vassals: &Path,
    drop_a: impl Fn(&str),
    drop_b: impl Fn(&str),
    tenant_a: &str,
) {
    for i in 0..5 {
        drop_a(&format!("a{i}.ini"));
    }
    drop_b("b0.ini");
    emperor.wait_until("three of A's run, two wait over quota, B's runs", || {
        let a = states(emperor, "a");
        count(&a, "running") == 3
            && count(&a, "over-quota") == 2
            && states(emperor, "b") == ["running"]
    });
    let log = emperor.log();
    assert_eq!(
        log.matches("--emperor-tenant-max-vassals").count(),
        2,
        "one refusal per config, naming the flag: {log}"
    );
    let tenants = emperor.stats()["tenants"].clone();
    let a: &Value = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == tenant_a)
        .unwrap_or_else(|| panic!("{tenants}"));
    assert_eq!(
        (
            a["vassals"].as_u64(),
            a["running"].as_u64(),
            a["over_quota"].as_u64(),
            a["max_vassals"].as_u64()
        ),
        (Some(5), Some(3), Some(2), Some(3)),
        "{tenants}"
    );

    // One of A's running vassals goes: one waiting config takes its place.
    let running: Vec<String> = emperor.stats()["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["state"] == "running" && v["name"].as_str().unwrap().starts_with('a'))
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    std::fs::remove_file(vassals.join(&running[0])).unwrap();
    emperor.wait_until("a waiting config of A starts in its place", || {
        let a = states(emperor, "a");
        count(&a, "running") == 3 && count(&a, "over-quota") == 1 && a.len() == 4
    });
    // A config waiting over quota that goes is simply forgotten.
    let waiting = emperor.stats()["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["state"] == "over-quota")
        .map(|v| v["name"].as_str().unwrap().to_string())
        .unwrap();
    std::fs::remove_file(vassals.join(&waiting)).unwrap();
    emperor.wait_until("it is gone, the three run on", || {
        let a = states(emperor, "a");
        a == ["running", "running", "running"]
    });
    assert_eq!(states(emperor, "b"), ["running"]);
}

#[test]
fn a_monitors_configs_over_its_quota_wait_and_start_when_one_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let emperor = Emperor::start(
        tmp.path(),
        &[
            "--emperor",
            other.to_str().unwrap(),
            "--emperor-tenant-max-vassals",
            "3",
        ],
    );
    let tenant_a = emperor.vassals.display().to_string();
    over_quota_configs_wait_and_start_when_room_appears(
        &emperor,
        &emperor.vassals,
        |name| {
            emperor.write(name, &ini("sleep 1000", &[]));
        },
        |name| {
            write(&other.join(name), &ini("sleep 1000", &[]));
        },
        &tenant_a,
    );
}

#[test]
fn in_tyrant_mode_an_owners_configs_over_its_quota_wait_and_start_when_one_goes() {
    if !have_root("in_tyrant_mode_an_owners_configs_over_its_quota") {
        return;
    }
    let tmp = open_tempdir();
    let emperor = Emperor::start(
        tmp.path(),
        &["--emperor-tyrant", "--emperor-tenant-max-vassals", "3"],
    );
    let drop_as = |uid: u32, name: &str| {
        emperor.drop_as(uid, name, &ini("sleep 1000", &[]));
    };
    over_quota_configs_wait_and_start_when_room_appears(
        &emperor,
        &emperor.vassals,
        |name| drop_as(20001, name),
        |name| drop_as(20002, name),
        "uid 20001",
    );
}
