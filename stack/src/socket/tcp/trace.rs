//! A connection's timeline: what the sender's variables were each time
//! they changed, for plots like tcptrace's (time-sequence graph, window,
//! RTT) and for reading a recovery episode after the fact.
//!
//! Recording is off by default and costs nothing then. Turned on for a
//! connection (`Interface::tcp_trace`), a sample is taken after every
//! input, timer and segment sent, kept only when something other than the
//! time changed, in a bounded queue the application drains
//! (`Interface::tcp_drain_trace`); when the queue is full the oldest
//! samples go and are counted, so a forgotten trace costs a fixed amount of
//! memory.

use super::{TcpConnStats, TcpState};
use crate::socket::SocketHandle;
use crate::time::{Duration, Instant};
use core::net::SocketAddrV4;
use std::collections::VecDeque;

/// Traces of connections that ended and have not been drained yet, at most
/// (with `TcpConfig::trace_connections`); beyond it the oldest are dropped
/// and counted in `tcp_traces_dropped`.
pub(crate) const FINISHED_TRACES: usize = 1024;

/// What [`Interface::tcp_drain_traces`](crate::Interface::tcp_drain_traces)
/// hands over for one traced connection: the samples since the last drain.
#[derive(Debug, Clone)]
pub struct ConnTrace {
    pub handle: SocketHandle,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub samples: Vec<TraceSample>,
    /// Samples lost because the trace was full since the last drain.
    pub dropped: u64,
    /// The connection is gone: this is the end of its timeline.
    pub finished: bool,
}

/// The most samples a trace holds unless told otherwise (about 100 MB at
/// ~100 bytes a sample: a few seconds of a gigabit transfer's ACKs).
pub const DEFAULT_TRACE_CAPACITY: usize = 1 << 20;

/// One point of a connection's timeline. Sequence numbers are absolute
/// (the plot makes them relative to the first sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSample {
    pub time: Instant,
    pub state: TcpState,
    /// SND.UNA: everything before it is acknowledged.
    pub snd_una: u32,
    /// SND.NXT: the next sequence number to send.
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    /// The peer's advertised window, scaled.
    pub snd_wnd: usize,
    pub cwnd: usize,
    pub ssthresh: usize,
    pub bytes_in_flight: usize,
    /// Bytes the peer reported holding above SND.UNA (SACK).
    pub sacked_bytes: usize,
    /// Bytes the sender considers lost and not yet retransmitted.
    pub lost_bytes: usize,
    pub srtt: Option<Duration>,
    pub rto: Duration,
    /// Segments retransmitted so far (RTO, fast retransmit, probes).
    pub retransmits: u64,
    /// The sender's recovery state, e.g. "open", "recovery", "loss".
    pub recovery: &'static str,
}

impl TraceSample {
    pub(crate) fn from_stats(time: Instant, s: &TcpConnStats) -> TraceSample {
        TraceSample {
            time,
            state: s.state.unwrap_or(TcpState::Closed),
            snd_una: s.snd_una,
            snd_nxt: s.snd_nxt,
            rcv_nxt: s.rcv_nxt,
            snd_wnd: s.snd_wnd,
            cwnd: s.cwnd,
            ssthresh: s.ssthresh,
            bytes_in_flight: s.bytes_in_flight,
            sacked_bytes: s.sacked_bytes,
            lost_bytes: s.lost_bytes,
            srtt: s.srtt,
            rto: s.rto,
            retransmits: s.retransmits,
            recovery: s.recovery,
        }
    }

    /// The same point apart from the time.
    fn same_as(&self, other: &TraceSample) -> bool {
        TraceSample {
            time: other.time,
            ..*self
        } == *other
    }
}

/// A connection's recorded samples.
#[derive(Debug)]
pub(crate) struct Trace {
    samples: VecDeque<TraceSample>,
    capacity: usize,
    /// The last sample taken (kept even once drained, to skip repeats).
    last: Option<TraceSample>,
    dropped: u64,
}

impl Trace {
    pub fn new(capacity: usize) -> Trace {
        Trace {
            samples: VecDeque::new(),
            capacity: capacity.max(1),
            last: None,
            dropped: 0,
        }
    }

    pub fn record(&mut self, sample: TraceSample) {
        if self.last.is_some_and(|l| l.same_as(&sample)) {
            return;
        }
        self.last = Some(sample);
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
            self.dropped += 1;
        }
        self.samples.push_back(sample);
    }

    /// Move the samples taken so far to `out`; how many were dropped for
    /// want of room since the last drain.
    pub fn drain(&mut self, out: &mut Vec<TraceSample>) -> u64 {
        out.extend(self.samples.drain(..));
        core::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, snd_nxt: u32) -> TraceSample {
        let s = TcpConnStats {
            state: Some(TcpState::Established),
            snd_nxt,
            ..TcpConnStats::default()
        };
        TraceSample::from_stats(Instant::from_millis(t), &s)
    }

    #[test]
    fn repeats_are_skipped_and_the_oldest_dropped_at_the_bound() {
        let mut t = Trace::new(2);
        t.record(sample(0, 1));
        t.record(sample(1, 1)); // only the time changed
        t.record(sample(2, 2));
        t.record(sample(3, 3)); // pushes out the first
        let mut out = Vec::new();
        assert_eq!(t.drain(&mut out), 1);
        assert_eq!(out.iter().map(|s| s.snd_nxt).collect::<Vec<_>>(), [2, 3]);
        // Drained: a repeat of the last sample is still a repeat.
        t.record(sample(4, 3));
        out.clear();
        assert_eq!(t.drain(&mut out), 0);
        assert!(out.is_empty());
    }
}
