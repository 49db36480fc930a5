//! Turns raw entries into the final, expanded entry list: expansion passes, `set`/`set-ph`,
//! inline `include`, loop detection and the placeholder table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::expand::{self, ExpandError};
use super::limits::{Budget, Overrun, MAX_INCLUDE_NESTING};
use super::magic::{FileFacts, MagicScope, Startup};
use super::source::{parse_raw, read_config, ConfigName, RawEntry};
use super::{normalize_key, ConfigError, Entry, Origin};

/// A file being read, remembered to catch include loops.
struct OpenFile {
    canonical: PathBuf,
    section: String,
    shown: String,
}

/// One file being read: where its entries say they come from and what `%n` etc. mean in it.
struct FileScope<'a> {
    path: &'a Path,
    facts: &'a FileFacts,
}

pub(crate) struct Loader {
    startup: Startup,
    vassal_path: PathBuf,
    vassal: FileFacts,
    entries: Vec<Entry>,
    /// First value of every option so far, by normalized key: what `%(name)` sees.
    placeholders: HashMap<String, String>,
    open_files: Vec<OpenFile>,
    /// What the config has read and expanded so far, against `limits`.
    budget: Budget,
    /// What `$(VAR)` sees (see `LoadOptions::environment`).
    pub environment: Option<Vec<(String, String)>>,
}

impl Loader {
    pub fn new(vassal: &ConfigName) -> Result<Loader, ConfigError> {
        Ok(Loader::with_facts(vassal, FileFacts::of(vassal)?))
    }

    /// A loader for a config that came as text (see [`FileFacts::of_text`]).
    pub fn for_text(vassal: &ConfigName) -> Loader {
        Loader::with_facts(vassal, FileFacts::of_text(vassal))
    }

    fn with_facts(vassal: &ConfigName, facts: FileFacts) -> Loader {
        Loader {
            startup: Startup::now(),
            vassal_path: vassal.path.clone(),
            vassal: facts,
            entries: Vec::new(),
            placeholders: HashMap::new(),
            open_files: Vec::new(),
            budget: Budget::default(),
            environment: None,
        }
    }

