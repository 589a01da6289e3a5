//! The receive sequence space of RFC 9293 3.3.1, the receive buffer and
//! the assembler of out-of-order data.
//!
//! ```text
//!      1          2          3
//! ----------|----------|----------
//!        RCV.NXT    RCV.NXT
//!                  +RCV.WND
//! ```
//! 1: received and acknowledged, 2: allowed to arrive, 3: not yet
//! allowed. In-order data waits in the buffer for the application;
//! out-of-order data sits in the buffer's free space, tracked by `ooo`.

use crate::socket::tcp::seq::SeqNumber;
use crate::storage::{Assembler, RingBuffer};

#[derive(Debug)]
pub(super) struct RecvSpace {
    /// IRS: the peer's initial sequence number.
    pub irs: SeqNumber,
    /// RCV.NXT: the next sequence number expected.
    pub nxt: SeqNumber,
    /// The right edge of the window we last advertised; it never moves
    /// left (RFC 9293 3.8.6.2.2 / RFC 7323 2.4). RCV.WND = adv - nxt.
    pub adv: SeqNumber,
    /// Our window shift (RFC 7323 2.3), 0 if not negotiated.
    pub wscale: u8,
    /// RCV.NXT as of the last ACK we sent (RFC 7323's Last.ACK.sent).
    pub last_ack_sent: SeqNumber,
    pub buf: RingBuffer,
    pub ooo: Assembler,
    /// Where the peer's FIN is, once seen (it may arrive before a hole fills).
    pub fin: Option<SeqNumber>,
    /// A duplicate segment to report in the first SACK block of our next
    /// segment (RFC 2883 D-SACK), `[start, end)`.
    pub dsack: Option<(SeqNumber, SeqNumber)>,
}

impl RecvSpace {
    pub fn new(wscale: u8, buffer: usize, max_ooo_ranges: usize) -> Self {
        RecvSpace {
            irs: SeqNumber(0),
            nxt: SeqNumber(0),
            adv: SeqNumber(0),
            wscale,
            last_ack_sent: SeqNumber(0),
            buf: RingBuffer::new(buffer),
            ooo: Assembler::new(max_ooo_ranges),
            fin: None,
            dsack: None,
        }
    }

    /// RCV.WND as we last advertised it.
    pub fn wnd(&self) -> usize {
        self.adv.distance(self.nxt)
    }

    /// Synchronize with the peer's SYN (RFC 9293 3.10.7.2, 3.10.7.3).
    pub fn on_syn(&mut self, seq: SeqNumber) {
        self.irs = seq;
        self.nxt = seq + 1;
        self.last_ack_sent = self.nxt;
        self.adv = self.nxt;
    }

    /// The peer's FIN has been received in order.
    pub fn fin_received(&self) -> bool {
        self.fin.is_some_and(|f| self.nxt > f)
    }
}
