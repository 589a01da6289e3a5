//! The send sequence space of RFC 9293 3.3.1 and the send buffer.
//!
//! ```text
//!      1         2          3          4
//! ----------|----------|----------|----------
//!        SND.UNA    SND.NXT    SND.UNA
//!                             +SND.WND
//! ```
//! 1: acknowledged, 2: sent and not acknowledged, 3: allowed to send,
//! 4: not yet allowed. The buffer holds 2 and whatever of 3 and 4 the
//! application wrote; its first byte is SND.UNA's once the SYN is
//! acknowledged.

use crate::socket::tcp::seq::SeqNumber;
use crate::storage::RingBuffer;

#[derive(Debug)]
pub(super) struct SendSpace {
    /// ISS: our initial sequence number (the SYN's).
    pub iss: SeqNumber,
    /// SND.UNA: the oldest unacknowledged sequence number.
    pub una: SeqNumber,
    /// SND.NXT: the next sequence number to send. It falls back below
    /// `max` after a retransmission timeout (go-back-N).
    pub nxt: SeqNumber,
    /// The highest sequence number sent: RFC 9293's SND.NXT where the
    /// peer's view matters (the acceptable ACK, our ACKs' sequence).
    pub max: SeqNumber,
    /// SND.WND: the peer's window, scaled.
    pub wnd: usize,
    /// The largest window the peer ever offered (RFC 5961 5.2, SWS).
    pub max_wnd: usize,
    /// SND.WL1, SND.WL2: the segment that last updated the window.
    pub wl1: SeqNumber,
    pub wl2: SeqNumber,
    /// The peer's window shift (RFC 7323 2.3), 0 if not negotiated.
    pub wscale: u8,
    /// End of the last sub-MSS segment sent (Minshall's Nagle: only an
    /// unacknowledged *small* segment holds back the next small one).
    pub sml: SeqNumber,
    /// The application shut down writing: send FIN after the data.
    pub fin_queued: bool,
    /// Our FIN's sequence number once sent.
    pub fin_seq: Option<SeqNumber>,
    /// Unacknowledged and unsent data.
    pub buf: RingBuffer,
}

impl SendSpace {
    pub fn new(iss: SeqNumber, buffer: usize) -> Self {
        SendSpace {
            iss,
            una: iss,
            nxt: iss,
            max: iss,
            wnd: 0,
            max_wnd: 0,
            wl1: SeqNumber(0),
            wl2: iss,
            wscale: 0,
            sml: iss,
            fin_queued: false,
            fin_seq: None,
            buf: RingBuffer::new(buffer),
        }
    }

    /// Bytes (and SYN/FIN) sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.max.distance(self.una)
    }

    /// Our FIN is sent and acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.una > f)
    }
}
