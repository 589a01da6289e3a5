//! TCP header and options (RFC 9293 3.1 and 3.2, RFC 7323, RFC 2018).
//!
//! [`TcpRepr::parse`] checks the fixed header (RFC 9293 3.1: the data offset
//! is at least 5 words and within the segment), verifies the checksum over
//! the IPv4 pseudo-header when asked to, and decodes the options the way
//! Linux's `tcp_parse_options` (net/ipv4/tcp_input.c) does:
//!
//! - EOL ends the list; NOP is skipped.
//! - Any other kind needs a length byte of at least 2 that stays inside the
//!   option space. If it has none, parsing stops there and keeps what it has
//!   read so far: the segment itself is still good. (RFC 9293 3.1 MUST-7 only
//!   asks us to be "prepared" for an illegal length; Linux, which our peers
//!   are, ignores the rest of the options, and so do we.)
//! - A known kind with the wrong length for it is skipped by its length and
//!   ignored; unknown kinds are skipped by their length (RFC 9293 3.1 MUST-68,
//!   RFC 1122 4.2.2.5).
//! - A later copy of an option replaces an earlier one.
//!
//! MSS, window scale and SACK-permitted mean something only on a SYN (RFC
//! 9293 3.7.1, RFC 7323 2.2, RFC 2018 2). They are decoded on any segment;
//! the socket decides what to honour.
//!
//! [`TcpRepr::emit`] writes the options in exactly the order Linux's
//! `tcp_options_write` (net/ipv4/tcp_output.c) does, so that segment scripts
//! written against Linux match our segments byte for byte:
//!
//! ```text
//!   MSS                      02 04 mm mm
//!   SACK-permitted + TS      04 02 08 0a <TSval> <TSecr>   (both present)
//!   TS                       01 01 08 0a <TSval> <TSecr>   (no SACK-permitted)
//!   SACK-permitted           01 01 04 02                   (no TS)
//!   window scale             01 03 03 ss
//!   SACK blocks              01 01 05 len <left right>...
//! ```
//!
//! The fixed header is read by hand rather than through etherparse's
//! `TcpHeaderSlice`, whose options iterator stops with an error at the first
//! unknown kind where a host must skip it.

use core::fmt;
use core::net::Ipv4Addr;
use core::ops::{BitOr, BitOrAssign};

const PROTOCOL: u8 = 6;

/// Option space: the data offset is 4 bits of 32-bit words, so the header is
/// at most 60 bytes, 40 of them options (RFC 9293 3.1).
pub const MAX_OPTIONS_LEN: usize = 40;

/// The most SACK blocks an option can carry: 2 + 8 * 4 = 34 bytes fits in
/// the 40 bytes of option space, 5 blocks would not (RFC 2018 3).
pub const MAX_SACK_BLOCKS: usize = 4;

const KIND_EOL: u8 = 0;
const KIND_NOP: u8 = 1;
const KIND_MSS: u8 = 2;
const KIND_WINDOW_SCALE: u8 = 3;
const KIND_SACK_PERMITTED: u8 = 4;
const KIND_SACK: u8 = 5;
const KIND_TIMESTAMPS: u8 = 8;

/// The 8 control bits of byte 13 (RFC 9293 3.1, RFC 3168 for ECE and CWR).
/// The AE bit of RFC 9768 (in the reserved bits) is not represented: it is
/// dropped on parse and sent as zero.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// No flags set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// True if every flag of `other` is set in `self`.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any flag of `other` is set in `self`.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }

    pub const fn ece(self) -> bool {
        self.contains(Self::ECE)
    }

    pub const fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

