//! Segment scripts in packetdrill's syntax, run against a stack on a
//! virtual clock (DESIGN.md, "Testing in four layers", item 2).
//!
//! ```text
//! 0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
//! +0  bind(3, ..., ...) = 0
//! +0  listen(3, 1) = 0
//! +0  < S 0:0(0) win 65535 <mss 1460>
//! +0  > S. 0:0(0) ack 1 <...>
//! +.1 < . 1:1(0) ack 1 win 65535
//! +0  accept(3, ..., ...) = 4
//! ```
//!
//! [`parse`] turns a script into a [`Script`]; [`run_str`] and [`run_file`]
//! run one against a [`ScriptHost`], the small trait a stack implements to
//! be driven this way. The runner plays the peer (10.77.0.1, answering
//! ARP), injects `<` segments, matches `>` segments with packetdrill's
//! sequence-number and timestamp mapping, and performs the syscalls. See
//! `runner/mod.rs` for the exact semantics and where they differ from
//! packetdrill's.
//!
//! Shell commands (`` `...` ``) and Python snippets (`%{ }%`) are never
//! run as such: the sysctls a shell line sets go to
//! [`ScriptHost::sysctl`] (`runner/shell.rs`), and a snippet's asserts are
//! evaluated against [`ScriptHost::tcp_info`] (`runner/python.rs`); what
//! the runner cannot do that way is listed in [`Outcome::skipped`].
//! Constructs the runner cannot execute parse, and fail the script when
//! reached. `tests/upstream.rs` runs packetdrill's own Linux scripts
//! (`stack/tests/upstream/packetdrill/`) against their `EXPECTED`.
//!
//! [`TapirHost`] is tapir's `Interface` as a host. The scripts tapir is
//! tested with live in `stack/tests/scripts/`; `tests/scripts.rs` here runs
//! each as a test (`cargo test -p tapir-script --test scripts -- NAME`),
//! and `tapir script FILE...` runs any script with its trace.

mod frame;
mod host;
mod lexer;
#[cfg(test)]
mod mock;
mod parser;
mod runner;
mod symbols;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use frame::{TcpFlags, TcpOption};
mod tapir_host;
pub use host::{Errno, Fd, QueueIoctl, Readiness, ScriptHost, Shutdown, SockOpt, Sysctl, TcpInfo};
pub use parser::{
    parse, Direction, Ecn, Event, EventKind, Expr, IpInfo, PacketSpec, ParseError, Script, ScriptOption,
    Skipped, SyscallSpec, TimeSpec, SUPPORTED_SYSCALLS,
};
pub use runner::{run_script, Failure, Outcome, RunnerConfig};
pub use tapir_host::TapirHost;

/// Parses and runs a script with the default configuration. A parse
/// error is reported as the failure of its line.
pub fn run_str<H: ScriptHost>(text: &str, host: H) -> Outcome {
    run_str_with(text, host, RunnerConfig::default())
}

/// [`run_str`] with a configuration.
pub fn run_str_with<H: ScriptHost>(text: &str, host: H, config: RunnerConfig) -> Outcome {
    match parse(text) {
        Ok(script) => run_script(&script, host, config),
        Err(e) => Outcome {
            passed: false,
            failure: Some(Failure {
                line: e.line,
                message: format!("parse error at column {}: {}", e.col, e.message),
            }),
            ..Outcome::default()
        },
    }
}

/// Reads, parses and runs the script at `path` against the host `host()`
/// makes. Failure messages name the file.
pub fn run_file<H: ScriptHost>(path: impl AsRef<Path>, host: impl FnOnce() -> H) -> Outcome {
    run_file_with(path, host, RunnerConfig::default())
}

/// [`run_file`] with a configuration (options written in the script,
/// such as `--tolerance_usecs`, still override it).
pub fn run_file_with<H: ScriptHost>(
    path: impl AsRef<Path>,
    host: impl FnOnce() -> H,
    config: RunnerConfig,
) -> Outcome {
    let path = path.as_ref();
    let mut config = config;
    if config.script_dir.is_none() {
        config.script_dir = path.parent().map(Path::to_path_buf);
    }
    let mut outcome = match std::fs::read_to_string(path) {
        Ok(text) => run_str_with(&text, host(), config),
        Err(e) => Outcome {
            passed: false,
            failure: Some(Failure {
                line: 0,
                message: format!("cannot read script: {e}"),
            }),
            ..Outcome::default()
        },
    };
    if let Some(f) = &mut outcome.failure {
        f.message = format!("{}:{}: {}", path.display(), f.line, f.message);
    }
    outcome
}
