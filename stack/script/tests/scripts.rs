//! Segment scripts in packetdrill's syntax, run against the sans-IO core on
//! a virtual clock. Every `.pkt` file under `stack/tests/scripts/` is one
//! test, named after the behaviour it checks; `cargo test -p tapir-script
//! --test scripts -- NAME` runs one. A script passes only if every line ran (a
//! skipped shell or python block fails it here) and the stack sent nothing
//! that no `>` line matched, up to `RunnerConfig::END_GRACE` (100 ms) after
//! the last line: a script's last lines must account for every reply to
//! them (`RunnerConfig::suite`).

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use tapir_script::{run_file_with, RunnerConfig, TapirHost};

fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pkt"))
        .collect();
    files.sort();
    files
}

fn main() {
    let args = Arguments::from_args();
    // The scripts stay with the stack they test (stack/tests/scripts).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scripts");
    let trials = scripts(&dir)
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            Trial::test(name, move || {
                let outcome = run_file_with(&path, TapirHost::new, RunnerConfig::suite());
                if outcome.passed && outcome.skipped.is_empty() {
                    Ok(())
                } else {
                    Err(Failed::from(format!("{}\n{outcome}", path.display())))
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
