//! Loss recovery on the sender side: the SACK scoreboard (RFC 2018,
//! RFC 6675 4) in `scoreboard`, RACK-TLP loss detection (RFC 8985) and
//! its per-segment record of what is in flight in `rack`, the state of
//! one recovery episode (RFC 6675's SACK-based recovery or, for a peer
//! without SACK, RFC 6582's NewReno) here, and Proportional Rate
//! Reduction (RFC 6937) in `prr`. Spurious retransmissions are found by
//! D-SACK (RFC 2883, `dsack`), timestamps (RFC 3522) and F-RTO (RFC
//! 5682, `frto`), and their reduction undone (RFC 3708, RFC 4015;
//! `undo`).
//!
//! The connection (`conn/acked.rs`, `conn/output.rs`) drives it: an ACK
//! updates the scoreboard and may start or end a recovery; the output
//! path asks NextSeg what to retransmit while the window allows.

pub(crate) mod dsack;
pub(crate) mod frto;
pub(crate) mod prr;
pub(crate) mod rack;
pub(crate) mod scoreboard;
pub(crate) mod undo;

pub(crate) use frto::Frto;
pub(crate) use prr::Prr;
pub(crate) use rack::{AckInfo, Rack, Tlp, TlpOutcome};
pub(crate) use scoreboard::{NextSeg, Scoreboard, DUP_THRESH};
pub(crate) use undo::Undo;

use super::seq::SeqNumber;

/// One fast-recovery episode (RFC 6675 5, RFC 6582 3.2) in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recovery {
    /// RFC 6675 RecoveryPoint, RFC 6582 "recover" (exclusive): recovery
    /// lasts until this is cumulatively acknowledged.
    pub point: SeqNumber,
    /// SACK-based (RFC 6675: pipe and NextSeg) rather than NewReno.
    pub sack: bool,
    /// NewReno: bytes the duplicate ACKs say arrived above SND.UNA, a
    /// segment each (Linux's Reno "sacked_out"), for pipe and PRR.
    pub dup_delivered: usize,
    /// Partial ACKs so far (RFC 6582 3.2 step 5: only the first restarts
    /// the retransmission timer, the "impatient" variant of section 4).
    pub partial_acks: u32,
    /// How much recovery sends per ACK (RFC 6937).
    pub prr: Prr,
}
