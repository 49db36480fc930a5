//! Fuzzing the config language on the stable toolchain (no libFuzzer here): generated hostile
//! shapes (deep nesting, wide fan-out, long values, placeholder chains, include chains and
//! fan-out, random bytes, invalid UTF-8) and mutations (bit flips, splices, duplications) of
//! the corpus in tests/fuzz-corpus/<target>/, for a bounded time per target.
//!
//! A case fails on a panic, on a stack overflow (each case runs on a thread with a small stack,
//! so a missing depth limit aborts the binary instead of passing by luck on 8 MiB), and on
//! memory over a bound derived from the budget in `emperor::config::limits` (a metering global
//! allocator records each case's peak of live bytes and its largest single allocation).
//!
//! `FUZZ_SECONDS=N` runs each target N seconds (default 3); `FUZZ_SEED=0x...` runs one case
//! again (a failure prints its seed).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use emperor::config::fuzzing::read_section;
use emperor::config::limits::{MAX_DEPTH, MAX_EXPANDED_BYTES, MAX_INCLUDED_BYTES};
use emperor::config::{load, LoadOptions};
use jail::alloc_meter::{self, MeteredAlloc, Usage};

#[global_allocator]
static METER: MeteredAlloc = MeteredAlloc;

/// Small enough that recursion without a limit overflows it (13,000 XML levels need ~50 MiB
/// in a debug build), ample for a bounded one (roxmltree recurses with ~4 KiB a level in a
/// debug build, so MAX_DEPTH levels take ~256 KiB).
const CASE_STACK: usize = 1 << 20;

/// A config file is at most 4 MiB (src/config/file.rs); reading one may double its buffer once.
const MAX_FILE_BYTES: usize = 4 << 20;

/// The largest single allocation a case may make: a file at the cap, with its buffer doubled.
const LARGEST_BOUND: usize = 2 * MAX_FILE_BYTES;

/// Live bytes a case may hold at once: the file, what it includes, and the expanded entries
/// twice (raw and expanded copies side by side).
const PEAK_BOUND: usize = 2 * MAX_FILE_BYTES + MAX_INCLUDED_BYTES + 2 * MAX_EXPANDED_BYTES;

/// Past these the allocator refuses, so a bomb aborts the test instead of swapping the host.
const REFUSE_SINGLE: usize = 256 << 20;
const REFUSE_LIVE: usize = 1 << 30;
const _: () = assert!(PEAK_BOUND < REFUSE_LIVE && LARGEST_BOUND < REFUSE_SINGLE);

/// Seeds every run tries first; each picks a different generator (see `Rng::pick`).
const FIXED_SEEDS: u64 = 64;

#[test]
fn fuzz_ini_reader() {
    fuzz("ini", |rng, corpus| format_case(rng, corpus, "ini"));
}

#[test]
fn fuzz_json_reader() {
    fuzz("json", |rng, corpus| format_case(rng, corpus, "json"));
}

#[test]
fn fuzz_yaml_reader() {
    fuzz("yaml", |rng, corpus| format_case(rng, corpus, "yaml"));
}

#[test]
fn fuzz_xml_reader() {
    fuzz("xml", |rng, corpus| format_case(rng, corpus, "xml"));
}

#[test]
fn fuzz_expander() {
    fuzz("expander", expander_case);
}

/// One case: runs on the small-stack thread, with the meter on.
type Case = Box<dyn FnOnce() + Send>;

