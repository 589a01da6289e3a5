//! Test support, built for this crate's tests and, with the `testing`
//! feature, for other crates' tests and benchmarks.
//!
//! - The crate root re-exports the frame helpers (`frames`): crafting the
//!   frames a peer would send and decoding the ones the stack sends.
//! - [`sim`]: a deterministic network simulator that connects any number of
//!   stacks through seeded, impaired links on one virtual clock.
//! - [`smoltcp_peer`]: smoltcp wrapped as a simulator node, an independent
//!   implementation to test tapir against.
//! - [`ones_complement_sum`]: the checksum loop, for benchmarks.
//!
//! The segment-script runner (packetdrill syntax) is its own crate,
//! `tapir-script` in `stack/script/`.

mod frames;
pub use frames::*;

pub mod sim;
#[cfg(feature = "smoltcp-peer")]
pub mod smoltcp_peer;

/// The folded RFC 1071 sum of `data`, not inverted: the loop every
/// checksum tapir computes or verifies runs (for benchmarks against other
/// stacks' own, e.g. smoltcp's `wire::ip::checksum::data`).
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    !crate::wire::finish16(crate::wire::sum16(0, data))
}
