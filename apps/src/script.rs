//! `tapir script FILE...`: run segment scripts in packetdrill's syntax
//! against tapir's TCP, from anywhere.

use std::path::PathBuf;
use std::time::Duration;
use tapir_script::{run_file_with, RunnerConfig, TapirHost};

#[derive(clap::Args)]
pub struct ScriptArgs {
    /// Script files (packetdrill syntax).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print each script's full trace (every packet and call), not only failures.
    #[arg(long, short)]
    verbose: bool,
    /// How far an outbound packet may be from its scripted time, in
    /// microseconds (packetdrill's option of the same name; 4000 by
    /// default; a script's own `--tolerance_usecs` line wins).
    #[arg(long = "tolerance_usecs", alias = "tolerance-usecs", value_name = "USECS")]
    tolerance_usecs: Option<u64>,
    /// Fail as soon as the stack sends a packet no `>` line expects. By
    /// default, as in packetdrill, such a packet fails only the next `>`
    /// line it does not match (and is not noticed after the last one).
    #[arg(long)]
    strict: bool,
    /// Also fail on any packet the stack sends within 100 ms after the
    /// last line (tapir's own suite runs scripts this way; packetdrill
    /// does not look after the last line). Catches a reply that must not
    /// come, such as a RST answering a RST, or an ACK sent at once or on
    /// the delayed-ACK timer; retransmission timers (200 ms or more) armed
    /// by the last line stay outside it.
    #[arg(long = "end-check", alias = "end_check")]
    end_check: bool,
    /// Do not compare the PSH flag of outbound segments. Where Linux puts
    /// PSH follows its socket-buffer and TSO boundaries, which the RFCs
    /// leave to the sender; tapir's run of packetdrill's upstream scripts
    /// (stack/tests/upstream) uses this.
    #[arg(long = "ignore-psh", alias = "ignore_psh")]
    ignore_psh: bool,
}

/// Runs every file; prints pass or fail (with the reason) and the lines
/// it skipped for each. Fails if any script failed.
pub fn run(args: ScriptArgs) -> Result<(), String> {
    let (mut passed, mut failed, mut skipped_lines) = (0, 0, 0);
    let mut config = RunnerConfig {
        strict_unexpected: args.strict,
        end_grace: args.end_check.then_some(RunnerConfig::END_GRACE),
        check_psh: !args.ignore_psh,
        ..RunnerConfig::default()
    };
    if let Some(us) = args.tolerance_usecs {
        config.tolerance = Duration::from_micros(us);
    }
    for path in &args.files {
        let outcome = run_file_with(path, TapirHost::new, config.clone());
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
