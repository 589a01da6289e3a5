//! What running a script produced: pass or the failing line, and the trace.

use super::*;

/// Why a script failed: the line and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The result of running a script.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// No failure. Skipped lines do not make a script fail; see
    /// [`Outcome::assert_passed`].
    pub passed: bool,
    pub failure: Option<Failure>,
    /// Shell commands and `%{ }%` snippets the runner could not carry
    /// out (an unknown command or sysctl, no TCP_INFO): (line, text).
    pub skipped: Vec<(usize, String)>,
    /// Things the runner ignored or noticed: unsupported script options,
    /// IPv6 flow labels, non-TCP frames, unmatched packets at the end.
    pub warnings: Vec<(usize, String)>,
    /// What happened, in order: every packet in and out (in script space)
    /// and every syscall with its result.
    pub trace: Vec<String>,
}

impl Outcome {
    /// Panics with the report unless the script passed and skipped nothing.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed || !self.skipped.is_empty() {
            panic!("packetdrill script did not pass:\n{self}");
        }
    }

    /// Panics with the report unless the script passed; skipped lines are
    /// allowed (scripts from Linux's corpus set sysctls in shell lines).
    #[track_caller]
    pub fn assert_passed_allowing_skips(&self) {
        if !self.passed {
            panic!("packetdrill script failed:\n{self}");
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Some(fail) => writeln!(f, "FAILED at {fail}")?,
            None => writeln!(f, "passed")?,
        }
        for (line, text) in &self.skipped {
            writeln!(f, "skipped line {line}: {text}")?;
        }
        for (line, text) in &self.warnings {
            writeln!(f, "warning, line {line}: {text}")?;
        }
        if !self.trace.is_empty() {
            writeln!(f, "trace:")?;
            for t in &self.trace {
                writeln!(f, "  {t}")?;
            }
        }
        Ok(())
    }
}
