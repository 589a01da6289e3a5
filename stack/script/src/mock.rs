//! A toy TCP, just enough to exercise the runner: handshakes both ways,
//! data acknowledged at once, MSS-sized segments, FIN and RST, a SYN-ACK
//! retransmission timer and timestamps. Not a model of correct TCP.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::collections::VecDeque;

use super::frame::{decode_frame, encode_arp, encode_tcp_frame, ArpPacket, Frame, Ipv4Meta, TcpFlags};
use super::frame::{TcpOption, TcpSegment};
use super::host::{Errno, Readiness, ScriptHost, Shutdown, SockOpt};
use tapir_stack::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Listen,
    SynSent,
    SynRcvd,
    Established,
    FinWait,
    CloseWait,
    LastAck,
}

#[derive(Debug)]
struct Sock {
    state: State,
    local_port: u16,
    remote: Option<SocketAddrV4>,
    snd_nxt: u32,
    rcv_nxt: u32,
    rx: usize,
    rx_fin: bool,
    accept_q: VecDeque<usize>,
    parent: Option<usize>,
    /// The peer's last TS val, when it sent timestamps.
    ts_recent: Option<u32>,
    error: Option<Errno>,
    nodelay: i64,
}

impl Sock {
    fn new() -> Self {
        Sock {
            state: State::Closed,
            local_port: 0,
            remote: None,
            snd_nxt: 0,
            rcv_nxt: 0,
            rx: 0,
            rx_fin: false,
            accept_q: VecDeque::new(),
            parent: None,
            ts_recent: None,
            error: None,
            nodelay: 0,
        }
    }
}

pub(super) struct MockHost {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Learn the peer's MAC from its ARP request; when false the mock
    /// ARPs before its first packet.
    pub learn_from_request: bool,
    /// Retransmit an unacknowledged SYN-ACK after this long (doubling).
    pub synack_rto: Duration,
    /// Misbehave: acknowledge one byte too many in the SYN-ACK.
    pub bad_synack_ack: bool,
    /// Misbehave: answer a RST for no connection with a RST.
    pub rst_for_rst: bool,
    /// Inbound TS ecr values seen, to check the runner's mapping.
    pub ecrs_seen: Vec<u32>,
    peer_mac: Option<[u8; 6]>,
    arp_pending: bool,
    waiting: Vec<(Ipv4Addr, TcpSegment)>,
    out: VecDeque<Vec<u8>>,
    socks: Vec<Sock>,
    /// (deadline, socket, current rto)
    timer: Option<(Instant, usize, Duration)>,
    next_port: u16,
    ident: u16,
    now: Instant,
}

const SERVER_ISN: u32 = 1_000_000;
const CLIENT_ISN: u32 = 5_000_000;
const MSS: usize = 1460;

impl MockHost {
    pub fn new() -> Self {
        MockHost {
            ip: Ipv4Addr::new(10, 77, 0, 2),
            mac: [0x02, 0, 0, 0x77, 0, 0x02],
            learn_from_request: true,
            synack_rto: Duration::from_secs(1),
            bad_synack_ack: false,
            rst_for_rst: false,
            ecrs_seen: Vec::new(),
            peer_mac: None,
            arp_pending: false,
            waiting: Vec::new(),
            out: VecDeque::new(),
            socks: Vec::new(),
            timer: None,
            next_port: 40000,
            ident: 1,
            now: Instant::ZERO,
        }
    }

    fn ts_val(&self) -> u32 {
        self.now.total_millis() as u32 + 7
    }

    fn send(&mut self, i: usize, flags: TcpFlags, seq: u32, len: usize, mut options: Vec<TcpOption>) {
        let s = &self.socks[i];
        let remote = s.remote.expect("connected");
        if let Some(ecr) = s.ts_recent {
            options.extend([TcpOption::Nop, TcpOption::Nop]);
            options.push(TcpOption::Timestamp {
                val: self.ts_val(),
                ecr,
            });
        }
        let seg = TcpSegment {
            src_port: s.local_port,
            dst_port: remote.port(),
            seq,
            ack: if flags.ack { s.rcv_nxt } else { 0 },
            flags,
            reserved: 0,
            window: if flags.rst { 0 } else { 65535 },
            urgent: 0,
            options,
            options_len: 0,
            payload: vec![0; len],
        };
        self.emit(*remote.ip(), seg);
    }

