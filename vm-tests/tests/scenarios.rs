//! One test per scenario script in vm-tests/scenarios/: `scenario_10_emperor_killed` boots a VM
//! on `10-emperor-killed.sh`. libtest runs them in parallel, one VM per test thread.
//! Run one with `cargo test -p vm-tests -- 10_emperor_killed`.

macro_rules! scenarios {
    ($($test:ident => $script:literal,)*) => {
        $(
            #[test]
            fn $test() {
                vm_tests::run_scenario($script);
            }
        )*

        const SCRIPTS: &[&str] = &[$($script),*];
    };
}

scenarios! {
    scenario_00_boot => "00-boot",
    scenario_10_emperor_killed => "10-emperor-killed",
    scenario_11_emperor_terminated => "11-emperor-terminated",
    scenario_20_nginx_classic => "20-nginx-classic",
    scenario_30_tyrant_tenants => "30-tyrant-tenants",
    scenario_31_unprivileged_emperor => "31-unprivileged-emperor",
    scenario_32_upgrade => "32-upgrade",
    scenario_40_cgroup_limits => "40-cgroup-limits",
    scenario_41_tenant_slices => "41-tenant-slices",
    scenario_42_delegated_cgroup => "42-delegated-cgroup",
    scenario_50_escape => "50-escape",
    scenario_60_uwsgi_tenants => "60-uwsgi-tenants",
    scenario_70_systemd => "70-systemd",
}

/// A script without a test above would never run.
#[test]
fn every_scenario_script_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.strip_suffix(".sh").map(str::to_string))
        .filter(|name| !name.starts_with("lib"))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, SCRIPTS);
}
