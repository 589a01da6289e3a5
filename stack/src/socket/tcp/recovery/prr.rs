//! Proportional Rate Reduction (RFC 6937), as Linux's tcp_cwnd_reduction:
//! during recovery, each ACK lets out data in proportion to what it says
//! was delivered, so that the window comes down to ssthresh smoothly
//! over one round trip instead of stopping dead (RFC 6675's cwnd - pipe
//! with a halved cwnd sends nothing until half the flight has left) or
//! bursting at the end.
//!
//! While pipe is above ssthresh, the proportional part sends ssthresh /
//! RecoverFS of what is delivered; once pipe has fallen to ssthresh, the
//! slow-start reduction bound (PRR-SSRB) lets pipe grow back to
//! ssthresh no faster than slow start would: what was delivered, one
//! SMSS more if the ACK advanced SND.UNA and marked nothing newly lost
//! (Linux's refinement of RFC 6937's "+ MSS").
//!
//! Linux counts in segments; we count bytes, and round the proportional
//! quota up to whole segments as Linux's per-packet ceiling does.

/// One recovery's PRR state (RFC 6937 3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prr {
    /// prr_delivered: bytes delivered to the peer since recovery began.
    pub delivered: usize,
    /// prr_out: bytes sent since recovery began.
    pub out: usize,
    /// RecoverFS: the window before the reduction (Linux prior_cwnd).
    pub recover_fs: usize,
    /// The window PRR allows, pipe + sndcnt as of the last ACK that
    /// delivered data.
    pub cwnd: usize,
}

impl Prr {
    /// Recovery begins with `prior_cwnd` as the window being reduced.
    pub fn new(prior_cwnd: usize, ssthresh: usize) -> Prr {
        Prr {
            delivered: 0,
            out: 0,
            recover_fs: prior_cwnd.max(1),
            cwnd: ssthresh,
        }
    }

    /// RFC 6937 3, on every ACK in recovery: `delivered` bytes newly
    /// acknowledged or SACKed (DeliveredData), `pipe` after the ACK.
    /// `una_advanced` and `newly_lost` select SSRB's extra segment.
    pub fn on_ack(
        &mut self,
        delivered: usize,
        pipe: usize,
        ssthresh: usize,
        mss: usize,
        una_advanced: bool,
        newly_lost: bool,
    ) {
        if delivered == 0 {
            return;
        }
        self.delivered = self.delivered.saturating_add(delivered);
        let sndcnt = if pipe > ssthresh {
            // Proportional: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            let quota = (ssthresh as u128 * self.delivered as u128).div_ceil(self.recover_fs as u128);
            let quota = usize::try_from(quota).unwrap_or(usize::MAX);
            quota.next_multiple_of(mss.max(1)).saturating_sub(self.out)
        } else {
            // PRR-SSRB: MIN(ssthresh - pipe, MAX(prr_delivered - prr_out,
            // DeliveredData) + MSS).
            let mut limit = self.delivered.saturating_sub(self.out).max(delivered);
            if una_advanced && !newly_lost {
                limit += mss;
            }
            (ssthresh - pipe).min(limit)
        };
        // The fast retransmit goes whatever the quota (Linux forces one
        // segment until something was sent).
        let sndcnt = if self.out == 0 { sndcnt.max(mss) } else { sndcnt };
        self.cwnd = pipe + sndcnt;
    }

    /// `len` sequence numbers sent in recovery.
    pub fn on_send(&mut self, len: usize) {
        self.out = self.out.saturating_add(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    #[test]
    fn proportional_half_sends_one_segment_per_two_acks() {
        // cwnd 10 segments halved to 5: every second delivered segment
        // lets one out, the first (the fast retransmit) at once.
        let mut p = Prr::new(10 * MSS, 5 * MSS);
        let mut pipe = 8 * MSS;
        p.on_ack(MSS, pipe, 5 * MSS, MSS, false, false);
        assert_eq!(p.cwnd - pipe, MSS, "the fast retransmit");
        p.on_send(MSS);
        pipe += MSS;
        let mut sent = vec![];
        for _ in 0..6 {
            pipe -= MSS;
            p.on_ack(MSS, pipe, 5 * MSS, MSS, false, false);
            let n = p.cwnd.saturating_sub(pipe) / MSS;
            p.on_send(n * MSS);
            pipe += n * MSS;
            sent.push(n);
        }
        // At the sixth ACK pipe has come down to ssthresh, and SSRB holds
        // it there.
        assert_eq!(sent, vec![0, 1, 0, 1, 0, 0]);
        assert_eq!(pipe, 5 * MSS);
    }

    #[test]
    fn ssrb_grows_back_to_ssthresh_like_slow_start() {
        let mut p = Prr::new(10 * MSS, 5 * MSS);
        p.on_ack(MSS, 8 * MSS, 5 * MSS, MSS, false, false);
        p.on_send(MSS);
        // Much was lost: pipe far below ssthresh. A cumulative ACK of one
        // segment lets out what was delivered and not sent, plus one.
        p.on_ack(MSS, MSS, 5 * MSS, MSS, true, false);
        assert_eq!(p.cwnd - MSS, 2 * MSS);
        p.on_send(2 * MSS);
        // Newly lost: no extra segment.
        p.on_ack(MSS, 2 * MSS, 5 * MSS, MSS, true, true);
        assert_eq!(p.cwnd - 2 * MSS, MSS);
        // Never above ssthresh.
        p.on_ack(4 * MSS, 4 * MSS, 5 * MSS, MSS, true, false);
        assert_eq!(p.cwnd, 5 * MSS);
    }

    #[test]
    fn nothing_delivered_changes_nothing() {
        let mut p = Prr::new(10 * MSS, 5 * MSS);
        p.on_ack(0, 8 * MSS, 5 * MSS, MSS, false, false);
        assert_eq!(p.cwnd, 5 * MSS);
    }
}