    fn emit(&mut self, dst: Ipv4Addr, seg: TcpSegment) {
        let Some(peer_mac) = self.peer_mac else {
            self.waiting.push((dst, seg));
            if !self.arp_pending {
                self.arp_pending = true;
                let arp = ArpPacket {
                    op: 1,
                    sender_mac: self.mac,
                    sender_ip: self.ip,
                    target_mac: [0; 6],
                    target_ip: dst,
                };
                self.out.push_back(encode_arp([0xff; 6], self.mac, &arp));
            }
            return;
        };
        let ip = Ipv4Meta {
            src: self.ip,
            dst,
            tos: 0,
            ttl: 64,
            ident: self.ident,
        };
        self.ident = self.ident.wrapping_add(1);
        self.out
            .push_back(encode_tcp_frame(peer_mac, self.mac, &ip, &seg));
    }

    fn flags(s: &str) -> TcpFlags {
        TcpFlags {
            fin: s.contains('F'),
            syn: s.contains('S'),
            rst: s.contains('R'),
            psh: s.contains('P'),
            ack: s.contains('.'),
            ..TcpFlags::default()
        }
    }

    fn send_synack(&mut self, i: usize) {
        let seq = self.socks[i].snd_nxt.wrapping_sub(1);
        if self.bad_synack_ack {
            self.socks[i].rcv_nxt += 1;
        }
        self.send(i, Self::flags("S."), seq, 0, vec![TcpOption::Mss(MSS as u16)]);
        if self.bad_synack_ack {
            self.socks[i].rcv_nxt -= 1;
        }
    }

    fn tcp_input(&mut self, src: Ipv4Addr, seg: TcpSegment) {
        let remote = SocketAddrV4::new(src, seg.src_port);
        let peer_ts = seg.options.iter().find_map(|o| match o {
            TcpOption::Timestamp { val, ecr } => Some((*val, *ecr)),
            _ => None,
        });
        if let Some((_, ecr)) = peer_ts.filter(|_| seg.flags.ack) {
            self.ecrs_seen.push(ecr);
        }
        let conn = self.socks.iter().position(|s| {
            s.local_port == seg.dst_port && s.remote == Some(remote) && s.state != State::Closed
        });
        let Some(i) = conn else {
            self.no_connection(src, &seg, peer_ts);
            return;
        };
        if let Some((val, _)) = peer_ts {
            self.socks[i].ts_recent = Some(val);
        }
        if seg.flags.rst {
            let s = &mut self.socks[i];
            s.error = Some(if s.state == State::SynSent {
                Errno::ECONNREFUSED
            } else {
                Errno::ECONNRESET
            });
            s.state = State::Closed;
            return;
        }
        let len = seg.payload.len();
        match self.socks[i].state {
            State::SynSent if seg.flags.syn && seg.flags.ack => {
                let s = &mut self.socks[i];
                s.rcv_nxt = seg.seq.wrapping_add(1);
                s.state = State::Established;
                let nxt = s.snd_nxt;
                self.send(i, Self::flags("."), nxt, 0, Vec::new());
            }
            State::SynRcvd if seg.flags.ack && seg.ack == self.socks[i].snd_nxt => {
                self.socks[i].state = State::Established;
                self.timer = None;
                if let Some(p) = self.socks[i].parent {
                    self.socks[p].accept_q.push_back(i);
                }
                if len > 0 || seg.flags.fin {
                    self.data_input(i, &seg);
                }
            }
            State::Established | State::FinWait | State::CloseWait | State::LastAck => {
                if seg.flags.ack && self.socks[i].state == State::LastAck && seg.ack == self.socks[i].snd_nxt
                {
                    self.socks[i].state = State::Closed;
                    return;
                }
                if len > 0 || seg.flags.fin {
                    self.data_input(i, &seg);
                }
            }
            _ => {}
        }
    }

    /// A segment for no connection: a SYN to a listener opens one, a RST
    /// is dropped, anything else is reset.
    fn no_connection(&mut self, src: Ipv4Addr, seg: &TcpSegment, peer_ts: Option<(u32, u32)>) {
        let listener = self
            .socks
            .iter()
            .position(|s| s.local_port == seg.dst_port && s.state == State::Listen);
        match listener {
            Some(l) if seg.flags.syn && !seg.flags.ack => {
                let mut c = Sock::new();
                c.state = State::SynRcvd;
                c.local_port = seg.dst_port;
                c.remote = Some(SocketAddrV4::new(src, seg.src_port));
                c.rcv_nxt = seg.seq.wrapping_add(1);
                c.snd_nxt = SERVER_ISN.wrapping_add(1);
                c.parent = Some(l);
                c.ts_recent = peer_ts.map(|t| t.0);
                self.socks.push(c);
                let i = self.socks.len() - 1;
                self.send_synack(i);
                self.timer = Some((self.now + self.synack_rto, i, self.synack_rto));
            }
            _ if seg.flags.rst && !self.rst_for_rst => {}
            _ => self.reset(src, seg),
        }
    }