/// packetdrill's notation, in its order (`tcp_packet_to_string` in
/// packetdrill's packet_to_string.c, itself tcpdump's): `F S R P . U E W`,
/// with `.` for ACK. So a SYN-ACK is `S.`, a data segment `P.`, a pure ACK
/// `.`; no flags at all print as nothing.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LETTERS: [(TcpFlags, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        for (flag, letter) in LETTERS {
            if self.contains(flag) {
                fmt::Write::write_char(f, letter)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// Up to four SACK blocks `(left edge, right edge)` (RFC 2018 3), in the
/// order they appear on the wire. Unused slots are always zero.
#[derive(Clone, Copy, Default, Debug)]
pub struct SackBlocks {
    blocks: [(u32, u32); MAX_SACK_BLOCKS],
    len: u8,
}

impl SackBlocks {
    pub const fn new() -> SackBlocks {
        SackBlocks {
            blocks: [(0, 0); MAX_SACK_BLOCKS],
            len: 0,
        }
    }

    /// Append a block; false (and nothing changes) if four are held already.
    pub fn push(&mut self, block: (u32, u32)) -> bool {
        match self.blocks.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = block;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn as_slice(&self) -> &[(u32, u32)] {
        self.blocks.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.as_slice().iter().copied()
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = SackBlocks::new();
    }

    /// Keep the first `len` blocks.
    pub fn truncate(&mut self, len: usize) {
        while self.len() > len {
            self.len -= 1;
            self.blocks[usize::from(self.len)] = (0, 0);
        }
    }
}

impl PartialEq for SackBlocks {
    fn eq(&self, other: &SackBlocks) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SackBlocks {}

impl FromIterator<(u32, u32)> for SackBlocks {
    /// Takes the first four blocks and ignores the rest.
    fn from_iter<I: IntoIterator<Item = (u32, u32)>>(iter: I) -> SackBlocks {
        let mut blocks = SackBlocks::new();
        for block in iter.into_iter().take(MAX_SACK_BLOCKS) {
            blocks.push(block);
        }
        blocks
    }
}

/// The options we understand. Everything else is skipped on parse and never
/// emitted.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpOptions {
    /// Maximum segment size (RFC 9293 3.7.1); SYN only.
    pub mss: Option<u16>,
    /// Window scale shift count as received (RFC 7323 2); SYN only. The
    /// caller clamps it to 14 (RFC 7323 2.3).
    pub window_scale: Option<u8>,
    /// SACK-permitted (RFC 2018 2); SYN only.
    pub sack_permitted: bool,
    /// (TSval, TSecr) (RFC 7323 3).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (RFC 2018 3). On emit, only as many as fit in the option
    /// space left by the other options are written, the first ones first.
    pub sack_blocks: SackBlocks,
}

impl TcpOptions {
    /// Decode an option list the way Linux does (see the module docs).
    /// Never fails: whatever cannot be decoded is ignored.
    pub fn parse(mut opts: &[u8]) -> TcpOptions {
        let mut out = TcpOptions::default();
        // Every iteration consumes at least one byte, so this ends.
        while let Some((&kind, rest)) = opts.split_first() {
            match kind {
                KIND_EOL => break,
                KIND_NOP => {
                    opts = rest;
                    continue;
                }
                _ => {}
            }
            // Linux: "silly options" (length < 2) and partial options (longer
            // than what is left) end the parse.
            let Some(&len) = rest.first() else { break };
            let len = usize::from(len);
            if len < 2 || len > opts.len() {
                break;
            }
            let (option, tail) = opts.split_at(len);
            let body = option.get(2..).unwrap_or(&[]);
            match kind {
                KIND_MSS => {
                    if let Ok(b) = <[u8; 2]>::try_from(body) {
                        out.mss = Some(u16::from_be_bytes(b));
                    }
                }
                KIND_WINDOW_SCALE => {
                    if let [shift] = body {
                        out.window_scale = Some(*shift);
                    }
                }
                KIND_SACK_PERMITTED if body.is_empty() => out.sack_permitted = true,
                KIND_TIMESTAMPS => {
                    if let Ok(b) = <[u8; 8]>::try_from(body) {
                        let [v0, v1, v2, v3, e0, e1, e2, e3] = b;
                        out.timestamps = Some((
                            u32::from_be_bytes([v0, v1, v2, v3]),
                            u32::from_be_bytes([e0, e1, e2, e3]),
                        ));
                    }
                }
                KIND_SACK => {
                    // RFC 2018 3: 2 + 8n bytes; Linux also wants n >= 1.
                    let n = body.len() / 8;
                    if body.len() % 8 == 0 && (1..=MAX_SACK_BLOCKS).contains(&n) {
                        out.sack_blocks = body
                            .chunks_exact(8)
                            .map(|c| {
                                let left = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                                let right = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
                                (left, right)
                            })
                            .collect();
                    }
                }
                _ => {}
            }
            opts = tail;
        }
        out
    }

    /// Bytes of option space [`TcpRepr::emit`] writes for these options
    /// (a multiple of 4, at most 40) and how many SACK blocks fit in it.
    fn layout(&self) -> (usize, usize) {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.timestamps.is_some() {
            // SACK-permitted, if any, rides in the two bytes before TS.
            len += 12;
        } else if self.sack_permitted {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        // At most 20 so far. Linux's tcp_established_options: as many blocks
        // as fit after a 4-byte NOP NOP kind length prefix.
        let room = MAX_OPTIONS_LEN.saturating_sub(len).saturating_sub(4);
        let blocks = self.sack_blocks.len().min(room / 8);
        if blocks > 0 {
            len += 4 + 8 * blocks;
        }
        (len, blocks)
    }

    /// Write the options in Linux's order into `out`; returns the length.
    fn write(&self, out: &mut [u8; MAX_OPTIONS_LEN]) -> usize {
        let (_, blocks) = self.layout();
        let mut w = OptionWriter { out, at: 0 };
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            w.put(&[KIND_MSS, 4, hi, lo]);
        }
        match (self.timestamps, self.sack_permitted) {
            (Some((val, ecr)), sack_permitted) => {
                if sack_permitted {
                    w.put(&[KIND_SACK_PERMITTED, 2, KIND_TIMESTAMPS, 10]);
                } else {
                    w.put(&[KIND_NOP, KIND_NOP, KIND_TIMESTAMPS, 10]);
                }
                w.put(&val.to_be_bytes());
                w.put(&ecr.to_be_bytes());
            }
            (None, true) => w.put(&[KIND_NOP, KIND_NOP, KIND_SACK_PERMITTED, 2]),
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            w.put(&[KIND_NOP, KIND_WINDOW_SCALE, 3, shift]);
        }
        if blocks > 0 {
            // blocks <= 4, so the length is at most 34.
            w.put(&[KIND_NOP, KIND_NOP, KIND_SACK, (2 + 8 * blocks) as u8]);
            for (left, right) in self.sack_blocks.iter().take(blocks) {
                w.put(&left.to_be_bytes());
                w.put(&right.to_be_bytes());
            }
        }
        w.at
    }
}

/// The options as [`TcpRepr::emit`] lays them out, in packetdrill's notation
/// (`tcp_options_to_string` in packetdrill's tcp_options_to_string.c), e.g.
/// `mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7` for a Linux SYN. Padding
/// NOPs are printed as `nop`, as packetdrill prints what is on the wire.
impl fmt::Display for TcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, blocks) = self.layout();
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            Ok(())
        };
        if let Some(mss) = self.mss {
            sep(f)?;
            write!(f, "mss {mss}")?;
        }
        match (self.timestamps, self.sack_permitted) {
            (Some((val, ecr)), sack_permitted) => {
                sep(f)?;
                if sack_permitted {
                    f.write_str("sackOK")?;
                } else {
                    f.write_str("nop,nop")?;
                }
                sep(f)?;
                write!(f, "TS val {val} ecr {ecr}")?;
            }
            (None, true) => {
                sep(f)?;
                f.write_str("nop,nop,sackOK")?;
            }
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            sep(f)?;
            write!(f, "nop,wscale {shift}")?;
        }
        if blocks > 0 {
            sep(f)?;
            f.write_str("nop,nop,sack")?;
            for (left, right) in self.sack_blocks.iter().take(blocks) {
                write!(f, " {left}:{right}")?;
            }
        }
        Ok(())
    }
}