/// Runs `make_case`'s cases for the target: the fixed seeds, then fresh ones until the time
/// bound; fails with the seed of the first case that panics or exceeds the memory bounds.
fn fuzz(target: &str, make_case: impl Fn(&mut Rng, &[String]) -> Case) {
    alloc_meter::refuse_above(REFUSE_SINGLE, REFUSE_LIVE);
    let corpus = corpus(target);
    let seconds = env_number("FUZZ_SECONDS").unwrap_or(3);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let fresh = env_number("FUZZ_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let replay = std::env::var("FUZZ_SEED").is_ok();
    eprintln!("fuzz {target}: fresh seed {fresh:#x} (FUZZ_SEED={fresh:#x} replays it)");
    let mut cases = 0u64;
    loop {
        let seed = if replay {
            fresh
        } else if cases < FIXED_SEEDS {
            cases
        } else {
            fresh.wrapping_add(cases)
        };
        let mut rng = Rng::new(seed);
        run_case(target, seed, make_case(&mut rng, &corpus));
        cases += 1;
        if replay || (cases >= FIXED_SEEDS && Instant::now() >= deadline) {
            break;
        }
    }
    eprintln!("fuzz {target}: {cases} cases");
}

fn run_case(target: &str, seed: u64, case: Case) {
    let name = format!("fuzz-{target} FUZZ_SEED={seed:#x}");
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .stack_size(CASE_STACK)
        .spawn(move || alloc_meter::measure(case).1)
        .unwrap();
    let usage: Usage = thread
        .join()
        .unwrap_or_else(|_| panic!("{name}: the case panicked (see above)"));
    assert!(
        usage.largest <= LARGEST_BOUND,
        "{name}: a single allocation of {} bytes (bound {LARGEST_BOUND})",
        usage.largest
    );
    assert!(
        usage.peak_live <= PEAK_BOUND,
        "{name}: {} bytes live at once (bound {PEAK_BOUND})",
        usage.peak_live
    );
}

/// A reader case: a generated shape or a mutated corpus file, read as `fuzz.<ext>`.
fn format_case(rng: &mut Rng, corpus: &[String], ext: &'static str) -> Case {
    let text = match rng.pick(6) {
        0 => deep_nesting(rng, ext),
        1 => wide_fan_out(rng, ext),
        2 => long_value(rng, ext),
        3 => String::from_utf8_lossy(&random_bytes(rng)).into_owned(),
        _ => String::from_utf8_lossy(&mutate(rng, corpus)).into_owned(),
    };
    Box::new(move || {
        let _ = read_section(Path::new(&format!("fuzz.{ext}")), &text);
    })
}

/// An expander case: a directory with `app.<ext>` (generated or mutated), `common.ini` and
/// `secret.txt`, loaded as the emperor loads a vassal (with a vassal-set and the process env).
fn expander_case(rng: &mut Rng, corpus: &[String]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    write("common.ini", b"[uwsgi]\ncommon = shared\n");
    write("secret.txt", b"hunter2\n");
    let (name, text) = match rng.pick(8) {
        0 => ("app.ini", placeholder_chain(rng)),
        1 => ("app.ini", magic_fan_out(rng)),
        2 => {
            write("big.txt", &vec![b'x'; rng.below(1 << 20) + 1]);
            let calls = "@(big.txt)".repeat(rng.below(200) + 1);
            ("app.ini", format!("[uwsgi]\nv = {calls}\n"))
        }
        3 => {
            let depth = rng.below(200) + 1;
            for level in 0..depth {
                let next = format!("include = inc{}.ini\n", level + 1);
                let body = if level + 1 < depth { next.as_str() } else { "" };
                write(
                    &format!("inc{level}.ini"),
                    format!("[uwsgi]\nl{level} = 1\n{body}").as_bytes(),
                );
            }
            ("app.ini", "[uwsgi]\ninclude = inc0.ini\n".to_string())
        }
        4 => {
            let options = "x = 0123456789abcdef\n".repeat(rng.below(50_000) + 1);
            write("inc.ini", format!("[uwsgi]\n{options}").as_bytes());
            let includes = "include = inc.ini\n".repeat(rng.below(300) + 1);
            ("app.ini", format!("[uwsgi]\n{includes}"))
        }
        5 => (
            "app.ini",
            String::from_utf8_lossy(&random_bytes(rng)).into_owned(),
        ),
        _ => {
            let file = rng.below(corpus.len());
            let name = ["app.ini", "app.yml", "app.json", "app.xml"][file % 4];
            (
                name,
                String::from_utf8_lossy(&mutate(rng, corpus)).into_owned(),
            )
        }
    };
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let options = LoadOptions {
        sets: vec![("vassal-name".into(), "%n".into())],
        ..LoadOptions::default()
    };
    Box::new(move || {
        let _ = load(&path, &options);
        drop(dir);
    })
}

/// Nesting `depth` levels deep, in the format's own way; sometimes inside the section, sometimes
/// beside it (a reader that skips other sections must bound that too).
fn deep_nesting(rng: &mut Rng, ext: &str) -> String {
    let depth = match rng.pick(3) {
        0 => rng.below(2 * MAX_DEPTH) + 1,
        1 => MAX_DEPTH - 1 + rng.below(3),
        _ => 13_000,
    };
    let inside = rng.pick(2) == 0;
    match ext {
        "xml" => {
            let nested = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
            if inside {
                format!("<uwsgi>{nested}</uwsgi>")
            } else {
                format!("<all>{nested}<uwsgi id=\"x\"/></all>")
            }
        }
        "json" => {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            if inside {
                format!("{{\"uwsgi\": {{\"a\": {nested}}}}}")
            } else {
                format!("{{\"other\": {nested}, \"uwsgi\": {{}}}}")
            }
        }
        "yaml" if inside => {
            // Block mappings, one more space per level.
            let mut text = String::from("other:\n");
            for level in 1..depth.min(2_000) {
                text.push_str(&format!("{}k:\n", " ".repeat(level)));
            }
            text + "uwsgi:\n  a: 1\n"
        }
        "yaml" => format!(
            "other: {}{}\nuwsgi:\n  a: 1\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
        _ => format!("[uwsgi]\n{}", "[".repeat(depth)),
    }
}

/// Many options (or sections) side by side.
fn wide_fan_out(rng: &mut Rng, ext: &str) -> String {
    let count = rng.below(5_000) + 1;
    let keys = (0..count).map(|i| format!("k{}", i % 97));
    match ext {
        "xml" => format!(
            "<uwsgi>{}</uwsgi>",
            keys.map(|k| format!("<{k}>v</{k}>")).collect::<String>()
        ),
        "json" => {
            let pairs: Vec<String> = keys.map(|k| format!("\"{k}\": [1, \"v\"]")).collect();
            format!("{{\"uwsgi\": {{{}}}}}", pairs.join(","))
        }
        "yaml" => format!(
            "uwsgi:\n{}",
            keys.map(|k| format!("  {k}: v\n")).collect::<String>()
        ),
        _ => format!(
            "[uwsgi]\n{}",
            keys.map(|k| format!("{k} = v\n[s{k}]\n"))
                .collect::<String>()
        ),
    }
}

/// One value of up to 1 MiB.
fn long_value(rng: &mut Rng, ext: &str) -> String {
    let value = "v".repeat(rng.below(1 << 20) + 1);
    match ext {
        "xml" => format!("<uwsgi><a>{value}</a></uwsgi>"),
        "json" => format!("{{\"uwsgi\": {{\"a\": \"{value}\"}}}}"),
        "yaml" => format!("uwsgi:\n  a: {value}\n"),
        _ => format!("[uwsgi]\na = {value}\n"),
    }
}

/// The placeholder bomb: each level is the previous one `repeat` times.
fn placeholder_chain(rng: &mut Rng) -> String {
    let levels = rng.below(14) + 1;
    let repeat = rng.below(12) + 1;
    let mut text = String::from("[uwsgi]\na0 = 0123456789\n");
    for level in 1..=levels {
        let previous = format!("%(a{})", level - 1);
        text.push_str(&format!("a{level} = {}\n", previous.repeat(repeat)));
    }
    text
}

/// Magic variables are short to write and long to expand (`%p` is the whole path).
fn magic_fan_out(rng: &mut Rng) -> String {
    let calls = ["%p", "%d", "%D", "%o", "%s", "$(PATH)"][rng.pick(6)];
    format!("[uwsgi]\nv = {}\n", calls.repeat(rng.below(200_000) + 1))
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    (0..rng.below(4096)).map(|_| rng.next() as u8).collect()
}

/// A corpus file with a few mutations: bit flips, splices from another file, duplicated runs,
/// cuts, and tokens the expander and readers care about.
fn mutate(rng: &mut Rng, corpus: &[String]) -> Vec<u8> {
    let mut bytes = corpus[rng.below(corpus.len())].as_bytes().to_vec();
    for _ in 0..rng.below(8) + 1 {
        let at = rng.below(bytes.len() + 1);
        match rng.pick(6) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let other = corpus[rng.below(corpus.len())].as_bytes();
                let start = rng.below(other.len());
                let end = start + rng.below(other.len() - start + 1);
                bytes.splice(at..at, other[start..end].iter().copied());
            }
            2 if at < bytes.len() => {
                let end = at + rng.below((bytes.len() - at).min(64)) + 1;
                let run = bytes[at..end].to_vec();
                for _ in 0..rng.below(64) + 1 {
                    bytes.splice(at..at, run.iter().copied());
                }
            }
            3 => bytes.truncate(at),
            _ => {
                const TOKENS: &[&str] = &[
                    "%(",
                    ")",
                    "%(a)",
                    "@(",
                    "$(",
                    "include = common.ini\n",
                    "<a>",
                    "</a>",
                    "[",
                    "{",
                    "- ",
                    ":",
                    "\n  ",
                    "%n",
                    "\u{0}",
                    "\u{ff}",
                    "=",
                ];
                let token = TOKENS[rng.below(TOKENS.len())];
                bytes.splice(at..at, token.bytes());
            }
        }
    }
    if rng.pick(8) == 0 {
        bytes.push(0xff); // invalid UTF-8 where the target reads bytes
    }
    bytes
}

/// The committed corpus of a target.
fn corpus(target: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap())
        .collect();
    assert!(!texts.is_empty(), "no corpus in {}", dir.display());
    texts
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text}: {e}")))
}

/// SplitMix64: small, seedable, good enough to pick shapes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// One of `n` choices; the first draw of seed `s` < n is choice `s`, so the fixed seeds
    /// cover every generator.
    fn pick(&mut self, n: usize) -> usize {
        let seed_choice = (self.0 < n as u64).then_some(self.0 as usize);
        let draw = self.below(n);
        seed_choice.unwrap_or(draw)
    }
}
