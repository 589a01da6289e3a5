//! packetdrill's upstream Linux scripts, run unmodified from a checkout of
//! packetdrill named by `TAPIR_PACKETDRILL` (its `gtests/net/tcp`
//! directory; see `stack/tests/upstream/packetdrill/README.md`), each a
//! test named `<dir>/<file>`, checked against
//! `stack/tests/upstream/packetdrill/EXPECTED`:
//!
//! ```text
//! sack/sack-shift-sacked-7-5-6-8-9-fack.pkt: pass
//! cubic/cubic-bulk-166k.pkt: linux-detail: <the Linux detail it tests>
//! fast_retransmit/fr-4pkt-fack-last-mss.pkt: fails: <the gap in tapir>
//! ```
//!
//! A `pass` script must pass with nothing skipped; any other script must
//! fail (or skip a line), so that EXPECTED says what is true today: a fix
//! that makes a script pass fails its test until EXPECTED says `pass`.
//! Every script of the listed directories must be listed, and every listed
//! one must exist.
//!
//! The scripts are GPLv2 and third-party, so they are not in this
//! repository. Without `TAPIR_PACKETDRILL` every test is reported as
//! ignored (never as passed), with the reason.
//!
//! The scripts run with packetdrill's own semantics
//! ([`RunnerConfig::packetdrill`]): no end check, packets of other flows
//! ignored, an unexpected packet failing the next `>` line), except that
//! the PSH flag is not compared ([`RunnerConfig::check_psh`]): which
//! segment of a write carries it follows Linux's socket-buffer and TSO
//! boundaries, which the RFCs leave to the sender.

use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tapir_script::{run_file_with, RunnerConfig, TapirHost};

#[derive(Debug, Clone)]
enum Expect {
    Pass,
    /// `linux-detail:` or `fails:`, with the reason.
    Fail(String),
}

fn expectations(text: &str) -> Result<BTreeMap<String, Expect>, String> {
    let mut map = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = line
            .split_once(": ")
            .ok_or_else(|| format!("EXPECTED line {}: no ': ' after the script name", i + 1))?;
        let expect = match rest.trim() {
            "pass" => Expect::Pass,
            r if (r.starts_with("linux-detail: ") || r.starts_with("fails: ")) && r.len() > 16 => {
                Expect::Fail(r.to_string())
            }
            r => {
                return Err(format!(
                    "EXPECTED line {}: '{r}' is not 'pass', 'linux-detail: <reason>' or 'fails: <reason>'",
                    i + 1
                ))
            }
        };
        if map.insert(name.to_string(), expect).is_some() {
            return Err(format!("EXPECTED line {}: {name} listed twice", i + 1));
        }
    }
    Ok(map)
}

/// Every `<dir>/<file>.pkt` under `root`, as (name, path).
fn scripts(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let dname = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pkt"))
            .collect();
        files.sort();
        for f in files {
            let fname = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
            out.push((format!("{dname}/{fname}"), f));
        }
    }
    out
}

fn main() {
    let args = Arguments::from_args();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/upstream/packetdrill");
    let expected_path = here.join("EXPECTED");
    let text = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", expected_path.display()));
    let expected = expectations(&text);
    let Some(root) = std::env::var_os("TAPIR_PACKETDRILL").map(PathBuf::from) else {
        eprintln!("TAPIR_PACKETDRILL is not set: packetdrill's scripts are not run (README.md, upstream packetdrill)");
        let trials = expected
            .unwrap_or_default()
            .into_keys()
            .map(|name| Trial::test(name, || Ok(())).with_ignored_flag(true))
            .collect();
        libtest_mimic::run(&args, trials).exit();
    };
    let dirs: std::collections::BTreeSet<String> = expected
        .as_ref()
        .map(|e| {
            e.keys()
                .filter_map(|k| k.split_once('/'))
                .map(|(d, _)| d.to_string())
                .collect()
        })
        .unwrap_or_default();
    let found: Vec<(String, PathBuf)> = scripts(&root)
        .into_iter()
        .filter(|(name, _)| name.split_once('/').is_some_and(|(d, _)| dirs.contains(d)))
        .collect();

    let mut trials = Vec::new();
    // The list itself: parsable, and naming exactly the vendored scripts.
    {
        let expected = expected.clone();
        let names: Vec<String> = found.iter().map(|(n, _)| n.clone()).collect();
        trials.push(Trial::test("EXPECTED lists every script", move || {
            let expected = expected.map_err(Failed::from)?;
            let missing: Vec<&String> = names.iter().filter(|n| !expected.contains_key(*n)).collect();
            let stale: Vec<&String> = expected.keys().filter(|k| !names.contains(k)).collect();
            if missing.is_empty() && stale.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "not in EXPECTED: {missing:?}; in EXPECTED but not in TAPIR_PACKETDRILL: {stale:?}"
                )
                .into())
            }
        }));
    }
    let expected = expected.unwrap_or_default();
    for (name, path) in found {
        let expect = expected.get(&name).cloned();
        trials.push(Trial::test(name, move || {
            let config = RunnerConfig {
                check_psh: false,
                ..RunnerConfig::packetdrill()
            };
            let outcome = run_file_with(&path, TapirHost::new, config);
            let passed = outcome.passed && outcome.skipped.is_empty();
            match expect {
                None => Err("not listed in EXPECTED".into()),
                Some(Expect::Pass) if passed => Ok(()),
                Some(Expect::Pass) => Err(format!("{}\n{outcome}", path.display()).into()),
                Some(Expect::Fail(_)) if !passed => Ok(()),
                Some(Expect::Fail(why)) => Err(format!(
                    "{} now passes, but EXPECTED says '{why}': mark it 'pass'",
                    path.display()
                )
                .into()),
            }
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
