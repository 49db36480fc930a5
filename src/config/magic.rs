//! Magic variables: `%n`, `%d`, `%h`, ... expanded in values as a file is read.
//!
//! Lowercase file variables describe the file being read (an included file describes itself);
//! their uppercase forms (`%N`, `%D`, ...) always describe the vassal's own file. `%%` is a
//! literal `%`, `%(` is left for the placeholder pass, and any other unknown `%X` is dropped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::expand::push_bounded;
use super::limits::{Overrun, MAX_VALUE_BYTES};
use super::source::ConfigName;
use super::ConfigError;

/// The file variables of one config file.
#[derive(Debug, Clone)]
pub(crate) struct FileFacts {
    /// `%o`: the name as given.
    pub given: String,
    /// `%p`: absolute, symlinks not resolved (a symlinked vassal keeps its own name).
    pub absolute: PathBuf,
    /// `%x`
    pub section: String,
    /// `%i`
    pub inode: u64,
}

impl FileFacts {
    pub fn of(name: &ConfigName) -> Result<FileFacts, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: name.path.clone(),
            source,
        };
        let absolute = std::path::absolute(&name.path).map_err(read_error)?;
        let inode = std::fs::metadata(&name.path).map_err(read_error)?.ino();
        Ok(FileFacts {
            given: name.path.display().to_string(),
            absolute,
            section: name.section_name().to_string(),
            inode,
        })
    }

    /// A config that came as text from a monitor: named, but no file (no inode, and the name
    /// is taken as it is, not against the current directory).
    pub fn of_text(name: &ConfigName) -> FileFacts {
        FileFacts {
            given: name.path.display().to_string(),
            absolute: name.path.clone(),
            section: name.section_name().to_string(),
            inode: 0,
        }
    }

    /// The directory holding the file: relative includes and `@(file)` start here.
    pub fn dir(&self) -> &Path {
        self.absolute.parent().unwrap_or(Path::new("/"))
    }

    /// The value of a lowercase file variable, or `None` if `var` is not one.
    fn var(&self, var: char) -> Option<String> {
        let path = &self.absolute;
        let text = |part: Option<&std::ffi::OsStr>| part.map(|p| p.to_string_lossy().into_owned());
        let value = match var {
            'o' => self.given.clone(),
            'p' => path.display().to_string(),
            's' => text(path.file_name()).unwrap_or_default(),
            'd' => self.dir_with_slash(),
            'e' => text(path.extension()).unwrap_or_default(),
            'n' => text(path.file_stem()).unwrap_or_default(),
            'c' => text(self.dir().file_name()).unwrap_or_default(),
            'x' => self.section.clone(),
            'i' => self.inode.to_string(),
            'j' => format!("{:08x}", djb33x(path.as_os_str().as_encoded_bytes())),
            '0'..='9' => self.dir_component(var as usize - '0' as usize),
            _ => return None,
        };
        Some(value)
    }

    fn dir_with_slash(&self) -> String {
        let dir = self.dir().display().to_string();
        if dir.ends_with('/') {
            dir
        } else {
            dir + "/"
        }
    }

    /// `%0`..`%9`: the n-th component of the directory (`/opt/apps/` -> `opt`, `apps`).
    fn dir_component(&self, index: usize) -> String {
        self.dir_with_slash()
            .split('/')
            .filter(|part| !part.is_empty())
            .nth(index)
            .unwrap_or_default()
            .to_string()
    }
}

/// uWSGI's hash for `%j`: djb2 with xor, over C `char`s (so bytes >= 0x80 are sign-extended).
fn djb33x(bytes: &[u8]) -> u32 {
    bytes.iter().fold(5381u32, |hash, &byte| {
        (hash << 5).wrapping_add(hash) ^ (byte as i8 as i32 as u32)
    })
}