    /// Adds the entries of the vassal's own config, given as text. Its includes are read
    /// from files as usual.
    pub fn read_text(&mut self, name: &ConfigName, text: &str) -> Result<(), ConfigError> {
        let facts = self.vassal.clone();
        self.open_files.push(OpenFile {
            canonical: name.path.clone(),
            section: name.section_name().to_string(),
            shown: name.display(),
        });
        self.add_all(name, &facts, parse_raw(name, text)?)
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// `vassal-set` pairs: read as if they were lines (without numbers) of the vassal's file.
    pub fn apply_sets(&mut self, sets: &[(String, String)]) -> Result<(), ConfigError> {
        let (path, facts) = (self.vassal_path.clone(), self.vassal.clone());
        let scope = FileScope {
            path: &path,
            facts: &facts,
        };
        for (key, value) in sets {
            self.add(RawEntry::new(key, value, None), &scope)?;
        }
        Ok(())
    }

    /// Reads the vassal's own file and adds its entries.
    pub fn read_file(&mut self, name: &ConfigName) -> Result<(), ConfigError> {
        self.read(name, None)
    }

    /// Reads a `vassals-include` file and adds its entries; it counts as an included file.
    pub fn read_vassals_include(&mut self, name: &ConfigName) -> Result<(), ConfigError> {
        let over = |limit| ConfigError::Limit {
            path: name.path.clone(),
            line: None,
            key: None,
            limit,
        };
        self.read(name, Some(&over))
    }

    /// Reads a file and adds its entries. An included file (`over` says how to report its
    /// overrun) is counted before it is opened, and its size before it is parsed.
    fn read(
        &mut self,
        name: &ConfigName,
        over: Option<&dyn Fn(Overrun) -> ConfigError>,
    ) -> Result<(), ConfigError> {
        if let Some(over) = over {
            self.budget.open_file().map_err(over)?;
        }
        let facts = FileFacts::of(name)?;
        self.enter(name)?;
        let text = read_config(name)?;
        if let Some(over) = over {
            self.budget.read(text.len()).map_err(over)?;
        }
        self.add_all(name, &facts, parse_raw(name, &text)?)
    }

    /// The entries of the file on top of `open_files`, which is then closed.
    fn add_all(
        &mut self,
        name: &ConfigName,
        facts: &FileFacts,
        raws: Vec<RawEntry>,
    ) -> Result<(), ConfigError> {
        let scope = FileScope {
            path: &name.path,
            facts,
        };
        for raw in raws {
            self.add(raw, &scope)?;
        }
        self.open_files.pop();
        Ok(())
    }

    /// Marks `name` as being read; an error if it already is (an include loop).
    fn enter(&mut self, name: &ConfigName) -> Result<(), ConfigError> {
        let canonical = std::fs::canonicalize(&name.path).map_err(|source| ConfigError::Read {
            path: name.path.clone(),
            source,
        })?;
        let section = name.section_name().to_string();
        let file = OpenFile {
            canonical,
            section,
            shown: name.display(),
        };
        let is_same =
            |open: &OpenFile| open.canonical == file.canonical && open.section == file.section;
        if self.open_files.iter().any(is_same) {
            let mut chain: Vec<String> = self
                .open_files
                .iter()
                .map(|open| open.shown.clone())
                .collect();
            chain.push(file.shown);
            return Err(ConfigError::IncludeLoop { chain });
        }
        self.open_files.push(file);
        Ok(())
    }

    fn add(&mut self, raw: RawEntry, scope: &FileScope) -> Result<(), ConfigError> {
        let value = self.expand(&raw, scope)?;
        let origin = Origin {
            file: scope.path.to_path_buf(),
            line: raw.line,
        };
        match normalize_key(&raw.key).as_str() {
            "include" => self.include(&value, &raw, scope),
            "set" | "set-placeholder" | "set-ph" => {
                let (key, value) = split_assignment(&value).ok_or_else(|| {
                    bad_option(scope, &raw, format!("expected KEY=VALUE, got \"{value}\""))
                })?;
                self.push(key, value, origin)
                    .map_err(|limit| limit_error(scope, &raw, limit))
            }
            _ => self
                .push(&raw.key, &value, origin)
                .map_err(|limit| limit_error(scope, &raw, limit)),
        }
    }

    /// Magic variables, then `$(...)`, `@(...)`, `%(...)`.
    /// Each pass is bounded by the limit of one value (see `limits`).
    fn expand(&mut self, raw: &RawEntry, scope: &FileScope) -> Result<String, ConfigError> {
        let error = |error| match error {
            ExpandError::Failed(message) => bad_option(scope, raw, message),
            ExpandError::Over(limit) => limit_error(scope, raw, limit),
        };
        let magic = MagicScope {
            startup: &self.startup,
            file: scope.facts,
            vassal: &self.vassal,
        };
        let text = magic
            .expand(&raw.value)
            .map_err(|limit| limit_error(scope, raw, limit))?;
        let text = match &self.environment {
            Some(env) => expand::environment(&text, |name| {
                env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            }),
            None => expand::environment(&text, |name| std::env::var(name).ok()),
        }
        .map_err(error)?;
        let text =
            expand::file_contents(&text, scope.facts.dir(), &mut self.budget).map_err(error)?;
        expand::placeholders(&text, |name| {
            self.placeholders.get(&normalize_key(name)).cloned()
        })
        .map_err(error)
    }

    /// Inlines another file here. Problems opening it are reported at the `include` line.
    fn include(
        &mut self,
        target: &str,
        raw: &RawEntry,
        scope: &FileScope,
    ) -> Result<(), ConfigError> {
        // open_files holds the vassal's own file and the includes around this one.
        if self.open_files.len() > MAX_INCLUDE_NESTING {
            return Err(limit_error(scope, raw, Overrun::IncludeNesting));
        }
        let name = ConfigName::parse(&scope.facts.dir().join(target));
        let over = |limit| limit_error(scope, raw, limit);
        self.read(&name, Some(&over)).map_err(|error| match error {
            ConfigError::Read { .. }
            | ConfigError::UnknownFormat { .. }
            | ConfigError::MissingSection { .. } => bad_option(scope, raw, error.to_string()),
            other => other,
        })
    }

    /// Keeps one expanded option, if the config's expanded size allows it.
    fn push(&mut self, key: &str, value: &str, origin: Origin) -> Result<(), Overrun> {
        self.budget.keep(key.len() + value.len())?;
        self.placeholders
            .entry(normalize_key(key))
            .or_insert_with(|| value.to_string());
        self.entries.push(Entry {
            key: key.to_string(),
            value: value.to_string(),
            origin,
        });
        Ok(())
    }
}

/// `K=V` -> (`K`, `V`); `K` alone -> (`K`, ""). `None` when the key is empty.
fn split_assignment(text: &str) -> Option<(&str, &str)> {
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    let key = key.trim();
    (!key.is_empty()).then_some((key, value))
}

fn limit_error(scope: &FileScope, raw: &RawEntry, limit: Overrun) -> ConfigError {
    ConfigError::Limit {
        path: scope.path.to_path_buf(),
        line: raw.line,
        key: Some(raw.key.clone()),
        limit,
    }
}

fn bad_option(scope: &FileScope, raw: &RawEntry, message: String) -> ConfigError {
    ConfigError::BadOption {
        path: scope.path.to_path_buf(),
        line: raw.line,
        key: raw.key.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{load, Config, LoadOptions};
    use super::*;

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
        assert!(load_err(&bad, &LoadOptions::default())
            .contains(":2: option \"set\": expected KEY=VALUE"));
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
            sets: super::super::vassal_env_sets(env),
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
        let file = dir.write("apps/site.ini", "[uwsgi]\nall = %s|%e|%n|%c|%x|%o\npath = %p\ndir = %d\nino = %i\nhash = %j\nfirst = %0\n");
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

    #[test]
    fn the_placeholder_bomb_is_refused_at_the_value_limit() {
        let dir = Dir::new();
        let mut text = String::from("[uwsgi]\na0 = 0123456789\n");
        for level in 1..=12 {
            text.push_str(&format!(
                "a{level} = {}\n",
                format!("%(a{})", level - 1).repeat(10)
            ));
        }
        let file = dir.write("bomb.ini", &text);
        let err = load_err(&file, &LoadOptions::default());
        assert_eq!(
            err,
            format!(
                "{}:6: option \"a4\": expands to more than 65536 bytes (limit of one value)",
                file.display()
            )
        );
    }

    /// `[uwsgi]`, `big` of `size` bytes, then `copies` options of `%(big)`.
    fn copies_of_a_big_value(size: usize, copies: usize) -> String {
        format!(
            "[uwsgi]\nbig = {}\n{}",
            "x".repeat(size),
            "copy = %(big)\n".repeat(copies)
        )
    }

    #[test]
    fn the_whole_config_is_refused_past_the_expanded_limit() {
        use super::super::limits::{MAX_EXPANDED_BYTES, MAX_VALUE_BYTES};
        let dir = Dir::new();
        // Each option costs its key and value; `big` costs 3 + size, each copy 4 + size.
        let size = MAX_VALUE_BYTES - 4;
        let copies = (MAX_EXPANDED_BYTES - (3 + size)) / MAX_VALUE_BYTES;
        let fits = dir.write("fits.ini", &copies_of_a_big_value(size, copies));
        assert_eq!(load_plain(&fits).get_all("copy").count(), copies);
        let over = dir.write("over.ini", &copies_of_a_big_value(size, copies + 1));
        let err = load_err(&over, &LoadOptions::default());
        assert!(
            err.ends_with(&format!(
                ":{}: option \"copy\": the config expands to more than {MAX_EXPANDED_BYTES} bytes (limit of one config)",
                copies + 3
            )),
            "{err}"
        );
    }

    #[test]
    fn includes_are_counted_up_to_the_limit() {
        use super::super::limits::MAX_INCLUDED_FILES;
        let dir = Dir::new();
        dir.write("one.ini", "[uwsgi]\none = 1\n");
        let includes = |n| format!("[uwsgi]\n{}", "include = one.ini\n".repeat(n));
        let fits = dir.write("fits.ini", &includes(MAX_INCLUDED_FILES));
        assert_eq!(load_plain(&fits).get_all("one").count(), MAX_INCLUDED_FILES);
        let over = dir.write("over.ini", &includes(MAX_INCLUDED_FILES + 1));
        assert_eq!(
            load_err(&over, &LoadOptions::default()),
            format!(
                "{}:{}: option \"include\": reads more than 64 files (limit of includes and @(file) of one config)",
                over.display(),
                MAX_INCLUDED_FILES + 2
            )
        );
        // vassals-include files count too, after the config's own.
        let opts = LoadOptions {
            includes: vec![dir.path().join("one.ini")],
            ..LoadOptions::default()
        };
        let err = load(&fits, &opts).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "one.ini: reads more than 64 files (limit of includes and @(file) of one config)"
            ),
            "{err}"
        );
    }

