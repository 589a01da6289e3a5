//! The crate's own tests: the parser on scripts from packetdrill's and
//! gVisor's corpora (`parse`), and the runner against the toy TCP in
//! `mock.rs` (`run`).

use core::time::Duration;

use super::mock::MockHost;
use super::*;

mod parse;
mod run;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}
