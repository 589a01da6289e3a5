//! `tapir script FILE...`: run segment scripts in packetdrill's syntax
//! against tapir's TCP, from anywhere.

use std::path::PathBuf;
use tapir_stack::testing::packetdrill::{run_file, TapirHost};

#[derive(clap::Args)]
pub struct ScriptArgs {
    /// Script files (packetdrill syntax).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print each script's full trace (every packet and call), not only failures.
    #[arg(long, short)]
    verbose: bool,
}

/// Runs every file; prints pass or fail (with the reason) and the lines
/// it skipped for each. Fails if any script failed.
pub fn run(args: ScriptArgs) -> Result<(), String> {
    let (mut passed, mut failed, mut skipped_lines) = (0, 0, 0);
    for path in &args.files {
        let outcome = run_file(path, TapirHost::new);
        let name = path.display();
        if outcome.passed {
            passed += 1;
            println!("PASS {name}");
        } else {
            failed += 1;
            match &outcome.failure {
                Some(f) => println!("FAIL {name}: line {}: {}", f.line, f.message),
                None => println!("FAIL {name}"),
            }
        }
        for (line, text) in &outcome.skipped {
            skipped_lines += 1;
            println!("  skipped line {line}: {}", text.trim());
        }
        if args.verbose || !outcome.passed {
            for line in &outcome.trace {
                println!("  | {line}");
            }
        }
    }
    println!("{passed} passed, {failed} failed ({skipped_lines} lines skipped)");
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} of {} scripts failed", passed + failed))
    }
}
