//! The guest's whole filesystem, packed as one initramfs: busybox and its applets, the emperor
//! and its runtime binary, nginx, uWSGI with its python3 plugin and a few stdlib modules, every
//! library they load, the users a scenario needs, the guest's /init, and the scenario scripts
//! with their fixtures under /vm.

use crate::cpio::Archive;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const BUSYBOX: &str = "/bin/busybox";
const NGINX: &str = "/usr/sbin/nginx";
const NGINX_MIME_TYPES: &str = "/etc/nginx/mime.types";
/// Debian's uwsgi-core (an alternatives symlink on the host; a plain file in the guest).
pub const UWSGI: &str = "/usr/bin/uwsgi";
/// What `plugins = python3` loads. Debian makes it an alternatives symlink to the plugin of one
/// Python version (python311_plugin.so): the guest gets that file and a symlink to it.
pub const UWSGI_PYTHON_PLUGIN: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";
/// The stdlib modules uWSGI's python3 plugin and the scenarios' WSGI apps import from files,
/// found by trial (run the app, add what fails to import): the rest of what they import is
/// frozen into libpython (os, site, codecs, io, abc, stat, posixpath...) or built into it
/// (errno, _thread, posix...). `os.py` is there too as the landmark by which Python finds its
/// stdlib directory; `encodings` needs the codecs of the guest's C locale (ascii) and of UTF-8.
const PYTHON_MODULES: [&str; 13] = [
    "os.py",
    "encodings/__init__.py",
    "encodings/aliases.py",
    "encodings/ascii.py",
    "encodings/utf_8.py",
    // The plugin's start_response imports threading, and threading imports the rest.
    "threading.py",
    "functools.py",
    "collections/__init__.py",
    "keyword.py",
    "operator.py",
    "reprlib.py",
    "types.py",
    "_weakrefset.py",
];

/// Tenants: name, uid (= gid), first subordinate id. Each has 65536 subordinate ids.
pub const TENANTS: [(&str, u32, u32); 3] = [
    ("alice", 2001, 200_000),
    ("bob", 2002, 265_536),
    ("carol", 2003, 331_072),
];

/// Writes the initramfs to `out` (via a temporary file and a rename, so a concurrent test
/// process never boots a half-written archive). `vm_tests_dir` is this crate's directory.
pub fn build(out: &Path, emperor: &Path, vm_tests_dir: &Path) -> Result<(), String> {
    let mut archive = Archive::new();
    add_base_system(&mut archive, vm_tests_dir)?;
    add_busybox(&mut archive)?;
    add_binary(&mut archive, emperor, "/usr/bin/emperor")?;
    // The runtime binary and the escape probe are built next to the emperor (EMPEROR_BIN
    // users build all three).
    for (name, build) in [
        ("emperor-vassal", "-p emperor --bin emperor-vassal"),
        ("jail-probe", "-p jail --bin jail-probe"),
    ] {
        let binary = emperor.with_file_name(name);
        if !binary.is_file() {
            return Err(format!(
                "{}: not built (cargo build --release {build})",
                binary.display()
            ));
        }
        add_binary(&mut archive, &binary, &format!("/usr/bin/{name}"))?;
    }
    add_binary(&mut archive, Path::new(NGINX), NGINX)?;
    add_nginx_files(&mut archive, vm_tests_dir)?;
    add_uwsgi(&mut archive)?;
    add_users(&mut archive);
    add_systemd(&mut archive, vm_tests_dir)?;
    add_tree(
        &mut archive,
        &vm_tests_dir.join("scenarios"),
        "/vm/scenarios",
    )?;
    add_tree(&mut archive, &vm_tests_dir.join("fixtures"), "/vm/fixtures")?;

    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
    let file = fs::File::create(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let mut writer = BufWriter::new(file);
    archive
        .write_newc(&mut writer)
        .and_then(|()| writer.into_inner().map_err(|e| e.into_error())?.sync_all())
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, out).map_err(|e| format!("rename to {}: {e}", out.display()))
}

/// The mount points, /dev/console (the kernel opens it for /init before anything is mounted,
/// so it must exist in the archive), and /init itself.
fn add_base_system(archive: &mut Archive, vm_tests_dir: &Path) -> Result<(), String> {
    for dir in ["/proc", "/sys", "/dev", "/run", "/etc", "/srv", "/usr/sbin"] {
        archive.dir(dir, 0o755, 0, 0);
    }
    archive.symlink("/var/run", "/run");
    archive.dir("/tmp", 0o1777, 0, 0);
    archive.dir("/root", 0o700, 0, 0);
    archive.char_dev("/dev/console", 0o600, 5, 1);
    archive.file("/init", 0o755, read(&vm_tests_dir.join("guest/init.sh"))?);
    archive.file(
        "/etc/hosts",
        0o644,
        "127.0.0.1 localhost guest\n::1 localhost\n",
    );
    archive.file(
        "/etc/nsswitch.conf",
        0o644,
        "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
    );
    Ok(())
}

