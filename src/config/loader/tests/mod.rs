//! What a config loads to: every format alike, sections, the expansion passes, `set`,
//! includes and `vassals-include`, and errors that name the file and line.

mod limits;

use std::path::{Path, PathBuf};

use crate::config::{load, vassal_env_sets, Config, LoadOptions, Origin};

/// A temporary directory to write configs into.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

fn load_plain(path: &Path) -> Config {
    load(path, &LoadOptions::default()).unwrap()
}

fn value<'a>(cfg: &'a Config, key: &str) -> &'a str {
    &cfg.get(key).unwrap_or_else(|| panic!("no {key}")).value
}

fn values<'a>(cfg: &'a Config, key: &'a str) -> Vec<&'a str> {
    cfg.get_all(key).map(|e| e.value.as_str()).collect()
}

fn load_err(path: &Path, opts: &LoadOptions) -> String {
    load(path, opts).unwrap_err().to_string()
}

#[test]
fn every_format_loads_the_same_options() {
    let dir = Dir::new();
    let files = [
        dir.write(
            "a.ini",
            "[uwsgi]\nsocket = /tmp/%n.sock\nmaster = true\nenv = A=1\nenv = B=2\n",
        ),
        dir.write(
            "a.json",
            r#"{"uwsgi": {"socket": "/tmp/%n.sock", "master": true, "env": ["A=1", "B=2"]}}"#,
        ),
        dir.write(
            "a.yaml",
            "uwsgi:\n  socket: /tmp/%n.sock\n  master: true\n  env:\n    - A=1\n    - B=2\n",
        ),
        dir.write(
            "a.xml",
            "<uwsgi><socket>/tmp/%n.sock</socket><master/><env>A=1</env><env>B=2</env></uwsgi>",
        ),
    ];
    for file in files {
        let cfg = load_plain(&file);
        assert_eq!(value(&cfg, "socket"), "/tmp/a.sock", "{}", file.display());
        assert!(cfg.get_bool("master"), "{}", file.display());
        assert_eq!(values(&cfg, "env"), ["A=1", "B=2"], "{}", file.display());
        assert_eq!(cfg.path, file);
    }
}

#[test]
fn section_suffix_picks_another_section() {
    let dir = Dir::new();
    let file = dir.write("a.ini", "[uwsgi]\nx = 1\n[prod]\nx = 2\nwhere = %x\n");
    let cfg = load_plain(&PathBuf::from(format!("{}:prod", file.display())));
    assert_eq!(value(&cfg, "x"), "2");
    assert_eq!(value(&cfg, "where"), "prod");
    assert_eq!(cfg.path, file);
    let err = load_err(
        &PathBuf::from(format!("{}:staging", file.display())),
        &LoadOptions::default(),
    );
    assert!(
        err.contains("a.ini: section \"staging\" not found"),
        "{err}"
    );
}

#[test]
fn entries_remember_file_and_line() {
    let dir = Dir::new();
    let file = dir.write("a.ini", "[uwsgi]\n\nsocket = x\n");
    let entry = load_plain(&file).get("socket").unwrap().clone();
    assert_eq!(
        entry.origin,
        Origin {
            file,
            line: Some(3)
        }
    );
}

#[test]
fn placeholders_use_the_first_occurrence() {
    let dir = Dir::new();
    let file = dir.write(
        "a.ini",
        "[uwsgi]\nbase = 8000\nbase = 9000\nhttp = :%(base)\nnext = %(base + 1)\nmy_key = v\ndash = %(my-key)\n",
    );
    let cfg = load_plain(&file);
    assert_eq!(value(&cfg, "http"), ":8000");
    assert_eq!(value(&cfg, "next"), "8001");
    assert_eq!(
        value(&cfg, "dash"),
        "v",
        "placeholder names follow the _/- rule"
    );
}

#[test]
fn undefined_placeholder_error_names_file_line_and_option() {
    let dir = Dir::new();
    let file = dir.write("app.ini", "[uwsgi]\nmaster = 1\n\nsocket = %(nope)\n");
    let err = load_err(&file, &LoadOptions::default());
    assert_eq!(
        err,
        format!(
            "{}:4: option \"socket\": placeholder %(nope) is not defined",
            file.display()
        )
    );
}

#[test]
fn environment_and_file_contents() {
    let dir = Dir::new();
    dir.write("conf/secret.txt", "hunter2\n");
    let file = dir.write(
        "conf/a.ini",
        "[uwsgi]\npath = $(PATH)\nhome = $(EMPEROR_TEST_SURELY_UNSET:-/srv)\nnone = [$(EMPEROR_TEST_SURELY_UNSET)]\npw = @(secret.txt)\n",
    );
    let cfg = load_plain(&file);
    assert_eq!(value(&cfg, "path"), std::env::var("PATH").unwrap());
    assert_eq!(value(&cfg, "home"), "/srv");
    assert_eq!(value(&cfg, "none"), "[]");
    assert_eq!(value(&cfg, "pw"), "hunter2");
}

