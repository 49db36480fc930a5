//! A config without a binary patch is a uWSGI application: its runtime runs the uWSGI binary
//! in the jail and hands it the config over uWSGI's own config channel
//! (`UWSGI_EMPEROR_FD_CONFIG`, `--ini emperor://NAME`), resolved by us (magic variables,
//! placeholders, includes, `vassal-set`) and without what the jail already did.

use super::SocketSpec;
use crate::config::{normalize_key, Config, Entry};
use std::path::{Path, PathBuf};

/// uWSGI's config channel: the runtime writes framed configs on its end (named by this
/// variable in the payload), uWSGI reads one at each start and after each reload re-exec.
pub const ENV_CONFIG_FD: &str = "UWSGI_EMPEROR_FD_CONFIG";

/// The uWSGI binary looked up when `--binary-path` names none (uWSGI's own default).
pub const DEFAULT_BINARY: &str = "uwsgi";

/// What provides the binary, for the error that says it is missing.
const PACKAGE_HINT: &str =
    "install it (Debian: apt-get install uwsgi-core and the plugins the apps name, e.g. \
     uwsgi-plugin-python3) or name it with --binary-path";

/// uWSGI's exit status when `need-app` found no app (UWSGI_FAILED_APP_CODE); seed 000's
/// "exit(1)" is uWSGI 1.9's.
pub const EXIT_FAILED_APP: i32 = 22;

/// The largest config the channel carries: its header holds the size in 16 bits.
pub const MAX_CONFIG_BYTES: usize = u16::MAX as usize;

/// Options the jail has already applied (or the runtime does itself): uWSGI would redo
/// them inside the jail, or fail them (a uid change without the capability).
const APPLIED_BY_THE_JAIL: [&str; 27] = [
    "uid",
    "gid",
    "cap",
    "unshare",
    "chroot",
    "pivot-root",
    "hostname",
    "exec-as-root",
    "exec-as-user",
    "bind-mount",
    "bind-mount-ro",
    "tmpfs",
    "seccomp",
    "limit-as",
    "limit-nproc",
    "limit-core",
    "limit-fsize",
    "max-fd",
    "memory-max",
    "cpu-max",
    "cpu-weight",
    "pids-max",
    "fallback-config",
    "ready-check",
    "loyal-after",
    "stop-signal",
    "emperor-use-clone",
];

/// Sockets the emperor holds (handed down): uWSGI gets them as `socket = fd://N`.
const HELD_SOCKETS: [&str; 2] = [super::ON_DEMAND_OPTION, super::POOL_OPTION];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UwsgiError {
    #[error("the uWSGI binary {tried:?} {reason}: {PACKAGE_HINT}")]
    NoBinary { tried: String, reason: String },
    #[error("{place}: option \"{key}\": a value over several lines cannot be given to uWSGI")]
    MultiLineValue { place: String, key: String },
    #[error(
        "{}: the resolved config is {size} bytes, over the {MAX_CONFIG_BYTES} bytes uWSGI's \
         config channel carries (it is never truncated): move options into files the app reads",
        file.display()
    )]
    TooLarge { file: PathBuf, size: usize },
}

/// The uWSGI binary: `asked` (an emperor's or vassal's `--binary-path`), else `uwsgi` on
/// `path`; it must be an executable file.
pub fn find_binary(asked: Option<&Path>, path: &str) -> Result<PathBuf, UwsgiError> {
    let tried = asked.map_or(DEFAULT_BINARY.to_string(), |p| p.display().to_string());
    let missing = |reason: &str| UwsgiError::NoBinary {
        tried: tried.clone(),
        reason: reason.to_string(),
    };
    let found = match asked {
        Some(path) => path.to_path_buf(),
        None => jail::launch::find_program(DEFAULT_BINARY, path)
            .ok_or_else(|| missing(&format!("was not found on PATH={path}")))?,
    };
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&found) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(found),
        Ok(_) => Err(missing("is not an executable file")),
        Err(e) => Err(missing(&format!("cannot be used: {e}"))),
    }
}

