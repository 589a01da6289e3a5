//! Comparing an outbound segment with its `>` line.

use super::*;

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
        let first = &parts[0];
        let mut seg = first.seg.clone();
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
        let check_ecr = self.cfg.check_ts_ecr;
        let tick = self.cfg.ts_val_tick.map(micros);
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
        let script_ts = spec.options.as_deref().and_then(|o| {
            o.iter().find_map(|o| match o {
                TcpOption::Timestamp { val, ecr } => Some((*val, *ecr)),
                _ => None,
            })
        });
        let live_ts = seg.options.iter().find_map(|o| match o {
            TcpOption::Timestamp { val, ecr } => Some((*val, *ecr)),
            _ => None,
        });
        let mut mapped_val = None;
        if let (Some((sv, _)), Some((lv, _))) = (script_ts, live_ts) {
            s.ts_map.insert(sv, lv);
            let (fs, fl) = *s.first_ts.get_or_insert((sv, lv));
            mapped_val = Some(fs.wrapping_add(lv.wrapping_sub(fl)));
        }
        let opts: Vec<TcpOption> = seg
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
        let actual = render(
            seg.flags,
            seq,
            seg.payload.len(),
            seg.flags.ack.then_some(ack),
            seg.window,
            seg.urgent,
            &options_script(&opts),
        );

        if seg.flags != spec.flags {
            problems.push(format!(
                "flags: expected {} vs actual {}",
                spec.flags.script(),
                seg.flags.script()
            ));
        }
        if seg.reserved != 0 {
            problems.push(format!("reserved TCP header bits set: {:#x}", seg.reserved));
        }
        if seq != spec.seq {
            problems.push(format!("seq: expected {} vs actual {}", spec.seq, seq));
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
            if ack != want {
                problems.push(format!("ack: expected {want} vs actual {ack}"));
            }
        } else if let Some(want) = spec.ack.filter(|_| !spec.flags.ack && !seg.flags.ack) {
            if seg.ack != want {
                problems.push(format!(
                    "ack field (ACK flag clear): expected {want} vs actual {}",
                    seg.ack
                ));
            }
        }
        if let Some(w) = spec.window {
            if seg.window != w {
                problems.push(format!("window: expected {w} vs actual {}", seg.window));
            }
        }
        if seg.urgent != spec.urg_ptr {
            problems.push(format!(
                "urgent pointer: expected {} vs actual {}",
                spec.urg_ptr, seg.urgent
            ));
        }
        if let Some(want) = &spec.options {
            if want.len() != opts.len() || want.iter().zip(&opts).any(|(a, b)| a.kind() != b.kind()) {
                problems.push(format!(
                    "TCP options: expected {} vs actual {}",
                    options_script(want),
                    options_script(&opts)
                ));
            } else {
                for (w, a) in want.iter().zip(&opts) {
                    match (w, a) {
                        (
                            TcpOption::Timestamp { val: wv, ecr: we },
                            TcpOption::Timestamp { val: av, ecr: ae },
                        ) => {
                            if let Some(tick) = tick {
                                let off = i64::from(av.wrapping_sub(*wv) as i32).abs();
                                if off * tick > tol.max(micros(self.cfg.tolerance)) {
                                    problems.push(format!("TS val: expected {wv} vs actual {av}"));
                                }
                            }
                            if check_ecr && we != ae {
                                problems.push(format!("TS ecr: expected {we} vs actual {ae}"));
                            }
                        }
                        (w, a) if w != a => problems.push(format!("TCP option: expected {w} vs actual {a}")),
                        _ => {}
                    }
                }
                let want_len = crate::frame::encode_options(want).len();
                if seg.options_len != want_len {
                    problems.push(format!(
                        "TCP option area: expected {want_len} bytes vs actual {} bytes",
                        seg.options_len
                    ));
                }
            }
        }
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
        let ecn = first.ip.tos & 3;
        if spec.ip.ect01 && ecn != 1 && ecn != 2 {
            problems.push(format!("ip_ecn: expected ECT(0) or ECT(1) vs actual {ecn:#x}"));
        }
        if let Some(e) = spec.ip.ecn {
            if ecn != e.bits() {
                problems.push(format!("ip_ecn: expected {:#x} vs actual {ecn:#x}", e.bits()));
            }
        }
        if let Some(t) = spec.ip.tos {
            if first.ip.tos != t {
                problems.push(format!("tos: expected {t:#x} vs actual {:#x}", first.ip.tos));
            }
        }
        if let Some(t) = spec.ip.ttl {
            if first.ip.ttl != t {
                problems.push(format!("ttl: expected {t} vs actual {}", first.ip.ttl));
            }
        }
        if spec.ip.flow_label.is_some() {
            self.warn_flow_label(0);
        }
        if let Some((lo, hi)) = window {
            if first.at < lo - tol || first.at > hi + tol {
                let when = if lo == hi {
                    format!("at {} s", secs(lo))
                } else {
                    format!("in time range {}~{} s", secs(lo), secs(hi))
                };
                problems.push(format!(
                    "timing error: expected outbound packet {when} but it was sent at {} s; tolerance {} s",
                    secs(first.at),
                    secs(tol)
                ));
            }
        }
        (actual, problems)
    }
}
