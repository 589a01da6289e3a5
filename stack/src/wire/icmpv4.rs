//! ICMPv4 (RFC 792), with the host requirements of RFC 1122 3.2.2.

use core::fmt;

/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of "rest").
pub const HEADER_LEN: usize = 8;

/// RFC 1812 4.3.2.3: an ICMP error quotes as much of the offending datagram
/// as fits in 576 bytes (RFC 792 asks only for the header and 8 bytes; Linux
/// quotes up to 576 in total too).
pub const ERROR_MAX_LEN: usize = 576;

pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const TYPE_SOURCE_QUENCH: u8 = 4;
pub const TYPE_REDIRECT: u8 = 5;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const TYPE_PARAMETER_PROBLEM: u8 = 12;

/// Destination-unreachable codes (RFC 792, RFC 1122 3.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnreachableCode {
    Net,
    Host,
    Protocol,
    Port,
    /// "Fragmentation needed and DF set": carries the next-hop MTU (RFC 1191).
    FragmentationNeeded,
    SourceRouteFailed,
    Other(u8),
}

impl From<u8> for UnreachableCode {
    fn from(c: u8) -> Self {
        match c {
            0 => UnreachableCode::Net,
            1 => UnreachableCode::Host,
            2 => UnreachableCode::Protocol,
            3 => UnreachableCode::Port,
            4 => UnreachableCode::FragmentationNeeded,
            5 => UnreachableCode::SourceRouteFailed,
            other => UnreachableCode::Other(other),
        }
    }
}

impl From<UnreachableCode> for u8 {
    fn from(c: UnreachableCode) -> u8 {
        match c {
            UnreachableCode::Net => 0,
            UnreachableCode::Host => 1,
            UnreachableCode::Protocol => 2,
            UnreachableCode::Port => 3,
            UnreachableCode::FragmentationNeeded => 4,
            UnreachableCode::SourceRouteFailed => 5,
            UnreachableCode::Other(c) => c,
        }
    }
}

impl fmt::Display for UnreachableCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnreachableCode::Net => f.write_str("network unreachable"),
            UnreachableCode::Host => f.write_str("host unreachable"),
            UnreachableCode::Protocol => f.write_str("protocol unreachable"),
            UnreachableCode::Port => f.write_str("port unreachable"),
            UnreachableCode::FragmentationNeeded => f.write_str("fragmentation needed"),
            UnreachableCode::SourceRouteFailed => f.write_str("source route failed"),
            UnreachableCode::Other(c) => write!(f, "destination unreachable (code {c})"),
        }
    }
}

/// A parsed ICMPv4 message. Error messages borrow the quoted original
/// datagram (its IP header and at least 8 bytes of its payload, if the
/// sender followed RFC 792).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Message<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    DestUnreachable {
        code: UnreachableCode,
        next_hop_mtu: u16,
        original: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        original: &'a [u8],
    },
    ParameterProblem {
        pointer: u8,
        original: &'a [u8],
    },
    SourceQuench {
        original: &'a [u8],
    },
    /// A type we do not act on (redirects, timestamps, ...).
    Other {
        msg_type: u8,
        code: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Error {
    Truncated,
    BadChecksum,
}

impl<'a> Icmpv4Message<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Icmpv4Error> {
        let slice = etherparse::Icmpv4Slice::from_slice(data).map_err(|_| Icmpv4Error::Truncated)?;
        if super::finish16(super::sum16(0, data)) != 0 {
            return Err(Icmpv4Error::BadChecksum);
        }
        let rest = slice.bytes5to8();
        let hi = u16::from_be_bytes([rest[0], rest[1]]);
        let lo = u16::from_be_bytes([rest[2], rest[3]]);
        // Icmpv4Slice::payload() depends on the type; we want everything
        // after the fixed 8 bytes for every type we handle.
        let body = &data[HEADER_LEN..];
        Ok(match (slice.type_u8(), slice.code_u8()) {
            (TYPE_ECHO_REQUEST, 0) => Icmpv4Message::EchoRequest {
                ident: hi,
                seq: lo,
                data: body,
            },
            (TYPE_ECHO_REPLY, 0) => Icmpv4Message::EchoReply {
                ident: hi,
                seq: lo,
                data: body,
            },
            (TYPE_DEST_UNREACHABLE, code) => Icmpv4Message::DestUnreachable {
                code: code.into(),
                next_hop_mtu: lo,
                original: body,
            },
            (TYPE_TIME_EXCEEDED, code) => Icmpv4Message::TimeExceeded { code, original: body },
            (TYPE_PARAMETER_PROBLEM, _) => Icmpv4Message::ParameterProblem {
                pointer: rest[0],
                original: body,
            },
            (TYPE_SOURCE_QUENCH, _) => Icmpv4Message::SourceQuench { original: body },
            (msg_type, code) => Icmpv4Message::Other { msg_type, code },
        })
    }

    /// Is this an ICMP error message? RFC 1122 3.2.2: never answer one with another.
    pub fn is_error(msg_type: u8) -> bool {
        matches!(
            msg_type,
            TYPE_DEST_UNREACHABLE
                | TYPE_SOURCE_QUENCH
                | TYPE_REDIRECT
                | TYPE_TIME_EXCEEDED
                | TYPE_PARAMETER_PROBLEM
        )
    }
}