/// The arguments uWSGI starts with: its config comes from the channel, as INI.
pub fn argv(binary: &Path, config: &Path) -> Vec<String> {
    let name = config.file_name().map_or_else(
        || config.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    vec![
        binary.display().to_string(),
        "--ini".into(),
        format!("emperor://{name}"),
    ]
}

/// The config uWSGI gets: every resolved option in order, as INI, but those the jail applied;
/// a socket the runtime bound becomes `fd://N` (its place in the payload's fd table, from
/// `first_fd` in `sockets` order).
pub fn render(
    config: &Config,
    sockets: &[SocketSpec],
    first_fd: i32,
) -> Result<String, UwsgiError> {
    let mut text = String::from("[uwsgi]\n");
    for entry in &config.entries {
        let key = normalize_key(&entry.key);
        if APPLIED_BY_THE_JAIL.contains(&key.as_str()) {
            continue;
        }
        let fd = sockets
            .iter()
            .position(|s| {
                s.place == entry.origin.to_string()
                    && s.value == entry.value
                    && normalize_key(&s.option) == key
            })
            .map(|at| first_fd + at as i32);
        let (key, value) = match fd {
            Some(fd) if HELD_SOCKETS.contains(&key.as_str()) => {
                ("socket".to_string(), format!("fd://{fd}"))
            }
            Some(fd) => (entry.key.clone(), format!("fd://{fd}")),
            None if HELD_SOCKETS.contains(&key.as_str()) => continue,
            None => (entry.key.clone(), entry.value.clone()),
        };
        line(&mut text, entry, &key, &value)?;
    }
    if text.len() > MAX_CONFIG_BYTES {
        return Err(UwsgiError::TooLarge {
            file: config.path.clone(),
            size: text.len(),
        });
    }
    Ok(text)
}

/// `key = value`, with `%` doubled: uWSGI expands magic variables again in what it reads,
/// and the value is already expanded.
fn line(text: &mut String, entry: &Entry, key: &str, value: &str) -> Result<(), UwsgiError> {
    if value.contains(['\n', '\r']) || key.contains(['\n', '\r']) {
        return Err(UwsgiError::MultiLineValue {
            place: entry.origin.to_string(),
            key: entry.key.clone(),
        });
    }
    text.push_str(key);
    text.push_str(" = ");
    text.push_str(&value.replace('%', "%%"));
    text.push('\n');
    Ok(())
}

/// One config on the channel: uWSGI's 4-byte header (modifier1 115, the size as a
/// little-endian u16, modifier2 0), then the text.
pub fn frame(text: &str) -> Vec<u8> {
    let size = u16::try_from(text.len()).expect("render() keeps a config within 64 KiB");
    let mut frame = Vec::with_capacity(4 + text.len());
    frame.push(115);
    frame.extend_from_slice(&size.to_le_bytes());
    frame.push(0);
    frame.extend_from_slice(text.as_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn config(lines: &[(&str, &str)]) -> Config {
        Config {
            path: PathBuf::from("/v/app.ini"),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, (k, v))| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                    origin: Origin {
                        file: PathBuf::from("/v/app.ini"),
                        line: Some(i + 2),
                    },
                })
                .collect(),
        }
    }

    fn spec(option: &str, value: &str, line: usize) -> SocketSpec {
        SocketSpec {
            place: format!("/v/app.ini:{line}"),
            option: option.into(),
            value: value.into(),
            address: super::super::parse_socket_address(value).unwrap(),
        }
    }

    #[test]
    fn jail_options_are_left_out_and_the_rest_kept_in_order() {
        let c = config(&[
            ("plugins", "python3"),
            ("uid", "1000"),
            ("wsgi-file", "app.py"),
            ("exec-as-root", "hostname x"),
            ("env", "A=1"),
            ("unshare", "fs"),
            ("env", "B=2"),
        ]);
        assert_eq!(
            render(&c, &[], 3).unwrap(),
            "[uwsgi]\nplugins = python3\nwsgi-file = app.py\nenv = A=1\nenv = B=2\n"
        );
    }

    #[test]
    fn bound_sockets_become_their_fds_and_held_ones_plain_sockets() {
        let c = config(&[
            ("on-demand-socket", "127.0.0.1:9000"),
            ("http-socket", "127.0.0.1:8080"),
            ("socket", "/run/app.sock"),
        ]);
        let sockets = [
            spec("on-demand-socket", "127.0.0.1:9000", 2),
            spec("http-socket", "127.0.0.1:8080", 3),
            spec("socket", "/run/app.sock", 4),
        ];
        assert_eq!(
            render(&c, &sockets, 3).unwrap(),
            "[uwsgi]\nsocket = fd://3\nhttp-socket = fd://4\nsocket = fd://5\n"
        );
    }

    #[test]
    fn percent_signs_survive_uwsgis_second_expansion() {
        let c = config(&[("log-format", "%(addr) 100%")]);
        assert_eq!(
            render(&c, &[], 3).unwrap(),
            "[uwsgi]\nlog-format = %%(addr) 100%%\n"
        );
    }

    #[test]
    fn a_value_over_lines_is_refused_with_its_place() {
        let c = config(&[("route", "a\nb")]);
        let e = render(&c, &[], 3).unwrap_err().to_string();
        assert!(e.contains("/v/app.ini:2") && e.contains("\"route\""), "{e}");
    }

    #[test]
    fn a_config_over_the_channels_frame_is_refused_never_cut() {
        let long = "x".repeat(40_000);
        let c = config(&[("env", &long), ("env", &long)]);
        let e = render(&c, &[], 3).unwrap_err();
        assert!(matches!(e, UwsgiError::TooLarge { size, .. } if size > MAX_CONFIG_BYTES));
        let fits = config(&[("env", &long)]);
        let text = render(&fits, &[], 3).unwrap();
        let framed = frame(&text);
        assert_eq!(framed[0], 115);
        assert_eq!(
            u16::from_le_bytes([framed[1], framed[2]]) as usize,
            text.len()
        );
        assert_eq!(framed[3], 0);
        assert_eq!(&framed[4..], text.as_bytes());
    }

    #[test]
    fn the_binary_is_found_on_path_or_named_and_a_missing_one_names_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let e = find_binary(None, dir.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"uwsgi\"") && e.contains("uwsgi-core"), "{e}");
        let named = dir.path().join("my-uwsgi");
        let e = find_binary(Some(&named), "/bin").unwrap_err().to_string();
        assert!(e.contains("my-uwsgi") && e.contains("--binary-path"), "{e}");
        std::fs::write(&named, "#!/bin/sh\n").unwrap();
        let e = find_binary(Some(&named), "/bin").unwrap_err().to_string();
        assert!(e.contains("not an executable file"), "{e}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_binary(Some(&named), "/bin").unwrap(), named);
        std::fs::copy(&named, dir.path().join("uwsgi")).unwrap();
        assert_eq!(
            find_binary(None, dir.path().to_str().unwrap()).unwrap(),
            dir.path().join("uwsgi")
        );
    }

    #[test]
    fn uwsgi_reads_its_config_from_the_channel_as_ini() {
        assert_eq!(
            argv(Path::new("/usr/bin/uwsgi"), Path::new("/etc/v/app.yaml")),
            ["/usr/bin/uwsgi", "--ini", "emperor://app.yaml"]
        );
    }
}