/// Variables that do not depend on the file: the time is taken once per load, the rest (a
/// passwd and group lookup, the cgroup's CPU quota, the hostname...) only when a file uses one,
/// so loading a config that uses none costs the emperor's spawn path nothing.
#[derive(Debug, Clone)]
pub(crate) struct Startup {
    unix_micros: u128,
    facts: std::cell::OnceCell<HostFacts>,
}

#[derive(Debug, Clone)]
struct HostFacts {
    cwd: String,
    hostname: String,
    cpus: usize,
    uid: u32,
    username: String,
    gid: u32,
    groupname: String,
    binary: String,
}

impl HostFacts {
    fn gather() -> HostFacts {
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        HostFacts {
            cwd: std::env::current_dir()
                .map_or_else(|_| String::new(), |d| d.display().to_string()),
            hostname: nix::unistd::gethostname()
                .map_or_else(|_| String::new(), |h| h.to_string_lossy().into_owned()),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            uid: uid.as_raw(),
            username: nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default(),
            gid: gid.as_raw(),
            groupname: nix::unistd::Group::from_gid(gid)
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_default(),
            binary: std::env::current_exe()
                .map_or_else(|_| String::new(), |b| b.display().to_string()),
        }
    }
}

impl Startup {
    pub fn now() -> Startup {
        let unix_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros());
        Startup {
            unix_micros,
            facts: std::cell::OnceCell::new(),
        }
    }

    fn facts(&self) -> &HostFacts {
        self.facts.get_or_init(HostFacts::gather)
    }

    fn var(&self, var: char) -> Option<String> {
        let value = match var {
            'v' => self.facts().cwd.clone(),
            'V' => env!("CARGO_PKG_VERSION").to_string(),
            'h' => self.facts().hostname.clone(),
            't' => (self.unix_micros / 1_000_000).to_string(),
            'T' => self.unix_micros.to_string(),
            'k' => self.facts().cpus.to_string(),
            'u' => self.facts().uid.to_string(),
            'U' => self.facts().username.clone(),
            'g' => self.facts().gid.to_string(),
            'G' => self.facts().groupname.clone(),
            'b' => self.facts().binary.clone(),
            '[' => "\x1b".to_string(),
            _ => return None,
        };
        Some(value)
    }
}

/// Everything a magic variable can refer to while one file is read.
pub(crate) struct MagicScope<'a> {
    pub startup: &'a Startup,
    /// The file being read (lowercase variables).
    pub file: &'a FileFacts,
    /// The vassal's own file (uppercase variables).
    pub vassal: &'a FileFacts,
}

/// Uppercase forms of the file variables; the others are not file variables when uppercase.
const VASSAL_VARS: &str = "OPSDENCXIJ";

