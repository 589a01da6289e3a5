//! Congestion control behind a small trait (RFC 5681): CUBIC (RFC 9438,
//! the default, as Linux) and Reno.
//!
//! The trait says what happened (data acknowledged, a congestion event, the
//! end of recovery, a timeout) and reads back the window; it does not say
//! how loss recovery sends. RFC 5681's window inflation during fast
//! recovery is the recovery's business (the connection adds it to the
//! window while recovering), so a controller like CUBIC (RFC 9438) or a
//! model-based one sets its window without knowing about it.
//!
//! The controller never reads a clock: the time of each event comes in as
//! an argument (the stack's virtual time), with the RTT the connection
//! measured. Room for a model-based controller (BBR): [`AckEvent`] is where
//! a delivery-rate sample (draft-cheng-iccrg-delivery-rate-estimation, as
//! Linux's tcp_rate.c) goes once the connection computes one, and
//! [`CongestionControl::pacing_rate`] is what such a controller hands the
//! output path; the connection does not pace yet.

mod cubic;
mod reno;

pub(crate) use cubic::Cubic;
pub(crate) use reno::Reno;

use super::seq::SeqNumber;
use crate::time::{Duration, Instant};
use core::fmt::Debug;

/// The congestion control algorithms a connection can use (Linux's
/// TCP_CONGESTION names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionAlgorithm {
    /// RFC 5681 Reno with RFC 3465 byte counting.
    #[default]
    Reno,
    /// RFC 9438 CUBIC.
    Cubic,
}

impl CongestionAlgorithm {
    /// Every algorithm, for parsing names.
    pub const ALL: [CongestionAlgorithm; 2] = [CongestionAlgorithm::Reno, CongestionAlgorithm::Cubic];

    /// The name Linux's TCP_CONGESTION uses.
    pub fn name(self) -> &'static str {
        match self {
            CongestionAlgorithm::Reno => "reno",
            CongestionAlgorithm::Cubic => "cubic",
        }
    }

    /// The algorithm of this TCP_CONGESTION name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// A controller of this algorithm starting from `initial` bytes.
    pub(crate) fn controller(self, initial: usize) -> Box<dyn CongestionControl> {
        match self {
            CongestionAlgorithm::Reno => Box::new(Reno::new(initial)),
            CongestionAlgorithm::Cubic => Box::new(Cubic::new(initial)),
        }
    }
}

impl core::fmt::Display for CongestionAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for CongestionAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or(UnknownAlgorithm)
    }
}

/// A TCP_CONGESTION name that names no algorithm we have (Linux: ENOENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAlgorithm;

impl core::fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown congestion control algorithm (reno, cubic)")
    }
}

impl std::error::Error for UnknownAlgorithm {}

/// What one ACK of new data tells the controller. All sizes in bytes.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // rtt, una, snd_max: for HyStart++ (next).
pub(crate) struct AckEvent {
    pub now: Instant,
    /// Bytes of new data this ACK acknowledged (RFC 3465 byte counting).
    pub acked: usize,
    /// The sender's SMSS (payload bytes per full segment).
    pub mss: usize,
    /// The RTT sample this ACK gave, if any (RFC 7323 timestamps, or the
    /// timed segment of RFC 6298 3).
    pub rtt: Option<Duration>,
    /// The smoothed RTT after this ACK (RFC 6298), once there is one.
    pub srtt: Option<Duration>,
    /// SND.UNA after this ACK, and the highest sequence number sent
    /// (RFC 9406 4.2 counts rounds by them).
    pub una: SeqNumber,
    pub snd_max: SeqNumber,
    /// Whether the sender was using its window when the ACK came (RFC
    /// 7661; Linux tcp_is_cwnd_limited): an application-limited sender
    /// must not grow the window.
    pub cwnd_limited: bool,
    // now, rtt, una and snd_max feed CUBIC's curve and HyStart++'s rounds.
    // A delivery-rate sample (delivered bytes over the interval, and
    // whether the interval was application-limited) belongs here for BBR.
}

/// What a congestion controller sees of a connection. All sizes in bytes.
pub(crate) trait CongestionControl: Debug + Send {
    /// The congestion window.
    fn window(&self) -> usize;
    fn ssthresh(&self) -> usize;
    /// The initial window in bytes for the sender's MSS, once the handshake
    /// has settled it (RFC 6928: the IW is a number of segments). Ignored
    /// once any data was acknowledged or lost.
    fn set_initial_window(&mut self, bytes: usize);
    /// An ACK of new data outside recovery, whether or not the sender was
    /// using its window (`ack.cwnd_limited`).
    fn on_ack(&mut self, ack: &AckEvent);
    /// Loss detected without a timeout (three duplicate ACKs): a congestion
    /// event (RFC 5681 3.2 step 2; RFC 9438 4.6). `in_flight` is the
    /// FlightSize.
    fn on_congestion_event(&mut self, now: Instant, in_flight: usize, mss: usize);
    /// The recovery that followed a congestion event is over.
    fn on_recovery_end(&mut self, now: Instant);
    /// The retransmission timer expired (RFC 5681 3.1 equation 4, then
    /// restart from one segment).
    fn on_rto(&mut self, now: Instant, in_flight: usize, mss: usize);
    /// The rate, in bytes per second, at which the output path should pace
    /// segments; `None` sends as the window allows (ACK clocking). A
    /// model-based controller (BBR) sets it.
    #[allow(dead_code)] // BBR's; the output path does not pace yet.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// The name Linux's TCP_CONGESTION uses.
    fn name(&self) -> &'static str;
}

#[cfg(test)]
impl AckEvent {
    /// A cwnd-limited ACK of `acked` bytes without an RTT sample.
    pub(crate) fn test(now: Instant, acked: usize, mss: usize) -> Self {
        AckEvent {
            now,
            acked,
            mss,
            rtt: None,
            srtt: None,
            una: SeqNumber(0),
            snd_max: SeqNumber(0),
            cwnd_limited: true,
        }
    }
}
