//! Every config format runs its vassal; magic variables and placeholders reach the payload's
//! command line; files that are not configs are ignored.

mod common;

use common::*;
use std::path::Path;

/// The payload writes what its command line became into `root/marker-NAME`, then sleeps.
const COMMAND: &str = "sh -c 'echo n=%n e=%e s=%s c=%c x=%x p=%p d=%d g=%(greeting) pct=%% \
                       > %d../marker-%n; exec sleep 1000'";

fn expected(vassals: &Path, name: &str, ext: &str) -> String {
    let dir = vassals.display();
    format!(
        "n={name} e={ext} s={name}.{ext} c=vassals x=uwsgi p={dir}/{name}.{ext} d={dir}/ \
         g=hello-{name} pct=%\n"
    )
}

fn config(ext: &str) -> String {
    match ext {
        "ini" => format!(
            "[other]\nunprivileged-binary-patch-arg = false\n\n[uwsgi]\ngreeting = hello-%n\n\
             unprivileged-binary-patch-arg = {COMMAND}\n"
        ),
        "json" | "js" => format!(
            "{{\"uwsgi\": {{\"greeting\": \"hello-%n\", \
             \"unprivileged-binary-patch-arg\": \"{COMMAND}\"}}}}\n"
        ),
        "yml" | "yaml" => {
            format!("uwsgi:\n  greeting: hello-%n\n  unprivileged-binary-patch-arg: {COMMAND}\n")
        }
        "xml" => format!(
            "<uwsgi>\n  <greeting>hello-%n</greeting>\n  \
             <unprivileged-binary-patch-arg>{}</unprivileged-binary-patch-arg>\n</uwsgi>\n",
            COMMAND.replace('>', "&gt;")
        ),
        other => panic!("no sample for {other}"),
    }
}

#[test]
fn each_config_format_runs_its_vassal_with_magic_vars_and_placeholders() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &["--emperor-throttle", "10"]);
    let formats = [
        ("app-ini", "ini"),
        ("app-json", "json"),
        ("app-js", "js"),
        ("app-yml", "yml"),
        ("app-yaml", "yaml"),
        ("app-xml", "xml"),
    ];
    for (name, ext) in formats {
        emperor.write(&format!("{name}.{ext}"), &config(ext));
    }

    for (name, ext) in formats {
        let (_, payload) = emperor.running(&format!("{name}.{ext}"));
        let marker = tmp.path().join(format!("marker-{name}"));
        let text = emperor.wait_for(&format!("{} is written", marker.display()), || {
            std::fs::read_to_string(&marker)
                .ok()
                .filter(|t| t.ends_with('\n'))
        });
        assert_eq!(text, expected(&emperor.vassals, name, ext), "{ext}");
        // The marker is written just before the shell execs its sleep.
        emperor.wait_until(&format!("{ext}: the shell execs sleep"), || {
            cmdline(payload) == "sleep 1000"
        });
    }
    let totals = &emperor.stats()["totals"];
    assert_eq!(totals["running"], formats.len());
    assert_eq!(totals["blacklisted"], 0);
}

#[test]
fn chosen_section_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    // The payload comes from [uwsgi]; `include = file:section` reads another section.
    write(
        &tmp.path().join("shared.ini"),
        "[uwsgi]\nunprivileged-binary-patch-arg = false\n[prod]\nlength = 1001\n",
    );
    emperor.write(
        "app.ini",
        &ini(
            "sleep %(length)",
            &["include = ../shared.ini:prod", "; a comment", "# another"],
        ),
    );
    let (_, payload) = emperor.running("app.ini");
    assert_eq!(cmdline(payload), "sleep 1001");
}

#[test]
fn environment_file_and_arithmetic_expand_in_values() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("seconds.txt"), "900\n");
    let emperor = Emperor::start(tmp.path(), &[]);
    // $(VAR:-default), then @(file), then %(placeholder arithmetic).
    emperor.write(
        "app.ini",
        &ini(
            "sleep %(total)",
            &[
                "base = @(../seconds.txt)",
                "total = %(base + $(EMPEROR_TEST_SURELY_UNSET:-100))",
            ],
        ),
    );
    let (_, payload) = emperor.running("app.ini");
    assert_eq!(cmdline(payload), "sleep 1000");
}

#[test]
fn env_and_chdir_reach_the_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.write(
        "app.ini",
        &ini(
            "sh -c 'echo $GREETING $PATH > marker; exec sleep 1000'",
            &[
                "env = GREETING=hello",
                "env = PATH=/usr/bin:/bin",
                "chdir = %d..",
            ],
        ),
    );
    let (_, payload) = emperor.running("app.ini");
    let marker = tmp.path().join("marker");
    let text = emperor.wait_for("the marker", || {
        std::fs::read_to_string(&marker)
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    assert_eq!(text, "hello /usr/bin:/bin\n");
    assert_eq!(
        std::fs::read_link(format!("/proc/{payload}/cwd")).unwrap(),
        std::fs::canonicalize(tmp.path()).unwrap()
    );
    // The payload holds the protocol socket on fd 3, named by UWSGI_EMPEROR_FD. (Read once
    // the shell has exec'd its sleep: /proc/PID/environ reads empty while an exec swaps it.)
    emperor.wait_until("the shell execs sleep", || cmdline(payload) == "sleep 1000");
    let environ = std::fs::read(format!("/proc/{payload}/environ")).unwrap();
    assert!(environ
        .split(|&b| b == 0)
        .any(|kv| kv == b"UWSGI_EMPEROR_FD=3"));
    assert!(std::fs::read_link(format!("/proc/{payload}/fd/3"))
        .unwrap()
        .display()
        .to_string()
        .starts_with("socket:"));
}

#[test]
fn files_that_are_not_configs_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let vassals = tmp.path().join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let broken = "[uwsgi]\nunprivileged-binary-patch-arg = /nonexistent\n";
    write(&vassals.join("template.skel"), broken);
    write(&vassals.join("first.ini"), &ini("sleep 1000", &[]));

    let emperor = Emperor::start(tmp.path(), &[]);
    emperor.running("first.ini");
    // Files dropped after the start: a later real config proves the earlier ones were seen.
    for name in [
        "other.skel",
        "app.ini.swp",
        "app.ini~",
        "README",
        ".hidden.ini.tmp",
    ] {
        emperor.write(name, broken);
    }
    emperor.write("second.ini", &ini("sleep 1000", &[]));
    emperor.running("second.ini");

    let names: Vec<String> = emperor.stats()["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["first.ini", "second.ini"], "{names:?}");
    assert!(!emperor.log().contains("ERROR"), "{}", emperor.log());
}
