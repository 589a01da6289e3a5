//! Comparing an outbound segment with its `>` line: each check adds what
//! differs to a list, so one failure names every difference.

use super::*;

/// The stack's segment(s), merged into one, with its fields in script
/// space.
struct Actual {
    seg: TcpSegment,
    seq: u32,
    ack: u32,
    opts: Vec<TcpOption>,
}

fn timestamp(options: &[TcpOption]) -> Option<(u32, u32)> {
    options.iter().find_map(|o| match o {
        TcpOption::Timestamp { val, ecr } => Some((*val, *ecr)),
        _ => None,
    })
}

impl<H: ScriptHost> Runner<H> {
    /// Compares the stack's segment(s) with the script's, in script space.
    /// Returns the actual packet as script text and what differs.
    pub(super) fn verify(
        &mut self,
        si: usize,
        spec: &PacketSpec,
        parts: &[Sent],
        window: Option<(Us, Us)>,
        tol: Us,
    ) -> (String, Vec<String>) {
        let mut problems = Vec::new();
        let seg = merge(parts, &mut problems);
        let a = self.script_space(si, spec, seg);
        let actual = render(
            a.seg.flags,
            a.seq,
            a.seg.payload.len(),
            a.seg.flags.ack.then_some(a.ack),
            a.seg.window,
            a.seg.urgent,
            &options_script(&a.opts),
        );
        compare_header(spec, &a, self.cfg.check_psh, &mut problems);
        if let Some(want) = &spec.options {
            self.compare_options(want, &a, tol, &mut problems);
        }
        self.compare_ip(spec, parts, &a.seg, &mut problems);
        check_timing(parts[0].at, window, tol, &mut problems);
        (actual, problems)
    }

    /// Maps the segment's sequence numbers and options into script space,
    /// recording its TS val against the script's (packetdrill's mapping).
    fn script_space(&mut self, si: usize, spec: &PacketSpec, seg: TcpSegment) -> Actual {
        if self.other_flow(si, spec) {
            // Another connection, named by its ports: the runner keeps no
            // sequence space for it, so its seq (our ISN, e.g. a SYN
            // cookie) is not compared and its ack is live.
            let (seq, ack, opts) = (spec.seq, seg.ack, seg.options.clone());
            return Actual { seg, seq, ack, opts };
        }
        let s = &mut self.socks[si];
        let syn = seg.flags.syn;
        let seq = seg.seq.wrapping_sub(s.local_offset(syn));
        let remote_off = s.remote_offset(syn);
        let ack = if seg.flags.ack {
            seg.ack.wrapping_sub(remote_off)
        } else {
            seg.ack
        };
        // Timestamps: remember script -> live, map live val to script space.
        let script_ts = spec.options.as_deref().and_then(timestamp);
        let mut mapped_val = None;
        if let (Some((sv, _)), Some((lv, _))) = (script_ts, timestamp(&seg.options)) {
            s.ts_map.insert(sv, lv);
            let (fs, fl) = *s.first_ts.get_or_insert((sv, lv));
            mapped_val = Some(fs.wrapping_add(lv.wrapping_sub(fl)));
        }
        let opts = seg
            .options
            .iter()
            .map(|o| match o {
                TcpOption::Sack(b) => TcpOption::Sack(
                    b.iter()
                        .map(|&(l, r)| (l.wrapping_sub(remote_off), r.wrapping_sub(remote_off)))
                        .collect(),
                ),
                TcpOption::Timestamp { val, ecr } => TcpOption::Timestamp {
                    val: mapped_val.unwrap_or(*val),
                    ecr: *ecr,
                },
                o => o.clone(),
            })
            .collect();
        Actual { seg, seq, ack, opts }
    }

    /// The options, in order and kind; TS val only with a tick, TS ecr
    /// unless turned off; the option area's length.
    fn compare_options(&self, want: &[TcpOption], a: &Actual, tol: Us, problems: &mut Vec<String>) {
        let opts = &a.opts;
        if want.len() != opts.len() || want.iter().zip(opts).any(|(w, o)| w.kind() != o.kind()) {
            problems.push(format!(
                "TCP options: expected {} vs actual {}",
                options_script(want),
                options_script(opts)
            ));
            return;
        }
        let tick = self.cfg.ts_val_tick.map(micros);
        for (w, o) in want.iter().zip(opts) {
            match (w, o) {
                (TcpOption::Timestamp { val: wv, ecr: we }, TcpOption::Timestamp { val: av, ecr: ae }) => {
                    if let Some(tick) = tick {
                        let off = i64::from(av.wrapping_sub(*wv) as i32).abs();
                        if off * tick > tol.max(micros(self.cfg.tolerance)) {
                            problems.push(format!("TS val: expected {wv} vs actual {av}"));
                        }
                    }
                    if self.cfg.check_ts_ecr && we != ae {
                        problems.push(format!("TS ecr: expected {we} vs actual {ae}"));
                    }
                }
                (w, o) if w != o => problems.push(format!("TCP option: expected {w} vs actual {o}")),
                _ => {}
            }
        }
        let want_len = crate::frame::encode_options(want).len();
        if a.seg.options_len != want_len {
            problems.push(format!(
                "TCP option area: expected {want_len} bytes vs actual {} bytes",
                a.seg.options_len
            ));
        }
    }

