//! `emperor reload`: a graceful rolling reload (uWSGI's seed 003) over the emperor's control
//! socket. One reload at a time (the emperor's lock); vassals go down in waves as large as
//! `--minimum-active-vassals` allows; a vassal is back when a new payload of it accepts
//! (protocol byte 5, from its `ready-check`); exit 0 only when every selected vassal is back.

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `emperor reload` was asked.
#[derive(Debug, Clone)]
pub struct ReloadArgs {
    pub control: PathBuf,
    /// Vassal names or glob patterns; empty means every vassal (of the pool, if one is given).
    pub names: Vec<String>,
    /// Only the vassals of this pool (their `pool-socket` value).
    pub pool: Option<String>,
    pub minimum_active: usize,
    pub timeout: Duration,
    pub check_interval: Duration,
    pub quiet: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("control socket {}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("control socket {}: {message}", path.display())]
    Refused { path: PathBuf, message: String },
    #[error("control socket {}: the emperor answered something that is not JSON: {line}", path.display())]
    Garbled { path: PathBuf, line: String },
    #[error("{0}")]
    Usage(String),
}

impl ReloadError {
    /// 2: the reload did not start (busy, bad selection, no emperor); 1: it did not finish.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// A line-per-request conversation with the emperor.
pub(crate) struct Control {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl Control {
    pub(crate) fn connect(path: &Path) -> Result<Control, ReloadError> {
        let stream = UnixStream::connect(path).map_err(|source| ReloadError::Io {
            path: path.to_path_buf(),
            what: "connect",
            source,
        })?;
        Ok(Control {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
        })
    }

    pub(crate) fn ask(&mut self, request: &str) -> Result<Value, ReloadError> {
        let io = |what| {
            let path = self.path.clone();
            move |source| ReloadError::Io { path, what, source }
        };
        let stream = self.reader.get_mut();
        // An emperor that refuses us answers and closes at once: our write may then fail,
        // but its answer is still there to read.
        let written = stream.write_all(format!("{request}\n").as_bytes());
        let mut line = String::new();
        let read = self.reader.read_line(&mut line);
        if line.is_empty() {
            written.map_err(io("write"))?;
            read.map_err(io("read"))?;
            return Err(ReloadError::Refused {
                path: self.path.clone(),
                message: "the emperor closed the connection".into(),
            });
        }
        let answer: Value = serde_json::from_str(&line).map_err(|_| ReloadError::Garbled {
            path: self.path.clone(),
            line: line.trim().to_string(),
        })?;
        if answer["ok"] == true {
            Ok(answer)
        } else {
            Err(ReloadError::Refused {
                path: self.path.clone(),
                message: answer["error"].as_str().unwrap_or("refused").to_string(),
            })
        }
    }

