//! The user calls of RFC 9293 3.10 (SEND, RECEIVE, CLOSE, ABORT) as a
//! connection serves them, and its socket options.

use super::*;
use crate::socket::tcp::CongestionAlgorithm;

impl Connection {
    /// Queue data; returns how much fit.
    pub fn send(&mut self, data: &[u8]) -> usize {
        self.snd.buf.enqueue_slice(data)
    }

    /// "Fill in place": the free part of the send buffer, contiguous.
    pub fn send_buffer(&mut self, max: usize) -> &mut [u8] {
        self.snd.buf.get_unallocated(max)
    }

    pub fn commit_send(&mut self, n: usize) {
        self.snd.buf.enqueue_unallocated(n);
    }

    /// Read in-order data. A window update is sent if reading opened the
    /// window enough (RFC 9293 3.8.6.2.2).
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.rcv.buf.dequeue_slice(buf);
        if n > 0 {
            self.app_read += n as u64;
            self.after_read();
        }
        n
    }

    /// Peek without consuming.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        self.rcv.buf.read_allocated(0, buf)
    }

    /// Contiguous readable bytes, for "consume in place".
    pub fn recv_slice(&self, max: usize) -> &[u8] {
        self.rcv.buf.get_allocated(0, max)
    }

    pub fn consume(&mut self, n: usize) -> usize {
        let n = self.rcv.buf.dequeue_allocated(n);
        if n > 0 {
            self.app_read += n as u64;
            self.after_read();
        }
        n
    }

    /// Out-of-order bytes held (above RCV.NXT).
    pub fn ooo_bytes(&self) -> usize {
        self.rcv.ooo.total_bytes()
    }

    /// Forget the out-of-order data of a connection that is over: it can
    /// never be delivered. Returns how many bytes that was.
    pub fn discard_ooo(&mut self) -> usize {
        let n = self.rcv.ooo.total_bytes();
        self.rcv.ooo.clear();
        n
    }

    /// Out-of-order segments dropped because the stack-wide budget was
    /// spent.
    pub fn ooo_budget_drops(&self) -> u64 {
        self.stats.ooo_budget_drops
    }

    /// Out-of-order segments dropped at `TcpConfig::max_ooo_ranges`.
    pub fn ooo_range_drops(&self) -> u64 {
        self.stats.ooo_range_drops
    }

    /// How many more out-of-order bytes the stack lets this connection
    /// hold (set before each segment is processed).
    pub fn set_ooo_room(&mut self, room: usize) {
        self.ooo_room = room;
    }

    pub fn recv_queued(&self) -> usize {
        self.rcv.buf.len()
    }

    pub(super) fn after_read(&mut self) {
        if (self.state.is_synchronized() || self.state == TcpState::SynReceived) && !self.peer_closed() {
            // RFC 9293 3.8.6.2.2 says by how much the window may open; a
            // read is worth an ACK of its own only when that at least
            // doubles the window (Linux, tcp_cleanup_rbuf): a sender with
            // half its window or more left is not waiting for it, and the
            // next ACK carries the larger window anyway.
            let (wnd, grows) = self.window_to_advertise();
            let current = self.rcv.wnd();
            if grows && wnd >= 2 * current {
                self.owed.insert(Owed::ACK);
            }
            // The every-second-segment ACK that input held back while the
            // data sat unread (Linux tcp_cleanup_rbuf, "once-per-two-
            // segments ACK was not sent by tcp_input.c").
            if self.ack.scheduled && self.rcv.nxt.distance(self.rcv.last_ack_sent) > self.ack.rcv_mss {
                self.owed.insert(Owed::ACK);
            }
        }
    }

    /// Half-close (shutdown(SHUT_WR)): FIN after the queued data.
    pub fn shutdown_write(&mut self) {
        match self.state {
            TcpState::SynSent => {
                self.set_state(TcpState::Closed);
            }
            TcpState::SynReceived | TcpState::Established => {
                self.snd.fin_queued = true;
                if self.state == TcpState::Established {
                    self.set_state(TcpState::FinWait1);
                }
            }
            TcpState::CloseWait => {
                self.snd.fin_queued = true;
                self.set_state(TcpState::LastAck);
            }
            _ => {}
        }
    }

    /// Abort: RFC 9293 3.10.5 ABORT. Returns the RST to send, if the peer
    /// knows of this connection.
    pub fn abort(&mut self, now: Instant) -> Option<TcpRepr> {
        let rst = match self.state {
            TcpState::SynReceived
            | TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait => Some(self.active_rst(now)),
            _ => None,
        };
        self.set_state(TcpState::Closed);
        rst
    }

    /// Data arrived after the application closed its socket: nobody will
    /// read it, so reset (RFC 1122 4.2.2.13, RFC 2525 2.17; Linux resets
    /// in FIN-WAIT-1/2 after close, tcp_rcv_state_process). Returns the RST.
    pub fn reset_unreadable(&mut self, now: Instant) -> TcpRepr {
        let rst = self.active_rst(now);
        self.error = Some(SocketError::ConnectionReset);
        self.set_state(TcpState::Closed);
        rst
    }

    /// The RST we send when we give up on a connection ourselves: RFC 9293
    /// 3.10.5's <SEQ=SND.NXT><CTL=RST>, with the ACK bit, RCV.NXT and our
    /// timestamp as Linux's tcp_send_active_reset sends it (so a peer in
    /// any state, SYN-SENT included, finds it acceptable).
    pub(super) fn active_rst(&self, now: Instant) -> TcpRepr {
        // RFC 5961 3.2: the peer takes a RST only at exactly its RCV.NXT,
        // and drops one outside its window; see acceptable_seq.
        let mut rst = self.rst_repr(self.acceptable_seq(), Some(self.rcv.nxt));
        if let Some(ts) = self.opt.ts {
            rst.options.timestamps = Some((self.tsval(now), ts.recent));
        }
        rst
    }

    pub fn set_option(&mut self, now: Instant, opt: TcpOption) {
        match opt {
            TcpOption::NoDelay(on) => self.nodelay = on,
            TcpOption::KeepAlive(on) => {
                self.keepalive.enabled = on;
                self.keepalive.probes_sent = 0;
                self.timers[Timer::Keepalive] = on.then(|| now + self.keepalive.idle);
            }
            TcpOption::KeepIdle(d) => {
                self.keepalive.idle = d;
                if self.keepalive.enabled {
                    self.timers[Timer::Keepalive] = Some(self.last_recv + d);
                }
            }
            TcpOption::KeepInterval(d) => self.keepalive.interval = d,
            TcpOption::KeepCount(n) => self.keepalive.count = n.max(1),
            TcpOption::UserTimeout(d) => self.user_timeout = (!d.is_zero()).then_some(d),
            TcpOption::RecvBuffer(n) => {
                // SO_RCVBUF fixes the size: no autotuning (Linux
                // SOCK_RCVBUF_LOCK).
                self.rcv_buf_locked = true;
                // Never below what the buffer holds, out-of-order data
                // included: it is in our SACK blocks, and once the hole
                // fills RCV.NXT moves past it and our ACK tells the sender
                // it was delivered (RFC 9293 3.10.7.4 seventh step), so it
                // must still be there. Linux does not drop queued data when
                // sk_rcvbuf is lowered either.
                //
                // Nor below the window already advertised: RFC 9293 3.8.6
                // and RFC 7323 2.4 (rule 1) have the receiver accept what
                // fits the window it offered, and a buffer smaller than that
                // dropped every in-window segment while the sender
                // retransmitted until it gave up. The window then closes as
                // the data arrives. And, as Linux (SOCK_MIN_RCVBUF), never
                // below a minimum.
                let ooo_end = self.rcv.ooo.ranges().last().map_or(0, |(_, end)| end);
                let beyond_nxt = ooo_end.max(self.rcv.wnd());
                let _ = self
                    .rcv
                    .buf
                    .resize(n.max(MIN_RECV_BUFFER).max(self.rcv.buf.len() + beyond_nxt));
                // Before our SYN (or SYN-ACK) goes, the window scale we offer
                // follows the buffer: RFC 7323 2.2 picks the shift from the
                // largest window we may offer, and Linux clamps it by a
                // locked SO_RCVBUF (tcp_select_initial_window).
                if self.nothing_sent() && self.opt.offered.window_scale.is_some() {
                    self.rcv.wscale = wscale_for(self.rcv.buf.capacity());
                    self.opt.offered.window_scale = Some(self.rcv.wscale);
                }
            }
            TcpOption::SendBuffer(n) => {
                // SO_SNDBUF fixes the size: no autotuning (Linux
                // SOCK_SNDBUF_LOCK).
                self.snd_buf_locked = true;
                let _ = self.snd.buf.resize(n.max(self.snd.buf.len()));
            }
            TcpOption::QuickAck(on) => {
                // Linux __tcp_sock_set_quickack.
                self.ack.pingpong = !on;
                if on && self.timers[Timer::DelayedAck].is_some() {
                    self.owed.insert(Owed::ACK);
                }
            }
            TcpOption::Linger2(d) => self.linger2 = d,
            TcpOption::Cork(on) => self.cork = on,
            TcpOption::Tos(tos) => self.ip_tos = tos,
            TcpOption::PmtuDiscover(mode) => self.pmtu_discover = mode,
            TcpOption::SynCount(n) => self.syn_retries = u32::from(n.clamp(1, 127)),
            TcpOption::Congestion(algo) if algo != self.congestion_algorithm() => {
                let mut cc = algo.controller(self.cc.window(), self.cfg.hystart);
                // Before any data, the new controller starts afresh (its
                // initial window still follows the MSS); after, it takes
                // over the window.
                if self.snd.max > self.snd.iss + 1 {
                    cc.take_over(self.cc.window(), self.cc.ssthresh());
                }
                self.cc = cc;
            }
            TcpOption::Congestion(_) => {}
            TcpOption::DeferAccept(d) => {
                self.defer_accept = secs_to_retrans(d, self.cfg.rto_initial, self.cfg.rto_max);
            }
            TcpOption::MaxSegment(n) => {
                self.opt.user_mss = Some(usize::from(n).max(64));
                // The MSS we advertise is clamped too while our SYN or
                // SYN-ACK has not gone (a listener's option reaches its
                // connections here; Linux: tcp_mss_clamp on advmss).
                if self.state == TcpState::Closed || self.state == TcpState::SynSent || self.nothing_sent() {
                    self.opt.our_mss = self.opt.our_mss.min(usize::from(n).max(64));
                    self.opt.offered.mss = Some(self.opt.our_mss as u16);
                }
            }
        }
    }

    /// Neither SYN nor SYN-ACK has been sent yet: what we offer in it may
    /// still change.
    pub(super) fn nothing_sent(&self) -> bool {
        matches!(
            self.state,
            TcpState::Closed | TcpState::SynSent | TcpState::SynReceived
        ) && self.snd.max == self.snd.iss
    }

    pub fn congestion_algorithm(&self) -> CongestionAlgorithm {
        CongestionAlgorithm::from_name(self.cc.name()).unwrap_or_default()
    }

    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    pub fn pingpong(&self) -> bool {
        self.ack.pingpong
    }

    pub fn cork(&self) -> bool {
        self.cork
    }

    pub fn ip_tos(&self) -> u8 {
        self.ip_tos
    }

    pub fn pmtu_discover(&self) -> PmtuDiscover {
        self.pmtu_discover
    }

    /// The IPv4 header fields the socket chose for its segments.
    pub(crate) fn ip_tx(&self) -> IpTx {
        IpTx {
            tos: self.ip_tos,
            dont_fragment: self.pmtu_discover.dont_fragment(),
        }
    }

    pub fn syn_retries(&self) -> u32 {
        self.syn_retries
    }

    pub fn linger2(&self) -> Option<Duration> {
        self.linger2
    }

    pub fn defer_accept(&self) -> Duration {
        retrans_to_secs(self.defer_accept, self.cfg.rto_initial, self.cfg.rto_max)
    }

    pub fn keepalive_enabled(&self) -> bool {
        self.keepalive.enabled
    }

    pub fn keepalive_idle(&self) -> Duration {
        self.keepalive.idle
    }

    pub fn keepalive_interval(&self) -> Duration {
        self.keepalive.interval
    }

    pub fn keepalive_count(&self) -> u32 {
        self.keepalive.count
    }

    /// Zero when off, as Linux's TCP_USER_TIMEOUT reads back.
    pub fn user_timeout(&self) -> Duration {
        self.user_timeout.unwrap_or(Duration::ZERO)
    }

    pub fn rx_capacity(&self) -> usize {
        self.rcv.buf.capacity()
    }

    pub fn tx_capacity(&self) -> usize {
        self.snd.buf.capacity()
    }
}