#[test]
fn passes_run_magic_then_env_then_file_then_placeholders() {
    let dir = Dir::new();
    dir.write("a.name", "%(greeting)");
    let file = dir.write("a.ini", "[uwsgi]\ngreeting = hi\nmsg = @(%n.name) 100%%\n");
    assert_eq!(value(&load_plain(&file), "msg"), "hi 100%");
}

#[test]
fn missing_at_file_is_an_option_error() {
    let dir = Dir::new();
    let file = dir.write("a.ini", "[uwsgi]\npw = @(nope.txt)\n");
    let err = load_err(&file, &LoadOptions::default());
    assert!(
        err.starts_with(&format!(
            "{}:2: option \"pw\": cannot read @(nope.txt)",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn set_and_set_placeholder_become_entries() {
    let dir = Dir::new();
    let file = dir.write(
        "a.ini",
        "[uwsgi]\nset = processes=4\nset-ph = app=blog\nset_placeholder = k=v=w\nchdir = /srv/%(app)\n",
    );
    let cfg = load_plain(&file);
    assert_eq!(value(&cfg, "processes"), "4");
    assert_eq!(value(&cfg, "app"), "blog");
    assert_eq!(value(&cfg, "k"), "v=w");
    assert_eq!(value(&cfg, "chdir"), "/srv/blog");
    assert!(cfg.get("set").is_none() && cfg.get("set-ph").is_none());
    assert_eq!(cfg.get("processes").unwrap().origin.line, Some(2));
    let bad = dir.write("b.ini", "[uwsgi]\nset = =x\n");
    assert!(
        load_err(&bad, &LoadOptions::default()).contains(":2: option \"set\": expected KEY=VALUE")
    );
}

#[test]
fn include_is_inlined_and_lowercase_magic_describes_the_included_file() {
    let dir = Dir::new();
    dir.write(
        "common/base.json",
        r#"{"uwsgi": {"mine": "%n", "vassal": "%N", "dir": "%c", "vdir": "%C"}}"#,
    );
    let file = dir.write(
        "apps/blog.ini",
        "[uwsgi]\nfirst = 1\ninclude = ../common/base.json\nlast = %n\n",
    );
    let cfg = load_plain(&file);
    let keys: Vec<&str> = cfg.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["first", "mine", "vassal", "dir", "vdir", "last"]);
    assert_eq!(value(&cfg, "mine"), "base");
    assert_eq!(value(&cfg, "vassal"), "blog");
    assert_eq!(value(&cfg, "dir"), "common");
    assert_eq!(value(&cfg, "vdir"), "apps");
    assert_eq!(value(&cfg, "last"), "blog");
    assert!(cfg
        .get("mine")
        .unwrap()
        .origin
        .file
        .ends_with("common/base.json"));
}

#[test]
fn include_with_section_and_missing_include() {
    let dir = Dir::new();
    dir.write("shared.ini", "[uwsgi]\nx = 1\n[extra]\nx = 2\n");
    let file = dir.write("a.ini", "[uwsgi]\ninclude = shared.ini:extra\n");
    assert_eq!(value(&load_plain(&file), "x"), "2");
    let file = dir.write("b.ini", "[uwsgi]\n\ninclude = nope.ini\n");
    let err = load_err(&file, &LoadOptions::default());
    assert!(
        err.starts_with(&format!(
            "{}:3: option \"include\": cannot read",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn include_loop_is_an_error_naming_the_chain() {
    let dir = Dir::new();
    let a = dir.write("a.ini", "[uwsgi]\ninclude = b.ini\n");
    dir.write("b.ini", "[uwsgi]\ninclude = a.ini\n");
    let err = load_err(&a, &LoadOptions::default());
    assert!(err.starts_with("include loop: "), "{err}");
    assert!(
        err.contains("a.ini -> ") && err.contains("b.ini -> ") && err.ends_with("a.ini"),
        "{err}"
    );
    // The same file twice in a row is not a loop.
    dir.write("c.ini", "[uwsgi]\nc = 1\n");
    let twice = dir.write("d.ini", "[uwsgi]\ninclude = c.ini\ninclude = c.ini\n");
    assert_eq!(values(&load_plain(&twice), "c"), ["1", "1"]);
}

/// The vassal's own file is resolved only once it includes another, and then a loop back to
/// it under its real name is caught at once.
#[test]
fn a_loop_back_to_the_vassals_file_by_its_real_name_is_caught_through_a_symlink() {
    let dir = Dir::new();
    let real = dir.write("real.ini", "[uwsgi]\ninclude = real.ini\n");
    let link = dir.path().join("link.ini");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = load_err(&link, &LoadOptions::default());
    assert_eq!(
        err,
        format!("include loop: {} -> {}", link.display(), real.display())
    );
}

#[test]
fn sets_come_first_and_the_file_overrides_them() {
    let dir = Dir::new();
    let file = dir.write("blog.ini", "[uwsgi]\nprocesses = 2\n");
    let opts = LoadOptions {
        sets: vec![
            ("processes".into(), "8".into()),
            ("socket".into(), "/tmp/%n.sock".into()),
        ],
        includes: vec![],
        environment: None,
    };
    let cfg = load(&file, &opts).unwrap();
    assert_eq!(cfg.entries[0].key, "processes");
    assert_eq!(
        cfg.entries[0].origin,
        Origin {
            file: file.clone(),
            line: None
        }
    );
    assert_eq!(value(&cfg, "processes"), "2");
    assert_eq!(
        value(&cfg, "socket"),
        "/tmp/blog.sock",
        "%n is the vassal, not the emperor"
    );
}

#[test]
fn vassal_env_sets_load_like_sets() {
    let dir = Dir::new();
    let file = dir.write("shop.ini", "[uwsgi]\nmaster = 1\n");
    let env = [("UWSGI_VASSAL_CHMOD_SOCKET".to_string(), "6%k0".to_string())];
    let opts = LoadOptions {
        sets: vassal_env_sets(env),
        includes: vec![],
        environment: None,
    };
    let cfg = load(&file, &opts).unwrap();
    let cpus = std::thread::available_parallelism().unwrap();
    assert_eq!(value(&cfg, "chmod_socket"), format!("6{cpus}0"));
}

#[test]
fn vassals_include_comes_last_with_its_own_lowercase_magic() {
    let dir = Dir::new();
    let defaults = dir.write(
        "defaults/vassal-defaults.ini",
        "[uwsgi]\nsocket = /tmp/%(vassal_name).sock\ntemplate = %n\nvassal = %N\nprocesses = 4\n",
    );
    let file = dir.write(
        "vassals/blog.ini",
        "[uwsgi]\nvassal_name = %n\nprocesses = 2\n",
    );
    let opts = LoadOptions {
        sets: vec![],
        includes: vec![defaults.clone()],
        environment: None,
    };
    let cfg = load(&file, &opts).unwrap();
    assert_eq!(value(&cfg, "socket"), "/tmp/blog.sock");
    assert_eq!(value(&cfg, "template"), "vassal-defaults");
    assert_eq!(value(&cfg, "vassal"), "blog");
    assert_eq!(
        value(&cfg, "processes"),
        "4",
        "included after the file, so it wins"
    );
    assert_eq!(cfg.get("socket").unwrap().origin.file, defaults);
}

#[test]
fn syntax_errors_name_the_file_and_position() {
    let dir = Dir::new();
    let json = dir.write("app.json", "{\"uwsgi\": {\n  \"a\": 1,\n  \"b\" 2\n}}");
    let err = load_err(&json, &LoadOptions::default());
    assert!(
        err.starts_with(&format!("{}:3:7: invalid JSON: ", json.display())),
        "{err}"
    );
    let ini = dir.write("app.ini", "[uwsgi]\nok = 1\n= 2\n");
    let err = load_err(&ini, &LoadOptions::default());
    assert!(
        err.starts_with(&format!("{}:3: invalid ini: ", ini.display())),
        "{err}"
    );
    let missing = dir.write("none.ini", "[other]\n");
    let err = load_err(&missing, &LoadOptions::default());
    assert_eq!(
        err,
        format!("{}: section \"uwsgi\" not found", missing.display())
    );
}

#[test]
fn errors_inside_an_include_name_the_included_file() {
    let dir = Dir::new();
    let inner = dir.write("inner.yml", "uwsgi:\n  a: 1\n  b: \"%(nope)\"\n");
    let file = dir.write("outer.ini", "[uwsgi]\ninclude = inner.yml\n");
    let err = load_err(&file, &LoadOptions::default());
    assert!(
        err.starts_with(&format!("{}:3: option \"b\"", inner.display())),
        "{err}"
    );
}

#[test]
fn file_magic_variables_of_a_real_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = Dir::new();
    let file = dir.write(
        "apps/site.ini",
        "[uwsgi]\nall = %s|%e|%n|%c|%x|%o\npath = %p\ndir = %d\nino = %i\nhash = %j\nfirst = %0\n",
    );
    let cfg = load_plain(&file);
    assert_eq!(
        value(&cfg, "all"),
        format!("site.ini|ini|site|apps|uwsgi|{}", file.display())
    );
    assert_eq!(value(&cfg, "path"), file.display().to_string());
    assert_eq!(
        value(&cfg, "dir"),
        format!("{}/", file.parent().unwrap().display())
    );
    assert_eq!(
        value(&cfg, "ino"),
        std::fs::metadata(&file).unwrap().ino().to_string()
    );
    assert_eq!(value(&cfg, "hash").len(), 8);
    let first = dir.path().components().nth(1).unwrap();
    assert_eq!(value(&cfg, "first"), first.as_os_str().to_str().unwrap());
}
