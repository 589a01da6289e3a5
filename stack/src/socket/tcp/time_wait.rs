//! TIME-WAIT (RFC 9293 3.10.7.4, RFC 1337, RFC 6191), held compactly.
//!
//! A connection that reaches TIME-WAIT after the application closed its
//! socket gives up its control block: what is left is the few fields it
//! needs to re-ACK a retransmitted FIN and to judge a new SYN for the same
//! 4-tuple, and an expiry 2 MSL away.

use super::conn::TimeWaitInfo;
use super::seq::SeqNumber;
use super::table::{ConnKey, Cx};
use crate::time::{Duration, Instant};
use crate::wire::{TcpFlags, TcpOptions, TcpRepr};
use std::collections::{HashMap, VecDeque};

/// A connection in TIME-WAIT reduced to what it needs to re-ACK a FIN.
#[derive(Debug, Clone, Copy)]
struct TimeWait {
    snd_nxt: SeqNumber,
    rcv_nxt: SeqNumber,
    window: u16,
    /// TS.Recent and our timestamp offset, if timestamps are in use.
    ts: Option<(u32, u32)>,
    expires: Instant,
}

/// What a TIME-WAIT entry made of a segment.
pub(crate) enum TimeWaitVerdict {
    /// Answered with this ACK, or ignored.
    Handled(Option<TcpRepr>),
    /// A new SYN reopens the 4-tuple: hand it to the listener, and open
    /// the new connection with this ISN.
    Reopen(SeqNumber),
}

/// The TIME-WAIT entries, and their expiries in order (all last the same
/// time, so a FIFO works; a restarted entry is pushed again and stale
/// ones are skipped).
#[derive(Default)]
pub(crate) struct TimeWaitTable {
    entries: HashMap<ConnKey, TimeWait>,
    order: VecDeque<(Instant, ConnKey)>,
}

impl TimeWaitTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn contains(&self, key: &ConnKey) -> bool {
        self.entries.contains_key(key)
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|(t, _)| *t)
    }

    /// Enter TIME-WAIT for `key`, for `duration` unless the connection's
    /// own timer says otherwise. Returns the ACK the entry would send.
    pub fn insert(&mut self, now: Instant, key: ConnKey, info: TimeWaitInfo, duration: Duration) -> TcpRepr {
        let expires = info.expires.unwrap_or(now + duration);
        let tw = TimeWait {
            snd_nxt: info.snd_nxt,
            rcv_nxt: info.rcv_nxt,
            window: info.window,
            ts: info.ts,
            expires,
        };
        self.entries.insert(key, tw);
        self.order.push_back((expires, key));
        time_wait_ack(now, key, &tw)
    }

    /// Forget the entries whose 2 MSL are over.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(t, key)) = self.order.front() {
            if t > now {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|tw| tw.expires <= now) {
                self.entries.remove(&key);
            }
        }
    }

    /// A segment for a connection in TIME-WAIT: answered here, or a new
    /// SYN that reopens the 4-tuple and goes on to the listener.
    pub fn input(
        &mut self,
        now: Instant,
        key: ConnKey,
        repr: &TcpRepr,
        listening: bool,
        cx: &mut Cx,
    ) -> TimeWaitVerdict {
        let Some(tw) = self.entries.get(&key).copied() else {
            return TimeWaitVerdict::Handled(None);
        };
        if repr.flags.rst() {
            // RFC 1337: ignore RSTs in TIME-WAIT.
            cx.stats.tcp_time_wait_rst_ignored += 1;
            return TimeWaitVerdict::Handled(None);
        }
        if repr.flags.syn() && !repr.flags.ack() && listening {
            // RFC 6191: a new SYN may reopen the 4-tuple if, where both
            // sides use timestamps, its TSval is newer than TS.Recent, and
            // otherwise if its sequence number is beyond RCV.NXT (RFC 1122
            // 4.2.2.13). Without a listener it is an old duplicate to ACK
            // (as Linux, which keeps TIME-WAIT and ACKs it then).
            let newer = match (tw.ts, repr.options.timestamps) {
                (Some((recent, _)), Some((tsval, _))) => (tsval.wrapping_sub(recent) as i32) > 0,
                _ => SeqNumber(repr.seq) > tw.rcv_nxt,
            };
            if newer {
                self.entries.remove(&key);
                cx.stats.tcp_time_wait_reused += 1;
                // RFC 1122 4.2.2.13 (a): the new incarnation's ISN lies
                // beyond every sequence number the old one used; Linux takes
                // SND.NXT + 65537 (tcp_timewait_state_process).
                return TimeWaitVerdict::Reopen(tw.snd_nxt + 65537);
            }
        }
        // Everything else (chiefly a retransmitted FIN) is answered with an
        // ACK; a FIN restarts the 2 MSL timer (RFC 9293 3.10.7.4).
        let ack = time_wait_ack(now, key, &tw);
        if repr.flags.fin() {
            let expires = now + cx.config.tcp.time_wait;
            if let Some(t) = self.entries.get_mut(&key) {
                t.expires = expires;
            }
            self.order.push_back((expires, key));
        }
        TimeWaitVerdict::Handled(Some(ack))
    }
}

/// The ACK a TIME-WAIT entry sends: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>,
/// with our timestamp echoing TS.Recent.
fn time_wait_ack(now: Instant, key: ConnKey, tw: &TimeWait) -> TcpRepr {
    let mut options = TcpOptions::default();
    if let Some((recent, offset)) = tw.ts {
        options.timestamps = Some((super::conn::ts_now(now, offset), recent));
    }
    TcpRepr {
        src_port: key.0,
        dst_port: key.1.port(),
        seq: tw.snd_nxt.0,
        ack: tw.rcv_nxt.0,
        flags: TcpFlags::ACK,
        window: tw.window,
        urgent: 0,
        options,
    }
}
