//! `<` lines: building the peer's segment in live sequence space and
//! injecting it.

use super::*;

impl<H: ScriptHost> Runner<H> {
    pub(super) fn next_ephemeral(&mut self) -> u16 {
        let p = self.next_remote_port;
        self.next_remote_port = self.next_remote_port.wrapping_add(1);
        p
    }

    pub(super) fn new_child(&mut self, local_port: u16, spec: &PacketSpec) -> usize {
        let mut s = Sock::new(SockState::PassivePacketReceived);
        s.local_port = Some(local_port);
        s.remote_port = Some(self.next_ephemeral());
        s.remote_isn = Some(spec.seq);
        self.socks.push(s);
        let i = self.socks.len() - 1;
        self.sut = Some(i);
        i
    }

    /// packetdrill's find_or_create_socket_for_script_packet, inbound side.
    pub(super) fn sock_for_inbound(&mut self, ev: &Event, spec: &PacketSpec) -> Result<usize, Failure> {
        let Some(i) = self.sut else {
            return Ok(self.new_child(self.cfg.bind_port, spec));
        };
        if self.socks[i].state == SockState::Listening {
            let port = self.socks[i].bound_port.unwrap_or(self.cfg.bind_port);
            return Ok(self.new_child(port, spec));
        }
        let bind_port = self.cfg.bind_port;
        let eph = if self.socks[i].remote_port.is_none() {
            Some(self.next_ephemeral())
        } else {
            None
        };
        let s = &mut self.socks[i];
        if s.local_port.is_none() {
            if matches!(s.state, SockState::ActiveConnecting | SockState::ActiveSynSent) {
                return Err(fail(
                    ev.line,
                    "inbound packet for a connecting socket whose SYN has not been seen yet (its local \
                     port is unknown); expect the SYN with a '>' line first",
                ));
            }
            s.local_port = Some(s.bound_port.unwrap_or(bind_port));
        }
        if let Some(p) = eph {
            s.remote_port = Some(p);
        }
        Ok(i)
    }

    pub(super) fn inbound(&mut self, ev: &Event, spec: &PacketSpec) -> Result<(), Failure> {
        let si = self.sock_for_inbound(ev, spec)?;
        let seg = self.live_segment(ev, si, spec)?;
        if spec.ip.flow_label.is_some() {
            self.warn_flow_label(ev.line);
        }
        let mut tos = spec.ip.tos.unwrap_or(0);
        if let Some(ecn) = spec.ip.ecn {
            tos = (tos & !3) | ecn.bits();
        }
        let ip = Ipv4Meta {
            src: self.cfg.peer_ip,
            dst: self.host.local_ip(),
            tos,
            ttl: spec.ip.ttl.unwrap_or(64),
            ident: self.ident,
        };
        self.ident = self.ident.wrapping_add(1);
        let frame = encode_tcp_frame(self.host.local_mac(), self.cfg.peer_mac, &ip, &seg);
        self.trace.push(format!(
            "{} line {}: injected {}",
            secs(self.now),
            ev.line,
            ev.text.trim()
        ));
        let now = self.now_instant();
        self.host.handle_frame(now, &frame);
        self.pump()
    }

    /// The `<` line's segment in live sequence space, advancing the
    /// socket's handshake state.
    fn live_segment(&mut self, ev: &Event, si: usize, spec: &PacketSpec) -> Result<TcpSegment, Failure> {
        let s = &mut self.socks[si];
        if s.state == SockState::PassiveSynackSent && spec.flags.ack {
            s.state = SockState::PassiveSynackAcked;
        } else if s.state == SockState::ActiveSynSent && spec.flags.syn && spec.flags.ack {
            s.state = SockState::ActiveSynAcked;
            s.remote_isn = Some(spec.seq);
        }
        let syn = spec.flags.syn;
        let seq = spec.seq.wrapping_add(s.remote_offset(syn));
        let local_off = s.local_offset(syn);
        let script_ack = spec.ack.unwrap_or(0);
        let ack = if spec.flags.ack {
            script_ack.wrapping_add(local_off)
        } else {
            script_ack
        };
        let options = spec
            .options
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|o| live_option(ev, s, spec.flags.ack, local_off, o))
            .collect::<Result<_, _>>()?;
        let (src_port, dst_port) = match spec.ports {
            Some(p) => p,
            None => (
                s.remote_port.expect("set by sock_for_inbound"),
                s.local_port.expect("set by sock_for_inbound"),
            ),
        };
        Ok(TcpSegment {
            src_port,
            dst_port,
            seq,
            ack,
            flags: spec.flags,
            reserved: 0,
            window: spec.window.unwrap_or(0),
            urgent: spec.urg_ptr,
            options,
            options_len: 0,
            payload: vec![0; usize::from(spec.len)],
        })
    }

    pub(super) fn warn_flow_label(&mut self, line: usize) {
        if !self.warned_flow_label {
            self.warned_flow_label = true;
            self.warnings
                .push((line, "IPv6 flowlabel ignored: the runner speaks IPv4".into()));
        }
    }
}

/// An inbound option in live space: SACK blocks move by the stack's ISN,
/// TS ecr becomes the live TS val recorded for it (or interpolated from
/// the first recorded pair).
fn live_option(ev: &Event, s: &Sock, ack: bool, local_off: u32, o: &TcpOption) -> Result<TcpOption, Failure> {
    Ok(match o {
        TcpOption::Sack(blocks) => TcpOption::Sack(
            blocks
                .iter()
                .map(|&(l, r)| (l.wrapping_add(local_off), r.wrapping_add(local_off)))
                .collect(),
        ),
        TcpOption::Timestamp { val, ecr } if ack => {
            let live = if let Some(&live) = s.ts_map.get(ecr) {
                live
            } else if let Some((first_script, first_live)) = s.first_ts {
                ecr.wrapping_sub(first_script).wrapping_add(first_live)
            } else {
                return Err(fail(
                    ev.line,
                    format!(
                        "unable to infer live TS ecr for script TS ecr {ecr}; no matching or \
                         preceding outbound TS val (give the stack's TS val in an earlier '>' line)"
                    ),
                ));
            };
            TcpOption::Timestamp { val: *val, ecr: live }
        }
        o => o.clone(),
    })
}