impl MagicScope<'_> {
    fn var(&self, var: char) -> Option<String> {
        if let Some(value) = self.startup.var(var) {
            return Some(value);
        }
        if VASSAL_VARS.contains(var) {
            return self.vassal.var(var.to_ascii_lowercase());
        }
        self.file.var(var)
    }

    /// `text` with its magic variables replaced; refused before it would grow past
    /// [`MAX_VALUE_BYTES`](super::limits::MAX_VALUE_BYTES) (`%p` is short to write and long
    /// to expand).
    pub fn expand(&self, text: &str) -> Result<String, Overrun> {
        let mut out = String::with_capacity(text.len().min(MAX_VALUE_BYTES));
        let mut chars = text.char_indices().peekable();
        let mut literal_from = 0;
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                continue;
            }
            let replacement = match chars.peek().map(|&(_, next)| next) {
                None | Some('(') => continue,
                Some('%') => "%".to_string(),
                Some(var) => self.var(var).unwrap_or_default(),
            };
            push_bounded(&mut out, &text[literal_from..at])?;
            push_bounded(&mut out, &replacement)?;
            chars.next();
            literal_from = chars.peek().map_or(text.len(), |&(next, _)| next);
        }
        push_bounded(&mut out, &text[literal_from..])?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(path: &str, section: &str) -> FileFacts {
        FileFacts {
            given: path.to_string(),
            absolute: PathBuf::from(path),
            section: section.to_string(),
            inode: 42,
        }
    }

    fn try_expand(text: &str) -> Result<String, Overrun> {
        let startup = Startup::now();
        let file = facts("/etc/inc/common.ini", "uwsgi");
        let vassal = facts("/opt/apps/blog.yaml", "prod");
        MagicScope {
            startup: &startup,
            file: &file,
            vassal: &vassal,
        }
        .expand(text)
    }

    fn expand(text: &str) -> String {
        try_expand(text).unwrap()
    }

    #[test]
    fn expansion_is_refused_past_the_value_limit() {
        // %p is "/etc/inc/common.ini", 19 bytes.
        let fits = MAX_VALUE_BYTES / 19;
        assert_eq!(expand(&"%p".repeat(fits)).len(), fits * 19);
        assert_eq!(try_expand(&"%p".repeat(fits + 1)), Err(Overrun::Value));
        assert_eq!(
            try_expand(&"x".repeat(MAX_VALUE_BYTES + 1)),
            Err(Overrun::Value)
        );
    }

    #[test]
    fn lowercase_file_variables_describe_the_file_being_read() {
        assert_eq!(
            expand("%o|%p|%s|%d|%e|%n|%c|%x|%i"),
            "/etc/inc/common.ini|/etc/inc/common.ini|common.ini|/etc/inc/|ini|common|inc|uwsgi|42"
        );
        assert_eq!(expand("%0-%1-%2"), "etc-inc-");
    }

    #[test]
    fn uppercase_file_variables_describe_the_vassal() {
        assert_eq!(
            expand("%O|%P|%S|%D|%E|%N|%C|%X|%I"),
            "/opt/apps/blog.yaml|/opt/apps/blog.yaml|blog.yaml|/opt/apps/|yaml|blog|apps|prod|42"
        );
        assert_eq!(
            expand("%J"),
            format!("{:08x}", djb33x(b"/opt/apps/blog.yaml"))
        );
    }

    #[test]
    fn djb33x_matches_uwsgi() {
        // (5381 * 33) ^ 'a' = 177573 ^ 97
        assert_eq!(djb33x(b"a"), 177604);
        assert_eq!(expand("%j").len(), 8);
        // Bytes above 0x7f are sign-extended like a C char.
        assert_eq!(djb33x(&[0xff]), (5381u32 * 33) ^ 0xffff_ffff);
    }

    #[test]
    fn process_variables() {
        let startup = Startup::now();
        assert!(
            startup.facts.get().is_none(),
            "host facts are gathered only when used"
        );
        let startup = startup.facts();
        assert_eq!(expand("%V"), env!("CARGO_PKG_VERSION"));
        assert_eq!(
            expand("%v"),
            std::env::current_dir().unwrap().display().to_string()
        );
        assert_eq!(expand("%u"), nix::unistd::getuid().to_string());
        assert_eq!(expand("%g"), nix::unistd::getgid().to_string());
        assert_eq!(expand("%U"), startup.username);
        assert_eq!(expand("%G"), startup.groupname);
        assert_eq!(expand("%h"), startup.hostname);
        assert!(!startup.hostname.is_empty());
        assert_eq!(expand("%k"), startup.cpus.to_string());
        assert_eq!(
            expand("%b"),
            std::env::current_exe().unwrap().display().to_string()
        );
        assert_eq!(expand("%["), "\x1b");
        let secs: u64 = expand("%t").parse().unwrap();
        let micros: u128 = expand("%T").parse().unwrap();
        assert!(secs > 1_600_000_000 && micros / 1_000_000 >= u128::from(secs) - 1);
    }

    #[test]
    fn percent_escapes_unknowns_and_placeholders() {
        assert_eq!(expand("100%%"), "100%");
        assert_eq!(expand("a%Zb%qc"), "abc");
        assert_eq!(expand("%(name) %n"), "%(name) common");
        assert_eq!(expand("end%"), "end%");
    }
}
