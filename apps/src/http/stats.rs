//! The `/stats` document for a tapir stack: every counter of
//! [`tapir_stack::Stats`] and every TCP connection with its
//! [`TcpConnStats`], as JSON. The server only sees the closure this builds.

use super::server::StatsFn;
use std::fmt::Write as _;
use std::sync::Arc;
use tapir_harness::StackHandle;
use tapir_stack::TcpConnStats;

/// A `/stats` producer over a running stack.
pub fn stack_stats(stack: StackHandle) -> StatsFn {
    Arc::new(move || {
        // Copy under the lock, format outside it.
        let (counters, conns): (Vec<(&'static str, u64)>, Vec<_>) =
            stack.with(|i| (i.stats().iter().collect(), i.tcp_connections().collect()));
        let mut j = String::from("{\n  \"counters\": {");
        for (n, (name, value)) in counters.iter().enumerate() {
            let sep = if n == 0 { "" } else { "," };
            let _ = write!(j, "{sep}\n    \"{name}\": {value}");
        }
        j.push_str("\n  },\n  \"tcp_connections\": [");
        for (n, (local, remote, s)) in conns.iter().enumerate() {
            let sep = if n == 0 { "" } else { "," };
            let _ = write!(
                j,
                "{sep}\n    {}",
                conn_json(&local.to_string(), &remote.to_string(), s)
            );
        }
        j.push_str("\n  ]\n}\n");
        j
    })
}

fn conn_json(local: &str, remote: &str, s: &TcpConnStats) -> String {
    let state = s.state.map(|s| s.to_string()).unwrap_or_default();
    let us = |d: std::time::Duration| d.as_micros();
    let srtt = s.srtt.map(|d| us(d).to_string()).unwrap_or_else(|| "null".into());
    let ssthresh = if s.ssthresh == usize::MAX {
        "null".to_string()
    } else {
        s.ssthresh.to_string()
    };
    format!(
        "{{\"local\": \"{}\", \"remote\": \"{}\", \"state\": \"{}\", \"congestion_control\": \"{}\", \
         \"mss\": {}, \"srtt_us\": {srtt}, \"rttvar_us\": {}, \"rto_us\": {}, \"cwnd\": {}, \
         \"ssthresh\": {ssthresh}, \"snd_una\": {}, \"snd_nxt\": {}, \"snd_wnd\": {}, \"rcv_nxt\": {}, \
         \"rcv_wnd\": {}, \"bytes_in_flight\": {}, \"segs_out\": {}, \"segs_in\": {}, \
         \"retransmits\": {}, \"dup_acks_in\": {}, \"ooo_bytes\": {}, \"zero_window_probes\": {}, \
         \"bytes_acked\": {}, \"bytes_received\": {}, \"acks_rate_limited\": {}}}",
        json_escape(local),
        json_escape(remote),
        json_escape(&state),
        json_escape(s.congestion_control),
        s.mss,
        us(s.rttvar),
        us(s.rto),
        s.cwnd,
        s.snd_una,
        s.snd_nxt,
        s.snd_wnd,
        s.rcv_nxt,
        s.rcv_wnd,
        s.bytes_in_flight,
        s.segs_out,
        s.segs_in,
        s.retransmits,
        s.dup_acks_in,
        s.ooo_bytes,
        s.zero_window_probes,
        s.bytes_acked,
        s.bytes_received,
        s.acks_rate_limited,
    )
}

/// RFC 8259 7: quote and backslash escaped, control characters as \u00XX.
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
