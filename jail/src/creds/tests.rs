//! The drop on the real kernel, each in a forked child (the test process keeps its ids), and
//! the check after it, which must name what was left.

use super::*;
use crate::testing::{expect_eq, in_forked_child, root_or_skip};

const NOBODY: u32 = 65534;

fn in_bounding_set(last_cap: u32) -> CapSet {
    (0..=last_cap)
        .filter(|&cap| sys::prctl(libc::PR_CAPBSET_READ, u64::from(cap), 0) == Ok(1))
        .fold(CapSet::EMPTY, CapSet::with)
}

#[test]
fn a_drop_leaves_exactly_the_ids_and_capabilities_asked_for() {
    if !root_or_skip("a_drop_leaves_exactly_the_ids_and_capabilities_asked_for") {
        return;
    }
    in_forked_child(|| {
        let last_cap = crate::caps::last_cap();
        let keep: CapSet = "net_bind_service".parse().unwrap();
        // The control: before the drop this is root with every capability.
        expect_eq("ids before", sys::getres_ids(), ((0, 0, 0), (0, 0, 0)))?;
        let (effective, _, _) = sys::capget().map_err(|e| e.to_string())?;
        expect_eq("sys_admin before", CapSet(effective).contains(21), true)?;

        let drop = PrivilegeDrop {
            gid: Some(NOBODY),
            uid: Some(NOBODY),
            keep_caps: keep,
            ..PrivilegeDrop::default()
        };
        drop.apply(last_cap).map_err(|e| e.to_string())?;

        let nobody = (NOBODY, NOBODY, NOBODY);
        expect_eq("ids after", sys::getres_ids(), (nobody, nobody))?;
        let (effective, permitted, inheritable) = sys::capget().map_err(|e| e.to_string())?;
        expect_eq("effective", CapSet(effective), keep)?;
        expect_eq("permitted", CapSet(permitted), keep)?;
        expect_eq("inheritable", CapSet(inheritable), keep)?;
        expect_eq("bounding set", in_bounding_set(last_cap), keep)?;
        expect_eq(
            "groups",
            nix::unistd::getgroups().map_err(|e| e.to_string())?,
            vec![],
        )?;
        expect_eq(
            "no_new_privs",
            sys::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0),
            Ok(1),
        )
    });
}

#[test]
fn the_unprivileged_emperor_keeps_only_setuid_and_setgid() {
    if !root_or_skip("the_unprivileged_emperor_keeps_only_setuid_and_setgid") {
        return;
    }
    in_forked_child(|| {
        let last_cap = crate::caps::last_cap();
        let keep: CapSet = "setuid,setgid".parse().unwrap();
        become_unprivileged(NOBODY, NOBODY, keep, last_cap).map_err(|e| e.to_string())?;
        let nobody = (NOBODY, NOBODY, NOBODY);
        expect_eq("ids", sys::getres_ids(), (nobody, nobody))?;
        let (effective, permitted, inheritable) = sys::capget().map_err(|e| e.to_string())?;
        expect_eq(
            "caps",
            (effective, permitted, inheritable),
            (keep.0, keep.0, 0),
        )?;
        expect_eq("bounding set", in_bounding_set(last_cap), keep)
    });
}

/// Nothing is dropped here: the check is asked about ids and capabilities this process does
/// not have, and must say which are left, not merely that something is.
#[test]
fn the_check_after_a_drop_names_what_was_left() {
    let last_cap = crate::caps::last_cap();
    let (uids, gids) = sys::getres_ids();
    let asked = if uids.0 == NOBODY { NOBODY - 1 } else { NOBODY };
    let drop = PrivilegeDrop {
        uid: Some(asked),
        gid: Some(gids.0),
        ..PrivilegeDrop::default()
    };
    let (effective, permitted, _) = sys::capget().unwrap();
    let failure = drop.verify(last_cap, true).unwrap_err();
    assert_eq!(failure.errno, Errno::EPERM);
    let DropStep::Verify(left) = failure.step else {
        panic!("not the check: {failure}");
    };
    let held = [uids.0, uids.1, uids.2];
    assert_eq!(left.uids, Some(Ids { asked, held }));
    assert_eq!(left.gids, None, "the gid asked is the one held");
    assert_eq!(left.effective, CapSet(effective));
    assert_eq!(left.permitted, CapSet(permitted));
    assert_eq!(left.bounding, in_bounding_set(last_cap));
    let [r, e, s] = held;
    let uids_left = format!("uids {r},{e},{s} (real, effective, saved) where {asked} was asked");
    assert!(
        failure
            .to_string()
            .starts_with(&format!("verify the drop: {uids_left}")),
        "{failure}"
    );
    if effective != 0 {
        let caps_left = format!("effective capabilities {} left", CapSet(effective));
        assert!(failure.to_string().contains(&caps_left), "{failure}");
    }
}

#[test]
fn each_step_of_the_drop_names_its_call_and_argument() {
    let named = [
        (DropStep::Setresuid(1000), "setresuid(1000)"),
        (DropStep::Setgroups(0), "setgroups([])"),
        (
            DropStep::BoundingDrop(21),
            "prctl(PR_CAPBSET_DROP, sys_admin)",
        ),
        (
            DropStep::Setrlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 1024,
                hard: 4096,
            },
            "setrlimit(RLIMIT_NOFILE, 1024, 4096)",
        ),
        (DropStep::Capset(CapSet::EMPTY), "capset(none)"),
    ];
    for (step, text) in named {
        assert_eq!(step.to_string(), text);
    }
}