    fn data_input(&mut self, i: usize, seg: &TcpSegment) {
        let s = &mut self.socks[i];
        if seg.seq != s.rcv_nxt {
            let nxt = s.snd_nxt;
            self.send(i, Self::flags("."), nxt, 0, Vec::new());
            return;
        }
        s.rcv_nxt = s.rcv_nxt.wrapping_add(seg.payload.len() as u32);
        s.rx += seg.payload.len();
        if seg.flags.fin {
            s.rcv_nxt = s.rcv_nxt.wrapping_add(1);
            s.rx_fin = true;
            if s.state == State::Established {
                s.state = State::CloseWait;
            }
        }
        let nxt = s.snd_nxt;
        self.send(i, Self::flags("."), nxt, 0, Vec::new());
    }

    fn reset(&mut self, src: Ipv4Addr, seg: &TcpSegment) {
        let (flags, seq, ack) = if seg.flags.ack {
            (Self::flags("R"), seg.ack, 0)
        } else {
            let len = seg.payload.len() as u32 + u32::from(seg.flags.syn) + u32::from(seg.flags.fin);
            (Self::flags("R."), 0, seg.seq.wrapping_add(len))
        };
        let rst = TcpSegment {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq,
            ack,
            flags,
            reserved: 0,
            window: 0,
            urgent: 0,
            options: Vec::new(),
            options_len: 0,
            payload: Vec::new(),
        };
        self.emit(src, rst);
    }

    fn send_fin(&mut self, i: usize) {
        let nxt = self.socks[i].snd_nxt;
        self.send(i, Self::flags("F."), nxt, 0, Vec::new());
        self.socks[i].snd_nxt = nxt.wrapping_add(1);
    }
}

impl ScriptHost for MockHost {
    type Handle = usize;

    fn local_ip(&self) -> Ipv4Addr {
        self.ip
    }