    /// name -> (running, accepting, starts).
    fn status(&mut self) -> Result<BTreeMap<String, VassalState>, ReloadError> {
        let answer = self.ask("status")?;
        Ok(answer["vassals"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let name = v["name"].as_str()?.to_string();
                Some((
                    name,
                    VassalState {
                        running: v["pid"].as_i64().is_some_and(|p| p > 0),
                        accepting: v["accepting"] == true,
                        starts: v["starts"].as_u64().unwrap_or(0),
                        pool: v["pool"].as_str().unwrap_or_default().to_string(),
                    },
                ))
            })
            .collect())
    }
}

#[derive(Debug, Clone)]
struct VassalState {
    running: bool,
    accepting: bool,
    starts: u64,
    pool: String,
}

/// How one selected vassal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    Reloaded(Duration),
    NotReadyInTime,
    NotStarted,
    Failed(String),
}

/// Run the reload; the exit status (0: all reloaded, 1: not all, 2: not started).
pub fn run(args: &ReloadArgs) -> u8 {
    match reload(args) {
        Ok(report) => report.finish(args),
        Err(e) => {
            eprintln!("emperor reload: {e}");
            e.exit_code()
        }
    }
}

struct Report {
    fates: BTreeMap<String, Fate>,
    took: Duration,
    least_ready: usize,
}

impl Report {
    fn finish(&self, args: &ReloadArgs) -> u8 {
        let all = self.fates.values().all(|f| matches!(f, Fate::Reloaded(_)));
        let chatty = !args.quiet && std::io::stderr().is_terminal();
        if all {
            if chatty {
                eprintln!(
                    "reloaded {} vassal(s) in {:.1} s; at least {} ready throughout",
                    self.fates.len(),
                    self.took.as_secs_f64(),
                    self.least_ready
                );
            }
            return 0;
        }
        eprintln!("emperor reload: not every vassal was reloaded:");
        for (name, fate) in &self.fates {
            let line = match fate {
                Fate::Reloaded(after) => {
                    format!("reloaded, ready after {:.1} s", after.as_secs_f64())
                }
                Fate::NotReadyInTime => format!(
                    "reloaded, but not ready within the timeout ({} s)",
                    args.timeout.as_secs_f64()
                ),
                Fate::NotStarted => "not reloaded: the timeout came first".to_string(),
                Fate::Failed(why) => format!("not reloaded: {why}"),
            };
            eprintln!("  {name}: {line}");
        }
        1
    }
}

/// The names `patterns` select among `known` (every one when `patterns` is empty).
fn select(patterns: &[String], known: &[String]) -> Result<Vec<String>, ReloadError> {
    if patterns.is_empty() {
        return Ok(known.to_vec());
    }
    let mut chosen = Vec::new();
    for pattern in patterns {
        let glob = glob::Pattern::new(pattern)
            .map_err(|e| ReloadError::Usage(format!("bad pattern \"{pattern}\": {e}")))?;
        let matched: Vec<&String> = known.iter().filter(|n| glob.matches(n)).collect();
        if matched.is_empty() {
            return Err(ReloadError::Usage(format!(
                "no vassal matches \"{pattern}\""
            )));
        }
        chosen.extend(matched.into_iter().cloned());
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

fn reload(args: &ReloadArgs) -> Result<Report, ReloadError> {
    let mut control = Control::connect(&args.control)?;
    control.ask("lock")?;
    let chatty = !args.quiet && std::io::stderr().is_terminal();
    let say = |line: String| {
        if chatty {
            eprintln!("{line}");
        }
    };
    let start = Instant::now();
    let status = control.status()?;
    let known: Vec<String> = status
        .iter()
        .filter(|(_, v)| args.pool.as_ref().is_none_or(|pool| &v.pool == pool))
        .map(|(name, _)| name.clone())
        .collect();
    if let (Some(pool), true) = (&args.pool, known.is_empty()) {
        return Err(ReloadError::Usage(format!(
            "no vassal is in pool \"{pool}\""
        )));
    }
    let selected = select(&args.names, &known)?;
    let ready_now = selected.iter().filter(|n| status[*n].accepting).count();
    if ready_now <= args.minimum_active && selected.iter().all(|n| status[n].accepting) {
        return Err(ReloadError::Usage(format!(
            "cannot keep {} vassal(s) active while reloading: {} of the {} selected are ready",
            args.minimum_active,
            ready_now,
            selected.len()
        )));
    }
    say(format!(
        "reloading {} vassal(s), keeping at least {} ready",
        selected.len(),
        args.minimum_active
    ));

    let mut fates: BTreeMap<String, Fate> = BTreeMap::new();
    let mut pending: VecDeque<String> = selected.iter().cloned().collect();
    // name -> (starts before the reload, when it was asked)
    let mut in_flight: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
    let mut least_ready = usize::MAX;
    let deadline = start + args.timeout;
    loop {
        let status = control.status()?;
        let ready = |name: &String| status.get(name).is_some_and(|v| v.accepting);
        in_flight.retain(|name, (before, asked)| match status.get(name) {
            None => {
                fates.insert(name.clone(), Fate::Failed("its config was removed".into()));
                false
            }
            Some(v) if v.starts > *before && v.accepting => {
                let after = asked.elapsed();
                say(format!(
                    "{name}: back, ready after {:.1} s",
                    after.as_secs_f64()
                ));
                fates.insert(name.clone(), Fate::Reloaded(after));
                false
            }
            Some(_) => true,
        });
        let ready_count = selected.iter().filter(|n| ready(n)).count();
        least_ready = least_ready.min(ready_count);
        if pending.is_empty() && in_flight.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for name in in_flight.keys() {
                fates.insert(name.clone(), Fate::NotReadyInTime);
            }
            for name in pending {
                fates.insert(name, Fate::NotStarted);
            }
            break;
        }
        // A vassal not serving now costs nothing to reload; the others only while more than
        // the minimum are ready.
        let mut room = ready_count.saturating_sub(args.minimum_active);
        let mut waiting = VecDeque::new();
        while let Some(name) = pending.pop_front() {
            let Some(state) = status.get(&name).cloned() else {
                fates.insert(name, Fate::Failed("its config was removed".into()));
                continue;
            };
            if !state.running {
                waiting.push_back(name);
                continue;
            }
            if state.accepting {
                if room == 0 {
                    waiting.push_back(name);
                    continue;
                }
                room -= 1;
            }
            match control.ask(&format!("reload {name}")) {
                Ok(_) => {
                    say(format!("{name}: reloading"));
                    in_flight.insert(name, (state.starts, Instant::now()));
                }
                Err(ReloadError::Refused { message, .. }) => {
                    fates.insert(name, Fate::Failed(message));
                }
                Err(e) => return Err(e),
            }
        }
        pending = waiting;
        std::thread::sleep(args.check_interval);
    }
    let _ = control.ask("unlock");
    Ok(Report {
        fates,
        took: start.elapsed(),
        least_ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_names_and_a_pattern_matching_nothing_is_an_error() {
        let known: Vec<String> = ["web1.ini", "web2.ini", "db.ini"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(select(&[], &known).unwrap(), known);
        assert_eq!(
            select(&["web*".into()], &known).unwrap(),
            ["web1.ini", "web2.ini"]
        );
        assert_eq!(
            select(&["db.ini".into(), "d*".into()], &known).unwrap(),
            ["db.ini"]
        );
        assert!(select(&["mail*".into()], &known)
            .unwrap_err()
            .to_string()
            .contains("no vassal matches"));
    }
}