    #[test]
    fn included_bytes_are_counted_before_they_are_parsed() {
        use super::super::limits::MAX_INCLUDED_BYTES;
        let dir = Dir::new();
        // A comment line: bytes to read, nothing to keep.
        let third = MAX_INCLUDED_BYTES / 3;
        dir.write(
            "third.ini",
            &format!("[uwsgi]\n#{}\n", "x".repeat(third - 10)),
        );
        let rest = MAX_INCLUDED_BYTES - 3 * third;
        let file = dir.write(
            "app.ini",
            "[uwsgi]\ninclude = third.ini\ninclude = third.ini\ninclude = third.ini\nlast = @(rest.txt)\n",
        );
        dir.write("rest.txt", &"z".repeat(rest));
        assert_eq!(load_plain(&file).get("last").unwrap().value.len(), rest);
        dir.write("rest.txt", &"z".repeat(rest + 1));
        assert_eq!(
            load_err(&file, &LoadOptions::default()),
            format!(
                "{}:5: option \"last\": reads more than {MAX_INCLUDED_BYTES} bytes of files (limit of includes and @(file) of one config)",
                file.display()
            )
        );
    }

    #[test]
    fn nesting_too_deep_names_the_file_and_line() {
        let dir = Dir::new();
        let file = dir.write("deep.xml", &format!("<uwsgi>\n{}", "<a>".repeat(13_000)));
        assert_eq!(
            load_err(&file, &LoadOptions::default()),
            format!("{}:2: nesting deeper than 64 levels", file.display())
        );
    }

    #[test]
    fn includes_nest_up_to_the_limit() {
        let dir = Dir::new();
        // level0.ini includes level1.ini ... up to level{n}.ini, which includes nothing.
        let chain = |n: usize| {
            for level in 0..n {
                dir.write(
                    &format!("level{level}.ini"),
                    &format!("[uwsgi]\ninclude = level{}.ini\n", level + 1),
                );
            }
            dir.write(&format!("level{n}.ini"), "[uwsgi]\nlast = 1\n");
            dir.path().join("level0.ini")
        };
        assert!(load_plain(&chain(MAX_INCLUDE_NESTING))
            .get("last")
            .is_some());
        let err = load_err(&chain(MAX_INCLUDE_NESTING + 1), &LoadOptions::default());
        assert!(
            err.ends_with(&format!(
                "level{MAX_INCLUDE_NESTING}.ini:2: option \"include\": includes nested deeper than 16 levels"
            )),
            "{err}"
        );
    }
}
