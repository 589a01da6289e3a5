//! LISTEN (RFC 9293 3.10.7.2): a listener's SYN queue (connections in
//! SYN-RECEIVED) and accept queue (established, not yet accepted), both
//! bounded by the backlog. SYN cookies will go here.

use super::conn::Connection;
use super::seq::SeqNumber;
use super::table::{Cx, TcpTable};
use super::TcpOption;
use crate::socket::SocketHandle;
use crate::time::Instant;
use crate::wire::TcpRepr;
use core::net::SocketAddrV4;
use std::collections::VecDeque;

pub(crate) struct Listener {
    pub port: u16,
    pub backlog: usize,
    /// Embryonic connections (SYN-RECEIVED).
    pub syn_queue: Vec<SocketHandle>,
    /// Established, waiting for `accept`.
    pub accept_queue: VecDeque<SocketHandle>,
    /// Given to every connection it accepts.
    pub options: Vec<TcpOption>,
}

impl Listener {
    pub fn new(port: u16, backlog: usize, options: Vec<TcpOption>) -> Self {
        Listener {
            port,
            backlog,
            syn_queue: Vec::new(),
            accept_queue: VecDeque::new(),
            options,
        }
    }

    /// No room for one more established connection: Linux leaves the
    /// handshake's final ACK unprocessed then.
    pub fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() >= self.backlog
    }

    /// No room for one more SYN (SYN cookies come later).
    fn full(&self) -> bool {
        self.syn_queue.len() >= self.backlog || self.accept_queue_full()
    }

    /// A connection of ours completed its handshake.
    pub fn established(&mut self, h: SocketHandle) {
        self.syn_queue.retain(|c| *c != h);
        self.accept_queue.push_back(h);
    }

    /// A connection of ours is gone.
    pub fn forget(&mut self, h: SocketHandle) {
        self.syn_queue.retain(|c| *c != h);
        self.accept_queue.retain(|c| *c != h);
    }
}

impl TcpTable {
    /// RFC 9293 3.10.7.2, LISTEN. `reopen_isn`: the SYN reopens a 4-tuple
    /// in TIME-WAIT, and the new connection starts at this ISN.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn listen_input(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        l: SocketHandle,
        remote: SocketAddrV4,
        repr: &TcpRepr,
        len: usize,
        reopen_isn: Option<SeqNumber>,
    ) {
        // First: a RST is ignored. Second: an ACK gets <SEQ=SEG.ACK><CTL=RST>.
        if repr.flags.rst() {
            cx.stats.tcp_listen_bad_segment += 1;
            return;
        }
        if repr.flags.ack() {
            cx.stats.tcp_listen_bad_segment += 1;
            self.reset_closed(cx, *remote.ip(), repr, len);
            return;
        }
        if !repr.flags.syn() {
            cx.stats.tcp_listen_bad_segment += 1;
            return;
        }
        if repr.flags.fin() {
            // SYN+FIN: RFC 9293 would open the connection and process the
            // FIN later, but no real client sends it; it is a scanner's
            // probe (an OS fingerprint or a filter evasion). Linux drops it
            // unanswered (tcp_rcv_state_process), and so do we.
            cx.stats.tcp_listen_bad_segment += 1;
            return;
        }
        let Some(li) = cx.listener(l) else { return };
        if li.full() {
            // Dropped: the peer retransmits its SYN.
            cx.stats.tcp_listen_overflow += 1;
            return;
        }
        let (port, options) = (li.port, li.options.clone());
        let Ok(h) = self.socket(cx) else {
            cx.stats.tcp_listen_overflow += 1;
            return;
        };
        let local = SocketAddrV4::new(cx.config.ipv4.addr, port);
        let mut ep = self.endpoints(cx, now, local, remote);
        if let Some(isn) = reopen_isn {
            ep.iss = isn;
        }
        let mut conn = Connection::accept_syn(now, &cx.config.tcp, ep, repr);
        for o in options {
            conn.set_option(now, o);
        }
        self.install(cx, h, conn, Some(l));
        if let Some(li) = cx.listener(l) {
            li.syn_queue.push(h);
        }
        tracing::debug!(%h, %remote, "tcp SYN received");
        self.refresh(cx, h);
    }
}
