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
    /// When we last answered an unacceptable segment without data
    /// (Linux tw_last_oow_ack_time; `TcpConfig::invalid_ratelimit`).
    last_oow_ack: Option<Instant>,
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
    /// own timer says otherwise, if fewer than `max` entries are held.
    /// Returns the ACK the entry would send (owed to the peer's FIN either
    /// way) and whether the entry was made: when the table is full, the
    /// connection closes without TIME-WAIT, as Linux's does past
    /// tcp_max_tw_buckets ("time wait bucket table overflow").
    pub fn insert(
        &mut self,
        now: Instant,
        key: ConnKey,
        info: TimeWaitInfo,
        duration: Duration,
        max: usize,
    ) -> (TcpRepr, bool) {
        let expires = info.expires.unwrap_or(now + duration);
        let tw = TimeWait {
            snd_nxt: info.snd_nxt,
            rcv_nxt: info.rcv_nxt,
            window: info.window,
            ts: info.ts,
            expires,
            last_oow_ack: None,
        };
        if self.entries.len() >= max && !self.entries.contains_key(&key) {
            return (time_wait_ack(now, key, &tw), false);
        }
        self.entries.insert(key, tw);
        self.order.push_back((expires, key));
        (time_wait_ack(now, key, &tw), true)
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
    /// SYN that reopens the 4-tuple and goes on to the listener. The rules
    /// are Linux's tcp_timewait_state_process (with tcp_rfc1337 set).
    pub fn input(
        &mut self,
        now: Instant,
        key: ConnKey,
        repr: &TcpRepr,
        len: usize,
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
        let seg_len = len + usize::from(repr.flags.syn()) + usize::from(repr.flags.fin());
        let tsval = repr.options.timestamps.map(|(v, _)| v);
        // RFC 7323 5.3 (PAWS): a TSval older than TS.Recent is an old duplicate.
        let paws_reject =
            matches!((tw.ts, tsval), (Some((recent, _)), Some(v)) if (v.wrapping_sub(recent) as i32) < 0);
        let time_wait = cx.config.tcp.time_wait;
        if !paws_reject && SeqNumber(repr.seq) == tw.rcv_nxt && seg_len == 0 {
            // In window without data: the peer's ACK (of our FIN, or
            // a duplicate of it). RFC 9293 3.10.7.4 answers only
            // unacceptable segments; ACKing it would let two ends in
            // TIME-WAIT trade ACKs for 2 MSL. Accepted silently, restarting
            // the timer and taking its TSval, as Linux.
            if let Some(t) = self.entries.get_mut(&key) {
                t.expires = now + time_wait;
                if let (Some((recent, _)), Some(v)) = (t.ts.as_mut(), tsval) {
                    *recent = v;
                }
            }
            self.order.push_back((now + time_wait, key));
            return TimeWaitVerdict::Handled(None);
        }
        if repr.flags.syn() && !repr.flags.ack() && !paws_reject && listening {
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
        // Unacceptable (out of window, PAWS-rejected, with data or a FIN,
        // chiefly a retransmitted FIN: our ACK was lost): answered with
        // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 9293 3.10.7.4), and
        // the 2 MSL timer restarts (Linux: on an ACK or a PAWS reject).
        if paws_reject || repr.flags.ack() {
            if let Some(t) = self.entries.get_mut(&key) {
                t.expires = now + time_wait;
            }
            self.order.push_back((now + time_wait, key));
        }
        if !self.oow_ack_allowed(now, key, seg_len > 0 && !repr.flags.syn(), cx) {
            cx.stats.tcp_time_wait_acks_rate_limited += 1;
            return TimeWaitVerdict::Handled(None);
        }
        TimeWaitVerdict::Handled(Some(time_wait_ack(now, key, &tw)))
    }

    /// At most one answer per invalid_ratelimit to segments without data
    /// (RFC 5961 7; Linux tcp_timewait_check_oow_rate_limit): one that
    /// occupies sequence space (`exempt`) cannot be half of an ACK loop.
    fn oow_ack_allowed(&mut self, now: Instant, key: ConnKey, exempt: bool, cx: &Cx) -> bool {
        let limit = cx.config.tcp.invalid_ratelimit;
        if limit.is_zero() || exempt {
            return true;
        }
        let Some(t) = self.entries.get_mut(&key) else {
            return true;
        };
        if t.last_oow_ack.is_some_and(|last| now < last + limit) {
            return false;
        }
        t.last_oow_ack = Some(now);
        true
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