    /// Payload bytes, checksums, IP header length, ECN, TOS, TTL.
    fn compare_ip(
        &mut self,
        spec: &PacketSpec,
        parts: &[Sent],
        seg: &TcpSegment,
        problems: &mut Vec<String>,
    ) {
        if self.cfg.check_payload && seg.payload.iter().any(|&b| b != 0) {
            problems.push("payload: not the zero bytes the runner wrote".into());
        }
        for p in parts {
            if p.ip_header_len != 20 {
                problems.push(format!("IPv4 header is {} bytes (IP options)", p.ip_header_len));
            }
            if !p.ip_ok {
                problems.push("bad outbound IP checksum".into());
            }
            if self.cfg.check_tcp_checksum && !p.tcp_ok {
                problems.push("bad outbound TCP checksum".into());
            }
        }
        let ip = &parts[0].ip;
        let ecn = ip.tos & 3;
        if spec.ip.ect01 && ecn != 1 && ecn != 2 {
            problems.push(format!("ip_ecn: expected ECT(0) or ECT(1) vs actual {ecn:#x}"));
        }
        if let Some(e) = spec.ip.ecn.filter(|e| e.bits() != ecn) {
            problems.push(format!("ip_ecn: expected {:#x} vs actual {ecn:#x}", e.bits()));
        }
        if let Some(t) = spec.ip.tos.filter(|&t| t != ip.tos) {
            problems.push(format!("tos: expected {t:#x} vs actual {:#x}", ip.tos));
        }
        if let Some(t) = spec.ip.ttl.filter(|&t| t != ip.ttl) {
            problems.push(format!("ttl: expected {t} vs actual {}", ip.ttl));
        }
        if spec.ip.flow_label.is_some() {
            self.warn_flow_label(0);
        }
    }
}

/// The segments one `>` line matched (TSO/GSO), as one segment; they must
/// follow each other in sequence space.
fn merge(parts: &[Sent], problems: &mut Vec<String>) -> TcpSegment {
    let mut seg = parts[0].seg.clone();
    for pair in parts.windows(2) {
        let (a, b) = (&pair[0].seg, &pair[1].seg);
        if b.seq != a.seq.wrapping_add(a.payload.len() as u32) {
            problems.push(format!(
                "segments do not follow each other: {} bytes at seq {} then seq {}",
                a.payload.len(),
                a.seq,
                b.seq
            ));
        }
        seg.flags.fin |= b.flags.fin;
        seg.flags.psh |= b.flags.psh;
        seg.payload.extend_from_slice(&b.payload);
    }
    seg
}

/// Flags, sequence numbers, length, window and urgent pointer. The ack
/// field of a segment without ACK is compared only when the script
/// writes one.
fn compare_header(spec: &PacketSpec, a: &Actual, check_psh: bool, problems: &mut Vec<String>) {
    let seg = &a.seg;
    let mut flags = seg.flags;
    if !check_psh {
        flags.psh = spec.flags.psh;
    }
    if flags != spec.flags {
        problems.push(format!(
            "flags: expected {} vs actual {}",
            spec.flags.script(),
            seg.flags.script()
        ));
    }
    if seg.reserved != 0 {
        problems.push(format!("reserved TCP header bits set: {:#x}", seg.reserved));
    }
    if a.seq != spec.seq {
        problems.push(format!("seq: expected {} vs actual {}", spec.seq, a.seq));
    }
    if seg.payload.len() != usize::from(spec.len) {
        problems.push(format!(
            "payload: expected {} bytes vs actual {} bytes",
            spec.len,
            seg.payload.len()
        ));
    }
    if seg.flags.ack && spec.flags.ack {
        let want = spec.ack.unwrap_or(0);
        if a.ack != want {
            problems.push(format!("ack: expected {want} vs actual {}", a.ack));
        }
    } else if let Some(want) = spec.ack.filter(|_| !spec.flags.ack && !seg.flags.ack) {
        if seg.ack != want {
            problems.push(format!(
                "ack field (ACK flag clear): expected {want} vs actual {}",
                seg.ack
            ));
        }
    }
    if let Some(w) = spec.window.filter(|&w| w != seg.window) {
        problems.push(format!("window: expected {w} vs actual {}", seg.window));
    }
    if seg.urgent != spec.urg_ptr {
        problems.push(format!(
            "urgent pointer: expected {} vs actual {}",
            spec.urg_ptr, seg.urgent
        ));
    }
}

/// The first segment must be sent within the tolerance of the line's time.
fn check_timing(at: Us, window: Option<(Us, Us)>, tol: Us, problems: &mut Vec<String>) {
    let Some((lo, hi)) = window else {
        return;
    };
    if at < lo - tol || at > hi + tol {
        let when = if lo == hi {
            format!("at {} s", secs(lo))
        } else {
            format!("in time range {}~{} s", secs(lo), secs(hi))
        };
        problems.push(format!(
            "timing error: expected outbound packet {when} but it was sent at {} s; tolerance {} s",
            secs(at),
            secs(tol)
        ));
    }
}