/// busybox-static, with a symlink in /bin for each applet it lists.
fn add_busybox(archive: &mut Archive) -> Result<(), String> {
    archive.file(BUSYBOX, 0o755, read(Path::new(BUSYBOX))?);
    let list = run(Command::new(BUSYBOX).arg("--list"))?;
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        archive.symlink(&format!("/bin/{applet}"), "busybox");
    }
    Ok(())
}

/// A dynamically linked binary (or shared object) at `guest_path`, and every library `ldd` lists
/// for it at the path `ldd` gives (so the loader finds them in its default directories); returns
/// those paths. A static binary or a script gets no libraries.
fn add_binary(
    archive: &mut Archive,
    host_path: &Path,
    guest_path: &str,
) -> Result<Vec<String>, String> {
    archive.file(guest_path, 0o755, read(host_path)?);
    let Ok(output) = Command::new("ldd").arg(host_path).output() else {
        return Err("ldd not found: cannot list the libraries to pack".into());
    };
    let ldd_output = String::from_utf8_lossy(&output.stdout);
    let libraries = shared_libraries(&ldd_output);
    for &library in &libraries {
        if !archive.contains(library) {
            archive.file(library, 0o755, read(Path::new(library))?);
        }
    }
    Ok(libraries.into_iter().map(str::to_string).collect())
}

/// The absolute paths in `ldd` output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`
/// and the loader's `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
fn shared_libraries(ldd_output: &str) -> Vec<&str> {
    ldd_output
        .lines()
        .filter_map(|line| {
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then_some(path)
        })
        .collect()
}

/// What Debian's nginx opens before and while reading its configuration.
fn add_nginx_files(archive: &mut Archive, vm_tests_dir: &Path) -> Result<(), String> {
    archive.file(NGINX_MIME_TYPES, 0o644, read(Path::new(NGINX_MIME_TYPES))?);
    let conf = read(&vm_tests_dir.join("fixtures/nginx/nginx.conf"))?;
    archive.file("/etc/nginx/nginx.conf", 0o644, conf);
    archive.dir("/var/lib/nginx", 0o755, 0, 0);
    archive.dir("/var/log/nginx", 0o755, 0, 0);
    archive.dir("/var/www", 0o755, 0, 0);
    Ok(())
}

/// uWSGI (Debian's uwsgi-core), the real file behind its python3 plugin with the symlink
/// `plugins = python3` opens, and the stdlib modules of the Python that plugin links
/// (libpython3.11.so.1.0: /usr/lib/python3.11), with an empty lib-dynload so Python finds its
/// exec prefix too.
fn add_uwsgi(archive: &mut Archive) -> Result<(), String> {
    add_binary(archive, Path::new(UWSGI), UWSGI)?;
    let plugin = fs::canonicalize(UWSGI_PYTHON_PLUGIN)
        .map_err(|e| format!("resolve {UWSGI_PYTHON_PLUGIN}: {e}"))?;
    let (Some(plugin_path), Some(plugin_name)) = (
        plugin.to_str(),
        plugin.file_name().and_then(|name| name.to_str()),
    ) else {
        return Err(format!("{}: not a UTF-8 path", plugin.display()));
    };
    let libraries = add_binary(archive, &plugin, plugin_path)?;
    archive.symlink(UWSGI_PYTHON_PLUGIN, plugin_name);
    let python = libraries
        .iter()
        .find_map(|library| python_of(library))
        .ok_or_else(|| format!("{plugin_path} links no libpython3.*"))?;
    let stdlib = format!("/usr/lib/{python}");
    for module in PYTHON_MODULES {
        let path = format!("{stdlib}/{module}");
        archive.file(&path, 0o644, read(Path::new(&path))?);
    }
    archive.dir(&format!("{stdlib}/lib-dynload"), 0o755, 0, 0);
    Ok(())
}

/// `python3.11` for `/lib/x86_64-linux-gnu/libpython3.11.so.1.0`.
fn python_of(library: &str) -> Option<&str> {
    let name = library.rsplit('/').next()?;
    let python = name.strip_prefix("lib")?.split(".so").next()?;
    python.starts_with("python3.").then_some(python)
}

/// systemd's binaries as the host has them.
const SYSTEMD_BINARIES: [&str; 4] = [
    "/lib/systemd/systemd",
    "/lib/systemd/systemd-journald",
    "/usr/bin/systemctl",
    "/usr/bin/journalctl",
];
/// Where systemd looks for the units it ships.
const SYSTEMD_UNIT_DIR: &str = "/usr/lib/systemd/system";
/// The few of the host's units a guest booted by systemd needs: the targets a service with
/// default dependencies (the emperor's unit) is ordered after, and journald's.
const SYSTEMD_UNITS: [&str; 17] = [
    "sysinit.target",
    "basic.target",
    "sockets.target",
    "paths.target",
    "slices.target",
    "timers.target",
    "local-fs-pre.target",
    "local-fs.target",
    "swap.target",
    "network-pre.target",
    "network.target",
    "multi-user.target",
    "shutdown.target",
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
    "systemd-journald-audit.socket",
];

