//! Congestion control behind a small trait (RFC 5681). Reno is the first
//! controller; CUBIC and PRR come with loss recovery.
//!
//! The trait says what happened (data acknowledged, a congestion event, the
//! end of recovery, a timeout) and reads back the window; it does not say
//! how loss recovery sends. RFC 5681's window inflation during fast
//! recovery is the recovery's business (the connection adds it to the
//! window while recovering), so a controller like CUBIC (RFC 9438) or a
//! model-based one sets its window without knowing about it.

mod reno;

pub(crate) use reno::Reno;

use core::fmt::Debug;

/// What a congestion controller sees of a connection. All sizes in bytes.
pub(crate) trait CongestionControl: Debug + Send {
    /// The congestion window.
    fn window(&self) -> usize;
    fn ssthresh(&self) -> usize;
    /// The initial window in bytes for the sender's MSS, once the handshake
    /// has settled it (RFC 6928: the IW is a number of segments). Ignored
    /// once any data was acknowledged or lost.
    fn set_initial_window(&mut self, bytes: usize);
    /// `acked` bytes of new data were acknowledged, outside recovery, while
    /// the sender was using its window (RFC 7661).
    fn on_ack(&mut self, acked: usize, mss: usize);
    /// Loss detected without a timeout (three duplicate ACKs): a congestion
    /// event (RFC 5681 3.2 step 2; RFC 9438 4.6). `in_flight` is the
    /// FlightSize.
    fn on_congestion_event(&mut self, in_flight: usize, mss: usize);
    /// The recovery that followed a congestion event is over.
    fn on_recovery_end(&mut self);
    /// The retransmission timer expired (RFC 5681 3.1 equation 4, then
    /// restart from one segment).
    fn on_rto(&mut self, in_flight: usize, mss: usize);
    fn name(&self) -> &'static str;
}