    fn local_mac(&self) -> [u8; 6] {
        self.mac
    }

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.now = now;
        match decode_frame(frame) {
            Frame::Arp(a) if a.op == 1 && a.target_ip == self.ip => {
                if self.learn_from_request {
                    self.peer_mac = Some(a.sender_mac);
                }
                let reply = ArpPacket {
                    op: 2,
                    sender_mac: self.mac,
                    sender_ip: self.ip,
                    target_mac: a.sender_mac,
                    target_ip: a.sender_ip,
                };
                self.out.push_back(encode_arp(a.sender_mac, self.mac, &reply));
            }
            Frame::Arp(a) if a.op == 2 => {
                self.peer_mac = Some(a.sender_mac);
                self.arp_pending = false;
                for (dst, seg) in std::mem::take(&mut self.waiting) {
                    self.emit(dst, seg);
                }
            }
            Frame::Tcp {
                ip,
                tcp_checksum_ok: true,
                ip_checksum_ok: true,
                seg,
                ..
            } if ip.dst == self.ip => self.tcp_input(ip.src, seg),
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Some((at, i, rto)) = self.timer {
            if at <= now {
                if self.socks[i].state == State::SynRcvd {
                    self.send_synack(i);
                    self.timer = Some((now + rto * 2, i, rto * 2));
                } else {
                    self.timer = None;
                }
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.now = now;
        let f = self.out.pop_front()?;
        buf[..f.len()].copy_from_slice(&f);
        Some(f.len())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer.map(|t| t.0)
    }

    fn socket(&mut self, _now: Instant) -> Result<usize, Errno> {
        self.socks.push(Sock::new());
        Ok(self.socks.len() - 1)
    }

    fn bind(&mut self, _now: Instant, h: usize, port: u16) -> Result<(), Errno> {
        if self
            .socks
            .iter()
            .any(|s| s.local_port == port && s.state == State::Listen)
        {
            return Err(Errno::EADDRINUSE);
        }
        self.socks[h].local_port = port;
        Ok(())
    }

    fn listen(&mut self, _now: Instant, h: usize, _backlog: u32) -> Result<(), Errno> {
        self.socks[h].state = State::Listen;
        Ok(())
    }

    fn accept(&mut self, _now: Instant, h: usize) -> Result<usize, Errno> {
        self.socks[h].accept_q.pop_front().ok_or(Errno::EAGAIN)
    }

    fn connect(&mut self, now: Instant, h: usize, remote: SocketAddrV4) -> Result<(), Errno> {
        self.now = now;
        let s = &mut self.socks[h];
        match s.state {
            State::SynSent => return Err(Errno::EALREADY),
            State::Established | State::CloseWait => return Err(Errno::EISCONN),
            State::Closed if s.error.is_some() => return Err(s.error.take().expect("checked")),
            State::Closed => {}
            _ => return Err(Errno::EINVAL),
        }
        if s.local_port == 0 {
            s.local_port = self.next_port;
            self.next_port += 1;
        }
        s.remote = Some(remote);
        s.state = State::SynSent;
        s.snd_nxt = CLIENT_ISN.wrapping_add(1);
        self.send(
            h,
            Self::flags("S"),
            CLIENT_ISN,
            0,
            vec![TcpOption::Mss(MSS as u16)],
        );
        Err(Errno::EINPROGRESS)
    }

    fn write(&mut self, now: Instant, h: usize, data: &[u8]) -> Result<usize, Errno> {
        self.now = now;
        match self.socks[h].state {
            State::Established | State::CloseWait => {}
            State::Closed if self.socks[h].error.is_some() => {
                return Err(self.socks[h].error.take().expect("checked"))
            }
            _ => return Err(Errno::EPIPE),
        }
        let chunks: Vec<usize> = data.chunks(MSS).map(<[u8]>::len).collect();
        for (k, n) in chunks.iter().enumerate() {
            let f = if k + 1 == chunks.len() { "P." } else { "." };
            let nxt = self.socks[h].snd_nxt;
            self.send(h, Self::flags(f), nxt, *n, Vec::new());
            self.socks[h].snd_nxt = nxt.wrapping_add(*n as u32);
        }
        Ok(data.len())
    }

    fn read(&mut self, _now: Instant, h: usize, buf: &mut [u8]) -> Result<usize, Errno> {
        let s = &mut self.socks[h];
        if s.rx > 0 {
            let n = s.rx.min(buf.len());
            s.rx -= n;
            return Ok(n);
        }
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        if s.rx_fin {
            return Ok(0);
        }
        Err(Errno::EAGAIN)
    }

    fn shutdown(&mut self, now: Instant, h: usize, how: Shutdown) -> Result<(), Errno> {
        self.now = now;
        if how != Shutdown::Read && self.socks[h].state == State::Established {
            self.send_fin(h);
            self.socks[h].state = State::FinWait;
        }
        Ok(())
    }

    fn close(&mut self, now: Instant, h: usize) -> Result<(), Errno> {
        self.now = now;
        match self.socks[h].state {
            State::Established => {
                self.send_fin(h);
                self.socks[h].state = State::FinWait;
            }
            State::CloseWait => {
                self.send_fin(h);
                self.socks[h].state = State::LastAck;
            }
            State::Listen => self.socks[h].state = State::Closed,
            _ => {}
        }
        Ok(())
    }

    fn setsockopt(&mut self, _now: Instant, h: usize, opt: SockOpt, value: i64) -> Result<(), Errno> {
        match opt {
            SockOpt::NoDelay => {
                self.socks[h].nodelay = value;
                Ok(())
            }
            SockOpt::ReuseAddr => Ok(()),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn getsockopt(&mut self, _now: Instant, h: usize, opt: SockOpt) -> Result<i64, Errno> {
        match opt {
            SockOpt::NoDelay => Ok(self.socks[h].nodelay),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn take_error(&mut self, _now: Instant, h: usize) -> Option<Errno> {
        self.socks[h].error.take()
    }

    fn readiness(&mut self, _now: Instant, h: usize) -> Readiness {
        let s = &self.socks[h];
        let connected = matches!(s.state, State::Established | State::CloseWait);
        Readiness {
            readable: s.rx > 0 || s.rx_fin || !s.accept_q.is_empty() || s.error.is_some(),
            writable: connected,
            error: s.error.is_some(),
            hangup: s.state == State::Closed && s.error.is_some(),
            read_hangup: s.rx_fin,
        }
    }
}