/// What a scenario booted with systemd as PID 1 needs (see guest/init.sh): systemd, journald,
/// systemctl and journalctl with their libraries, the units above, the unit that runs the
/// scenario, and what the emperor ships for systemd under /vm/packaging (its unit and its
/// /etc/emperor/emperor.ini), for the scenario to install as an administrator would.
fn add_systemd(archive: &mut Archive, vm_tests_dir: &Path) -> Result<(), String> {
    for binary in SYSTEMD_BINARIES {
        add_binary(archive, Path::new(binary), binary)?;
    }
    for unit in SYSTEMD_UNITS {
        let path = format!("{SYSTEMD_UNIT_DIR}/{unit}");
        archive.file(&path, 0o644, read(Path::new(&path))?);
    }
    archive.file(
        "/etc/systemd/system/vm-scenario.service",
        0o644,
        read(&vm_tests_dir.join("guest/vm-scenario.service"))?,
    );
    let workspace = vm_tests_dir.parent().unwrap_or(vm_tests_dir);
    for (shipped, name) in [
        ("examples/systemd/emperor.service", "emperor.service"),
        ("packaging/emperor.ini", "emperor.ini"),
    ] {
        let contents = read(&workspace.join(shipped))?;
        archive.file(&format!("/vm/packaging/{name}"), 0o644, contents);
    }
    // The README's example vassals that need nothing busybox lacks.
    for example in ["clock.ini", "worker.yml"] {
        let contents = read(&workspace.join("examples/vassals").join(example))?;
        archive.file(&format!("/vm/packaging/vassals/{example}"), 0o644, contents);
    }
    Ok(())
}

/// root, the accounts nginx may run as, and three tenants with a private home (0700) and
/// subordinate id ranges for user namespaces.
fn add_users(archive: &mut Archive) {
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/bin/sh\n\
         www-data:x:33:33:www-data:/var/www:/bin/false\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    let mut group =
        String::from("root:x:0:\nwww-data:x:33:\nsystemd-journal:x:999:\nnogroup:x:65534:\n");
    let mut shadow = String::from("root:*:19000:0:99999:7:::\n");
    let mut subid = String::new();
    for (name, id, first_sub) in TENANTS {
        passwd.push_str(&format!("{name}:x:{id}:{id}:{name}:/home/{name}:/bin/sh\n"));
        group.push_str(&format!("{name}:x:{id}:\n"));
        shadow.push_str(&format!("{name}:!:19000:0:99999:7:::\n"));
        subid.push_str(&format!("{name}:{first_sub}:65536\n"));
        archive.dir(&format!("/home/{name}"), 0o700, id, id);
    }
    archive.file("/etc/passwd", 0o644, passwd);
    archive.file("/etc/group", 0o644, group);
    archive.file("/etc/shadow", 0o600, shadow);
    archive.file("/etc/subuid", 0o644, subid.clone());
    archive.file("/etc/subgid", 0o644, subid);
}

/// Copies a host directory tree to `guest_dir`, keeping each file's permission bits.
fn add_tree(archive: &mut Archive, host_dir: &Path, guest_dir: &str) -> Result<(), String> {
    archive.dir(guest_dir, 0o755, 0, 0);
    let entries =
        fs::read_dir(host_dir).map_err(|e| format!("read {}: {e}", host_dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", host_dir.display()))?;
        let guest_path = format!("{guest_dir}/{}", entry.file_name().to_string_lossy());
        let meta = entry
            .metadata()
            .map_err(|e| format!("stat {}: {e}", entry.path().display()))?;
        if meta.is_dir() {
            add_tree(archive, &entry.path(), &guest_path)?;
        } else {
            archive.file(
                &guest_path,
                meta.permissions().mode() & 0o777,
                read(&entry.path())?,
            );
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{command:?}: {}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_and_loader_paths_but_not_the_vdso() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f58)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f58)\n";
        assert_eq!(
            shared_libraries(ldd),
            [
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn the_stdlib_of_a_plugin_is_named_by_the_libpython_it_links() {
        assert_eq!(
            python_of("/lib/x86_64-linux-gnu/libpython3.11.so.1.0"),
            Some("python3.11")
        );
        assert_eq!(python_of("/lib/x86_64-linux-gnu/libc.so.6"), None);
        assert_eq!(python_of("/usr/lib/libpython2.7.so.1.0"), None);
    }

    #[test]
    fn a_static_binary_has_no_libraries() {
        assert!(shared_libraries("\tnot a dynamic executable\n").is_empty());
    }
}