/// Appends to the option buffer, silently dropping what would not fit (which
/// [`TcpOptions::layout`] guarantees never happens).
struct OptionWriter<'a> {
    out: &'a mut [u8; MAX_OPTIONS_LEN],
    at: usize,
}

impl OptionWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at.saturating_add(bytes.len());
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
            self.at = end;
        }
    }
}

/// A TCP header: everything but the checksum, which is computed on emit and
/// verified on parse.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The raw 16-bit field: not scaled (RFC 7323 2.3).
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpParseError {
    /// Fewer than 20 bytes.
    Truncated,
    /// The data offset is below 5 words or beyond the segment.
    BadDataOffset,
    BadChecksum,
}

impl fmt::Display for TcpParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpParseError::Truncated => "TCP segment shorter than 20 bytes",
            TcpParseError::BadDataOffset => "TCP data offset below 5 or beyond the segment",
            TcpParseError::BadChecksum => "TCP checksum mismatch",
        })
    }
}

impl std::error::Error for TcpParseError {}

impl TcpRepr {
    pub const MIN_HEADER_LEN: usize = 20;
    pub const MAX_HEADER_LEN: usize = Self::MIN_HEADER_LEN + MAX_OPTIONS_LEN;

    /// Parse a segment carried from `src` to `dst` and, if `verify_checksum`,
    /// verify its checksum with the IPv4 pseudo-header (RFC 9293 3.1). Pass
    /// false only when the device vouches for the checksum (a GSO frame with
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM` carries a partial one). Returns the
    /// header and the payload: TCP has no length field, so the payload is all
    /// of `data` after the header.
    pub fn parse(
        data: &[u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<(TcpRepr, &[u8]), TcpParseError> {
        let Some(h) = data.first_chunk::<{ Self::MIN_HEADER_LEN }>() else {
            return Err(TcpParseError::Truncated);
        };
        let header_len = usize::from(h[12] >> 4) * 4;
        if header_len < Self::MIN_HEADER_LEN || header_len > data.len() {
            return Err(TcpParseError::BadDataOffset);
        }
        if verify_checksum {
            let sum = super::sum16(super::pseudo_header_sum(src, dst, PROTOCOL, data.len()), data);
            if super::finish16(sum) != 0 {
                return Err(TcpParseError::BadChecksum);
            }
        }
        let options = TcpOptions::parse(data.get(Self::MIN_HEADER_LEN..header_len).unwrap_or(&[]));
        let repr = TcpRepr {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            flags: TcpFlags(h[13]),
            window: u16::from_be_bytes([h[14], h[15]]),
            urgent: u16::from_be_bytes([h[18], h[19]]),
            options,
        };
        Ok((repr, data.get(header_len..).unwrap_or(&[])))
    }

    /// Bytes the header takes with these options: 20 plus the options padded
    /// to a multiple of 4; at most 60.
    pub fn header_len(&self) -> usize {
        Self::MIN_HEADER_LEN + self.options.layout().0
    }

    /// Write the header and options, with the checksum, for a payload already
    /// in `buf[header_len()..header_len() + payload_len]`. Returns the
    /// segment length, or 0 (writing nothing) if `buf` is shorter than that.
    ///
    /// Options are written as given, whatever the flags: the socket puts MSS,
    /// window scale and SACK-permitted only on SYNs.
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> usize {
        self.emit_with(buf, src, dst, payload_len, true)
    }

    /// As [`Self::emit`], but the checksum field gets only the
    /// pseudo-header sum, for a device that completes it (checksum
    /// offload; Linux's CHECKSUM_PARTIAL, `~tcp_v4_check(len, saddr,
    /// daddr, 0)`). The payload is not read.
    pub fn emit_partial(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> usize {
        self.emit_with(buf, src, dst, payload_len, false)
    }

    fn emit_with(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_len: usize,
        full: bool,
    ) -> usize {
        let mut options = [0u8; MAX_OPTIONS_LEN];
        let options_len = self.options.write(&mut options);
        let header_len = Self::MIN_HEADER_LEN + options_len;
        let Some(total) = header_len.checked_add(payload_len) else {
            return 0;
        };
        let Some(segment) = buf.get_mut(..total) else {
            return 0;
        };
        let (header, _) = segment.split_at_mut(header_len);
        header[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        header[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        header[4..8].copy_from_slice(&self.seq.to_be_bytes());
        header[8..12].copy_from_slice(&self.ack.to_be_bytes());
        // header_len <= 60, so the word count fits the 4-bit field.
        header[12] = ((header_len / 4) as u8) << 4;
        header[13] = self.flags.0;
        header[14..16].copy_from_slice(&self.window.to_be_bytes());
        header[16..18].copy_from_slice(&[0, 0]);
        header[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        header[Self::MIN_HEADER_LEN..].copy_from_slice(&options[..options_len]);
        let pseudo = super::pseudo_header_sum(src, dst, PROTOCOL, total);
        // Unlike UDP, a computed zero is sent as zero (RFC 9293 3.1 has no
        // "no checksum" value). A partial checksum is the folded,
        // uncomplemented pseudo-header sum the device adds the rest to.
        let checksum = if full {
            // The fixed header from its values (see `sum_be_words`), the
            // options and payload from the buffer.
            let fixed = super::sum_be_words(&[
                self.src_port,
                self.dst_port,
                (self.seq >> 16) as u16,
                self.seq as u16,
                (self.ack >> 16) as u16,
                self.ack as u16,
                u16::from_be_bytes([header[12], self.flags.0]),
                self.window,
                self.urgent,
            ]);
            let initial = super::add_sums(pseudo, fixed);
            super::finish16(super::sum16(initial, &segment[Self::MIN_HEADER_LEN..]))
        } else {
            !super::finish16(pseudo)
        };
        segment[16..18].copy_from_slice(&checksum.to_be_bytes());
        total
    }

    /// Sequence space the segment occupies: the payload plus one for SYN and
    /// one for FIN (RFC 9293 3.4).
    pub fn segment_len(&self, payload_len: usize) -> usize {
        payload_len
            .saturating_add(usize::from(self.flags.syn()))
            .saturating_add(usize::from(self.flags.fin()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    // A Linux SYN, 10.77.0.1:40000 -> 10.77.0.2:80, `S 3405691582:3405691582(0)
    // win 64240 <mss 1460,sackOK,TS val 2587565101 ecr 0,nop,wscale 7>`. The
    // checksum (0x5fbc) was computed independently (RFC 1071 in Python) and is
    // cross-checked against etherparse below.
    const LINUX_SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, // ports
        0xca, 0xfe, 0xba, 0xbe, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // data offset 10, SYN, window 64240
        0x5f, 0xbc, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // mss 1460
        0x04, 0x02, 0x08, 0x0a, // sackOK, TS
        0x9a, 0x3b, 0x1c, 0x2d, // TSval
        0x00, 0x00, 0x00, 0x00, // TSecr
        0x01, 0x03, 0x03, 0x07, // nop, wscale 7
    ];

    // A Linux SYN-ACK without timestamps, 10.77.0.1:80 -> 10.77.0.2:40000:
    // `S. 287454020:287454020(0) ack 3405691583 win 64240
    // <mss 1460,nop,nop,sackOK,nop,wscale 7>`.
    #[rustfmt::skip]
    const LINUX_SYNACK_NO_TS: [u8; 32] = [
        0x00, 0x50, 0x9c, 0x40, 0x11, 0x22, 0x33, 0x44, 0xca, 0xfe, 0xba, 0xbf, 0x80, 0x12, 0xfa, 0xf0,
        0xf8, 0xbe, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02, 0x01, 0x03, 0x03, 0x07,
    ];

    // A Linux data segment with timestamps, 10.77.0.1:40000 -> 10.77.0.2:80:
    // `P. 1:19(18) ack 1 win 502 <nop,nop,TS val 2587565120 ecr 7>`.
    fn linux_data() -> Vec<u8> {
        #[rustfmt::skip]
        let mut v = vec![
            0x9c, 0x40, 0x00, 0x50, 0xca, 0xfe, 0xba, 0xbf, 0x11, 0x22, 0x33, 0x45, 0x80, 0x18, 0x01, 0xf6,
            0x64, 0x38, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x9a, 0x3b, 0x1c, 0x40, 0x00, 0x00, 0x00, 0x07,
        ];
        v.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
        v
    }

    fn opts(mss: Option<u16>, ws: Option<u8>, sack: bool, ts: Option<(u32, u32)>) -> TcpOptions {
        TcpOptions {
            mss,
            window_scale: ws,
            sack_permitted: sack,
            timestamps: ts,
            sack_blocks: SackBlocks::new(),
        }
    }

    /// Emit `repr` with `payload` and return the whole segment.
    fn emit(repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
        let hl = repr.header_len();
        let mut buf = vec![0u8; hl + payload.len()];
        buf[hl..].copy_from_slice(payload);
        assert_eq!(repr.emit(&mut buf, SRC, DST, payload.len()), buf.len());
        buf
    }

    /// The checksum etherparse computes for a segment (an independent check).
    fn etherparse_checksum(segment: &[u8]) -> u16 {
        let (header, payload) = etherparse::TcpHeader::from_slice(segment).unwrap();
        header
            .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload)
            .unwrap()
    }

    #[test]
    fn linux_syn_parses() {
        let (repr, payload) = TcpRepr::parse(&LINUX_SYN, SRC, DST, true).unwrap();
        assert!(payload.is_empty());
        assert_eq!(
            repr,
            TcpRepr {
                src_port: 40000,
                dst_port: 80,
                seq: 0xcafebabe,
                ack: 0,
                flags: TcpFlags::SYN,
                window: 64240,
                urgent: 0,
                options: opts(Some(1460), Some(7), true, Some((0x9a3b1c2d, 0))),
            }
        );
        assert_eq!(repr.segment_len(0), 1);
        assert_eq!(etherparse_checksum(&LINUX_SYN), 0x5fbc);
    }

    #[test]
    fn linux_segments_round_trip_byte_for_byte() {
        for segment in [LINUX_SYN.to_vec(), LINUX_SYNACK_NO_TS.to_vec(), linux_data()] {
            let (repr, payload) = TcpRepr::parse(&segment, SRC, DST, true).unwrap();
            assert_eq!(emit(&repr, payload), segment, "{repr:?}");
        }
        let (synack, _) = TcpRepr::parse(&LINUX_SYNACK_NO_TS, SRC, DST, true).unwrap();
        assert_eq!(synack.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(synack.options, opts(Some(1460), Some(7), true, None));
        let data = linux_data();
        let (repr, payload) = TcpRepr::parse(&data, SRC, DST, true).unwrap();
        assert_eq!(payload, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(repr.flags.to_string(), "P.");
        assert_eq!(repr.options, opts(None, None, false, Some((0x9a3b1c40, 7))));
        assert_eq!(repr.segment_len(payload.len()), 18);
    }

    /// The four SYN option sets, in Linux's tcp_options_write order.
    #[test]
    fn syn_option_order_matches_linux() {
        let cases: [(TcpOptions, &[u8], &str); 4] = [
            (
                opts(Some(1460), Some(7), true, Some((1, 0))),
                &[2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7],
                "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7",
            ),
            (
                opts(Some(1460), Some(7), false, Some((1, 0))),
                &[2, 4, 5, 180, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7],
                "mss 1460,nop,nop,TS val 1 ecr 0,nop,wscale 7",
            ),
            (
                opts(Some(1460), Some(7), true, None),
                &[2, 4, 5, 180, 1, 1, 4, 2, 1, 3, 3, 7],
                "mss 1460,nop,nop,sackOK,nop,wscale 7",
            ),
            (opts(Some(1460), None, false, None), &[2, 4, 5, 180], "mss 1460"),
        ];
        for (options, wire, text) in cases {
            let repr = TcpRepr {
                flags: TcpFlags::SYN,
                window: 65535,
                options,
                ..TcpRepr::default()
            };
            let segment = emit(&repr, &[]);
            assert_eq!(&segment[20..], wire, "{text}");
            assert_eq!(usize::from(segment[12] >> 4) * 4, 20 + wire.len());
            assert_eq!(options.to_string(), text);
            assert_eq!(
                etherparse_checksum(&segment),
                u16::from_be_bytes([segment[16], segment[17]])
            );
            assert_eq!(TcpRepr::parse(&segment, SRC, DST, true).unwrap().0, repr);
        }
    }

    #[test]
    fn sack_blocks_after_timestamps_and_only_as_many_as_fit() {
        let blocks: SackBlocks = [(100, 200), (300, 400), (500, 600), (700, 800)]
            .into_iter()
            .collect();
        // With TS: 12 + 4 + 3 * 8 = 40 bytes, the fourth block is dropped.
        let mut o = opts(None, None, false, Some((5, 6)));
        o.sack_blocks = blocks;
        let repr = TcpRepr {
            flags: TcpFlags::ACK,
            options: o,
            ..TcpRepr::default()
        };
        assert_eq!(repr.header_len(), 60);
        let segment = emit(&repr, b"x");
        #[rustfmt::skip]
        let want: &[u8] = &[
            1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6,
            1, 1, 5, 26,
            0, 0, 0, 100, 0, 0, 0, 200,
            0, 0, 1, 44, 0, 0, 1, 144,
            0, 0, 1, 244, 0, 0, 2, 88,
        ];
        assert_eq!(&segment[20..60], want);
        assert_eq!(
            o.to_string(),
            "nop,nop,TS val 5 ecr 6,nop,nop,sack 100:200 300:400 500:600"
        );
        let (parsed, payload) = TcpRepr::parse(&segment, SRC, DST, true).unwrap();
        assert_eq!(payload, b"x");
        assert_eq!(parsed.options.sack_blocks.as_slice(), &blocks.as_slice()[..3]);

        // Without TS all four fit: 4 + 32 = 36 bytes.
        let o = TcpOptions {
            sack_blocks: blocks,
            ..TcpOptions::default()
        };
        let repr = TcpRepr {
            flags: TcpFlags::ACK,
            options: o,
            ..TcpRepr::default()
        };
        assert_eq!(repr.header_len(), 56);
        let segment = emit(&repr, &[]);
        assert_eq!(&segment[20..24], &[1, 1, 5, 34]);
        assert_eq!(
            TcpRepr::parse(&segment, SRC, DST, true)
                .unwrap()
                .0
                .options
                .sack_blocks,
            blocks
        );
    }

    /// A segment with `options` as its raw option bytes (padded with zeros,
    /// i.e. EOL, to a multiple of 4) and a valid checksum.
    fn with_raw_options(options: &[u8]) -> Vec<u8> {
        let padded = options.len().div_ceil(4) * 4;
        let mut seg = vec![0u8; 20 + padded];
        seg[12] = (((20 + padded) / 4) as u8) << 4;
        seg[13] = TcpFlags::SYN.0;
        seg[20..20 + options.len()].copy_from_slice(options);
        let sum = finish_checksum(&seg);
        seg[16..18].copy_from_slice(&sum.to_be_bytes());
        seg
    }

    fn finish_checksum(seg: &[u8]) -> u16 {
        crate::wire::finish16(crate::wire::sum16(
            crate::wire::pseudo_header_sum(SRC, DST, PROTOCOL, seg.len()),
            seg,
        ))
    }

    fn parse_raw(options: &[u8]) -> TcpOptions {
        let seg = with_raw_options(options);
        TcpRepr::parse(&seg, SRC, DST, true).unwrap().0.options
    }

    #[test]
    fn malformed_options_stop_or_are_skipped_like_linux() {
        let mss = [2, 4, 5, 180];
        // Zero length: parsing stops, what came before is kept.
        assert_eq!(
            parse_raw(&[&mss[..], &[3, 0, 1, 1], &[4, 2]].concat()).mss,
            Some(1460)
        );
        assert!(!parse_raw(&[&mss[..], &[8, 0], &[4, 2]].concat()).sack_permitted);
        // Length 1 ("silly option").
        assert_eq!(parse_raw(&[254, 1, 2, 4, 5, 180]), TcpOptions::default());
        // Length beyond the option space: a truncated TS ends the parse.
        assert_eq!(
            parse_raw(&[&mss[..], &[8, 10, 0, 0, 0, 1]].concat()),
            opts(Some(1460), None, false, None)
        );
        // A kind with no length byte at the very end.
        assert_eq!(parse_raw(&[1, 1, 1, 8]), TcpOptions::default());
        assert_eq!(parse_raw(&[4, 2, 1, 5]), opts(None, None, true, None));
        // Wrong length for a known kind: skipped by its length and ignored,
        // and the options after it still count.
        assert_eq!(
            parse_raw(&[8, 6, 0, 0, 0, 1, 2, 3, 5, 3, 4, 7, 7, 4, 2]),
            opts(None, None, true, None)
        );
        assert_eq!(parse_raw(&[5, 2, 4, 2]).sack_blocks, SackBlocks::new());
        // SACK of 2 + 7 bytes is skipped; the MSS after it counts.
        assert_eq!(
            parse_raw(&[5, 9, 0, 0, 0, 1, 0, 0, 0, 2, 4, 3, 0]),
            opts(Some(768), None, false, None)
        );
        // Unknown kind 254 with length 4 is skipped.
        assert_eq!(parse_raw(&[254, 4, 0xf9, 0x89, 2, 4, 5, 180]).mss, Some(1460));
        // EOL mid-way: nothing after it is read.
        assert_eq!(parse_raw(&[1, 0, 2, 4, 5, 180]), TcpOptions::default());
        // 40 bytes of NOPs.
        assert_eq!(parse_raw(&[1; 40]), TcpOptions::default());
        // A later copy replaces an earlier one.
        assert_eq!(parse_raw(&[2, 4, 0, 1, 2, 4, 0, 2]).mss, Some(2));
        // Window scale is reported as received; clamping is the caller's.
        assert_eq!(parse_raw(&[3, 3, 200]).window_scale, Some(200));
    }

    #[test]
    fn header_length_checks() {
        assert_eq!(
            TcpRepr::parse(&LINUX_SYN[..19], SRC, DST, false),
            Err(TcpParseError::Truncated)
        );
        assert_eq!(
            TcpRepr::parse(&[], SRC, DST, false),
            Err(TcpParseError::Truncated)
        );
        // Data offset 10 words but only 39 bytes.
        assert_eq!(
            TcpRepr::parse(&LINUX_SYN[..39], SRC, DST, false),
            Err(TcpParseError::BadDataOffset)
        );
        for doff in 0..5u8 {
            let mut seg = LINUX_SYN;
            seg[12] = doff << 4;
            assert_eq!(
                TcpRepr::parse(&seg, SRC, DST, false),
                Err(TcpParseError::BadDataOffset)
            );
        }
        // Data offset 5 with the rest as payload; reserved bits ignored.
        let mut seg = LINUX_SYN;
        seg[12] = 0x5f;
        let (repr, payload) = TcpRepr::parse(&seg, SRC, DST, false).unwrap();
        assert_eq!(repr.options, TcpOptions::default());
        assert_eq!(payload, &LINUX_SYN[20..]);
    }

    #[test]
    fn checksum_is_verified_only_when_asked() {
        let mut seg = LINUX_SYN;
        seg[5] ^= 1;
        assert_eq!(
            TcpRepr::parse(&seg, SRC, DST, true),
            Err(TcpParseError::BadChecksum)
        );
        assert!(TcpRepr::parse(&seg, SRC, DST, false).is_ok());
        // The pseudo-header is covered.
        assert_eq!(
            TcpRepr::parse(&LINUX_SYN, SRC, Ipv4Addr::new(10, 77, 0, 3), true),
            Err(TcpParseError::BadChecksum)
        );
    }

    #[test]
    fn emit_into_short_buffer_writes_nothing() {
        let repr = TcpRepr {
            options: opts(Some(1460), None, false, None),
            ..TcpRepr::default()
        };
        let mut buf = [0xaau8; 30];
        assert_eq!(repr.emit(&mut buf, SRC, DST, 7), 0);
        assert_eq!(repr.emit(&mut buf, SRC, DST, usize::MAX), 0);
        assert!(buf.iter().all(|&b| b == 0xaa));
        assert_eq!(repr.emit(&mut buf, SRC, DST, 6), 30);
    }

    #[test]
    fn flags_print_like_packetdrill() {
        let f = |flags: &[TcpFlags]| flags.iter().fold(TcpFlags::empty(), |a, &b| a | b).to_string();
        assert_eq!(f(&[TcpFlags::SYN]), "S");
        assert_eq!(f(&[TcpFlags::SYN, TcpFlags::ACK]), "S.");
        assert_eq!(f(&[TcpFlags::PSH, TcpFlags::ACK]), "P.");
        assert_eq!(f(&[TcpFlags::FIN, TcpFlags::ACK]), "F.");
        assert_eq!(f(&[TcpFlags::RST]), "R");
        assert_eq!(f(&[TcpFlags::RST, TcpFlags::ACK]), "R.");
        assert_eq!(f(&[TcpFlags::ACK]), ".");
        assert_eq!(TcpFlags(0xff).to_string(), "FSRP.UEW");
        assert_eq!(f(&[TcpFlags::SYN, TcpFlags::ECE, TcpFlags::CWR]), "SEW");
        assert_eq!(TcpFlags::empty().to_string(), "");
        assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "TcpFlags(S.)");
        let mut flags = TcpFlags::FIN | TcpFlags::ACK;
        assert!(flags.fin() && flags.ack() && !flags.syn());
        assert!(flags.contains(TcpFlags::FIN | TcpFlags::ACK));
        assert!(!flags.contains(TcpFlags::FIN | TcpFlags::SYN));
        assert!(flags.intersects(TcpFlags::FIN | TcpFlags::SYN));
        flags.remove(TcpFlags::FIN);
        flags.insert(TcpFlags::PSH);
        assert_eq!(flags, TcpFlags::PSH | TcpFlags::ACK);
    }

    #[test]
    fn sack_blocks_container() {
        let mut b = SackBlocks::new();
        assert!(b.is_empty());
        for i in 0..4 {
            assert!(b.push((i, i + 1)));
        }
        assert!(!b.push((9, 10)));
        assert_eq!(b.len(), 4);
        b.truncate(2);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
        let same: SackBlocks = [(0, 1), (1, 2)].into_iter().collect();
        assert_eq!(b, same);
        b.clear();
        assert_eq!(b, SackBlocks::default());
    }

    #[test]
    fn segment_len_counts_syn_and_fin() {
        let mut repr = TcpRepr::default();
        assert_eq!(repr.segment_len(10), 10);
        repr.flags = TcpFlags::SYN | TcpFlags::FIN;
        assert_eq!(repr.segment_len(10), 12);
        assert_eq!(repr.segment_len(usize::MAX), usize::MAX);
    }

    fn options_strategy() -> impl Strategy<Value = TcpOptions> {
        (
            any::<Option<u16>>(),
            any::<Option<u8>>(),
            any::<bool>(),
            any::<Option<(u32, u32)>>(),
            prop::collection::vec(any::<(u32, u32)>(), 0..=4),
        )
            .prop_map(
                |(mss, window_scale, sack_permitted, timestamps, blocks)| TcpOptions {
                    mss,
                    window_scale,
                    sack_permitted,
                    timestamps,
                    sack_blocks: blocks.into_iter().collect(),
                },
            )
    }

    fn repr_strategy() -> impl Strategy<Value = TcpRepr> {
        (
            any::<(u16, u16, u32, u32)>(),
            any::<(u8, u16, u16)>(),
            options_strategy(),
        )
            .prop_map(
                |((src_port, dst_port, seq, ack), (flags, window, urgent), options)| TcpRepr {
                    src_port,
                    dst_port,
                    seq,
                    ack,
                    flags: TcpFlags(flags),
                    window,
                    urgent,
                    options,
                },
            )
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(
            repr in repr_strategy(),
            payload in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let segment = emit(&repr, &payload);
            let hl = repr.header_len();
            prop_assert!(hl % 4 == 0 && (20..=60).contains(&hl));
            let (parsed, p) = TcpRepr::parse(&segment, SRC, DST, true).unwrap();
            prop_assert_eq!(p, &payload[..]);
            // Only the SACK blocks that fit are sent.
            let mut want = repr;
            let (_, fit) = repr.options.layout();
            want.options.sack_blocks.truncate(fit);
            prop_assert_eq!(parsed, want);
            prop_assert_eq!(parsed.header_len(), hl);
            // An independent implementation agrees on the checksum.
            prop_assert_eq!(etherparse_checksum(&segment), u16::from_be_bytes([segment[16], segment[17]]));
        }

        #[test]
        fn parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..80), verify: bool) {
            let _ = TcpRepr::parse(&data, SRC, DST, verify);
        }

        #[test]
        fn options_parse_never_panics(options in prop::collection::vec(any::<u8>(), 0..=40)) {
            let seg = with_raw_options(&options);
            let parsed = TcpRepr::parse(&seg, SRC, DST, true).unwrap().0.options;
            prop_assert!(parsed.sack_blocks.len() <= MAX_SACK_BLOCKS);
        }

        /// Options built from well-formed pieces in any order and mixed with
        /// NOPs are all found.
        #[test]
        fn well_formed_options_in_any_order(
            pieces in prop::collection::vec((0u8..6, any::<u32>(), any::<u32>()), 0..6),
        ) {
            let mut raw = Vec::new();
            let mut want = TcpOptions::default();
            for (kind, a, b) in pieces {
                let before = want;
                let bytes: Vec<u8> = match kind {
                    0 => vec![1],
                    1 => { want.mss = Some(a as u16); [&[2, 4][..], &(a as u16).to_be_bytes()].concat() }
                    2 => { want.window_scale = Some(a as u8); vec![3, 3, a as u8] }
                    3 => { want.sack_permitted = true; vec![4, 2] }
                    4 => { want.timestamps = Some((a, b)); [&[8, 10][..], &a.to_be_bytes(), &b.to_be_bytes()].concat() }
                    _ => vec![254, 3, a as u8],
                };
                if raw.len() + bytes.len() > 40 {
                    want = before;
                    break;
                }
                raw.extend_from_slice(&bytes);
            }
            prop_assert_eq!(parse_raw(&raw), want);
        }
    }
}