/// Write an ICMP header whose body is already in `buf[HEADER_LEN..HEADER_LEN + body_len]`,
/// and compute the checksum over both. Returns the message length.
pub fn emit_in_place(buf: &mut [u8], msg_type: u8, code: u8, rest: [u8; 4], body_len: usize) -> usize {
    let len = HEADER_LEN + body_len;
    let msg = &mut buf[..len];
    msg[0] = msg_type;
    msg[1] = code;
    msg[2] = 0;
    msg[3] = 0;
    msg[4..8].copy_from_slice(&rest);
    let checksum = super::finish16(super::sum16(0, msg));
    msg[2..4].copy_from_slice(&checksum.to_be_bytes());
    len
}

/// Write a whole ICMP message with `body` copied in. Returns its length.
pub fn emit(buf: &mut [u8], msg_type: u8, code: u8, rest: [u8; 4], body: &[u8]) -> usize {
    buf[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
    emit_in_place(buf, msg_type, code, rest, body.len())
}

/// The "rest of header" of an echo message.
pub fn echo_rest(ident: u16, seq: u16) -> [u8; 4] {
    let i = ident.to_be_bytes();
    let s = seq.to_be_bytes();
    [i[0], i[1], s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn echo_round_trip(request: bool, ident: u16, seq: u16, data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let mut buf = vec![0u8; HEADER_LEN + data.len()];
            let t = if request { TYPE_ECHO_REQUEST } else { TYPE_ECHO_REPLY };
            emit(&mut buf, t, 0, echo_rest(ident, seq), &data);
            let parsed = Icmpv4Message::parse(&buf).unwrap();
            let expected = if request {
                Icmpv4Message::EchoRequest { ident, seq, data: &data }
            } else {
                Icmpv4Message::EchoReply { ident, seq, data: &data }
            };
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Icmpv4Message::parse(&data);
        }
    }

    // `ping -c1 -s 4` echo request: id 0x1234 seq 1, data "abcd".
    const ECHO: [u8; 12] = [8, 0, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];

    fn echo() -> Vec<u8> {
        let mut buf = vec![0u8; 12];
        emit(&mut buf, TYPE_ECHO_REQUEST, 0, echo_rest(0x1234, 1), b"abcd");
        buf
    }

    #[test]
    fn echo_request_round_trip() {
        let bytes = echo();
        assert_eq!(bytes[..2], ECHO[..2]);
        assert_eq!(bytes[4..], ECHO[4..]);
        assert_eq!(
            Icmpv4Message::parse(&bytes),
            Ok(Icmpv4Message::EchoRequest {
                ident: 0x1234,
                seq: 1,
                data: b"abcd"
            })
        );
    }

    #[test]
    fn bad_checksum_and_truncation() {
        let mut bytes = echo();
        bytes[9] ^= 1;
        assert_eq!(Icmpv4Message::parse(&bytes), Err(Icmpv4Error::BadChecksum));
        for len in 0..HEADER_LEN {
            assert_eq!(Icmpv4Message::parse(&echo()[..len]), Err(Icmpv4Error::Truncated));
        }
    }

    #[test]
    fn frag_needed_carries_mtu() {
        let mut buf = [0u8; 36];
        let quoted = [0x45u8; 28];
        let len = emit(&mut buf, TYPE_DEST_UNREACHABLE, 4, [0, 0, 0x05, 0x78], &quoted);
        match Icmpv4Message::parse(&buf[..len]).unwrap() {
            Icmpv4Message::DestUnreachable {
                code,
                next_hop_mtu,
                original,
            } => {
                assert_eq!(code, UnreachableCode::FragmentationNeeded);
                assert_eq!(next_hop_mtu, 1400);
                assert_eq!(original, &quoted);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Icmpv4Message::is_error(TYPE_DEST_UNREACHABLE));
        assert!(!Icmpv4Message::is_error(TYPE_ECHO_REQUEST));
    }
}
