//! HTTP/1.1 message syntax (RFC 9112) shared by the server and the client:
//! the buffered input, head framing and parsing, and message bodies
//! (Content-Length and the chunked transfer coding).

use std::fmt;
use std::io::{self, Read};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt};

/// A response status code with its reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    pub const CONTINUE: Status = Status(100);
    pub const OK: Status = Status(200);
    pub const MOVED_PERMANENTLY: Status = Status(301);
    pub const BAD_REQUEST: Status = Status(400);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const REQUEST_TIMEOUT: Status = Status(408);
    pub const LENGTH_REQUIRED: Status = Status(411);
    pub const CONTENT_TOO_LARGE: Status = Status(413);
    pub const URI_TOO_LONG: Status = Status(414);
    pub const EXPECTATION_FAILED: Status = Status(417);
    pub const HEADERS_TOO_LARGE: Status = Status(431);
    pub const INTERNAL_ERROR: Status = Status(500);
    pub const NOT_IMPLEMENTED: Status = Status(501);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// The reason phrase RFC 9110 section 15 gives the code.
    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            200 => "OK",
            301 => "Moved Permanently",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            414 => "URI Too Long",
            417 => "Expectation Failed",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// Size limits on what a peer may send in a message head.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest request line (or status line) in bytes; beyond it, 414.
    pub max_request_line: usize,
    /// Longest single header field line; beyond it, 431.
    pub max_header_line: usize,
    /// Most header fields (and trailer fields); beyond it, 431.
    pub max_headers: usize,
    /// Largest whole head, request line and fields; beyond it, 431.
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_line: 8 * 1024,
            max_headers: 100,
            max_head: 64 * 1024,
        }
    }
}

/// One header (or trailer) field, name as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Why a head could not be read or parsed.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed the connection before sending a byte of a head.
    Closed,
    /// The read timed out; `partial` if some of a head had arrived.
    Timeout {
        partial: bool,
    },
    /// A malformed or oversize head, with the status a server answers.
    Bad(Status, &'static str),
    Io(io::Error),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Closed => write!(f, "connection closed"),
            HeadError::Timeout { partial: true } => write!(f, "timed out in the middle of a head"),
            HeadError::Timeout { partial: false } => write!(f, "timed out waiting for a head"),
            HeadError::Bad(s, why) => write!(f, "{s}: {why}"),
            HeadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<HeadError> for io::Error {
    fn from(e: HeadError) -> io::Error {
        match e {
            HeadError::Io(e) => e,
            HeadError::Closed => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ),
            HeadError::Timeout { .. } => io::Error::new(io::ErrorKind::TimedOut, e.to_string()),
            HeadError::Bad(..) => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A reader with a buffer we can look into: heads are framed in place, and
/// whatever follows a head (its body, pipelined requests) stays buffered.
pub struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

const INITIAL_BUFFER: usize = 16 * 1024;

impl<R> Input<R> {
    pub fn new(inner: R) -> Input<R> {
        Input {
            inner,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Bytes read from the peer and not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Make room after the buffered bytes, for at least `want` buffered
    /// bytes in all, and return it.
    fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grow = want.max(self.buf.len() * 2).max(self.end + 1);
                self.buf.resize(grow, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Take `n` bytes out of the buffer into `out` (`n` at most what is
    /// buffered and what `out` holds).
    fn take_buffered(&mut self, out: &mut [u8]) -> usize {
        let n = (self.end - self.start).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        n
    }

    /// Whether a whole message head (after any blank lines) is buffered:
    /// the next request can be answered without waiting for the peer.
    pub fn has_complete_head(&self) -> bool {
        let data = self.buffered();
        let start = data
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(data.len());
        head_end(&data[start..], 0).is_some()
    }

    /// A buffered line of at most `max` bytes, without its CRLF (or bare
    /// LF, RFC 9112 2.2); `None` if more must be read first. `scanned`
    /// carries what was searched already between calls.
    fn line_step(&mut self, max: usize, scanned: &mut usize) -> io::Result<Option<Vec<u8>>> {
        let data = self.buffered();
        if let Some(i) = data[*scanned..].iter().position(|&b| b == b'\n') {
            let i = *scanned + i;
            let mut line = data[..i].to_vec();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.consume(i + 1);
            if line.len() > max {
                return Err(invalid("line too long"));
            }
            return Ok(Some(line));
        }
        *scanned = data.len();
        if *scanned > max + 1 {
            return Err(invalid("line too long"));
        }
        Ok(None)
    }

    /// One step of [`read_head`](Self::read_head): the head's length if it
    /// is all buffered, else whether part of one has arrived (more must be
    /// read). Blank lines before the head are skipped (RFC 9112 2.2).
    /// Oversize heads are refused as early as possible: a request line that
    /// outgrows its limit before its LF is 414, a head that outgrows its
    /// limit 431.
    fn head_step(&mut self, limits: &Limits, scanned: &mut usize) -> Result<Result<usize, bool>, HeadError> {
        // Skip empty lines before the start line.
        loop {
            match self.buffered() {
                [b'\r', b'\n', ..] => self.consume(2),
                [b'\n', ..] => self.consume(1),
                _ => break,
            }
            *scanned = 0;
        }
        let data = self.buffered();
        if let Some(len) = head_end(data, *scanned) {
            let first_line = data.iter().position(|&b| b == b'\n').unwrap_or(len);
            if first_line > limits.max_request_line + 1 {
                return Err(HeadError::Bad(Status::URI_TOO_LONG, "request line too long"));
            }
            if len > limits.max_head {
                return Err(HeadError::Bad(
                    Status::HEADERS_TOO_LARGE,
                    "header section too large",
                ));
            }
            return Ok(Ok(len));
        }
        *scanned = data.len().saturating_sub(3);
        let first_line_done = data.contains(&b'\n');
        if !first_line_done && data.len() > limits.max_request_line {
            return Err(HeadError::Bad(Status::URI_TOO_LONG, "request line too long"));
        }
        if data.len() > limits.max_head {
            return Err(HeadError::Bad(
                Status::HEADERS_TOO_LARGE,
                "header section too large",
            ));
        }
        Ok(Err(!data.is_empty() && data != b"\r"))
    }
}

/// What a read for a head returned, as a head error.
fn head_fill_result(r: io::Result<usize>, partial: bool) -> Result<(), HeadError> {
    match r {
        Ok(0) if partial => Err(HeadError::Bad(Status::BAD_REQUEST, "connection closed mid-head")),
        Ok(0) => Err(HeadError::Closed),
        Ok(_) => Ok(()),
        Err(e) if super::is_timeout(&e) => Err(HeadError::Timeout { partial }),
        Err(e) => Err(HeadError::Io(e)),
    }
}

impl<R: Read> Input<R> {
    /// Read more from the peer, making room for at least `want` buffered
    /// bytes in all. Returns how many arrived; 0 at end of stream.
    pub fn fill(&mut self, want: usize) -> io::Result<usize> {
        self.spare(want);
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Read into `out`, from the buffer first and then straight from the
    /// peer (no copy through the buffer for large reads).
    pub fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.start < self.end {
            return Ok(self.take_buffered(out));
        }
        loop {
            match self.inner.read(out) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// One line, without its CRLF (or bare LF, RFC 9112 2.2), of at most
    /// `max` bytes.
    pub fn read_line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            if let Some(line) = self.line_step(max, &mut scanned)? {
                return Ok(line);
            }
            if self.fill(scanned + 1)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "end of stream in a line",
                ));
            }
        }
    }

    /// Wait for a complete message head and return its length (through the
    /// blank line); see [`head_step`](Self::head_step).
    ///
    /// `before_read` runs before every read from the peer, with the
    /// transport and whether part of a head has arrived: it may set a read
    /// timeout, or fail the wait with a timeout.
    pub fn read_head(
        &mut self,
        limits: &Limits,
        before_read: &mut dyn FnMut(&R, bool) -> io::Result<()>,
    ) -> Result<usize, HeadError> {
        let mut scanned = 0;
        loop {
            let partial = match self.head_step(limits, &mut scanned)? {
                Ok(len) => return Ok(len),
                Err(partial) => partial,
            };
            let want = self.buffered().len() + 1;
            if let Err(e) = before_read(&self.inner, partial) {
                return Err(if super::is_timeout(&e) {
                    HeadError::Timeout { partial }
                } else {
                    HeadError::Io(e)
                });
            }
            head_fill_result(self.fill(want), partial)?;
        }
    }
}

impl<R: AsyncRead + Unpin> Input<R> {
    /// [`fill`](Self::fill) on an async stream. Cancel safe: bytes are
    /// buffered only in the poll that returns them.
    pub async fn fill_async(&mut self, want: usize) -> io::Result<usize> {
        self.spare(want);
        let n = self.inner.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// [`read_some`](Self::read_some) on an async stream.
    pub async fn read_some_async(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.start < self.end {
            return Ok(self.take_buffered(out));
        }
        self.inner.read(out).await
    }

    /// [`read_line`](Self::read_line) on an async stream.
    pub async fn read_line_async(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            if let Some(line) = self.line_step(max, &mut scanned)? {
                return Ok(line);
            }
            if self.fill_async(scanned + 1).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "end of stream in a line",
                ));
            }
        }
    }

    /// [`read_head`](Self::read_head) on an async stream: each read must
    /// complete by `deadline(partial)` (partial: whether part of a head
    /// has arrived), else the wait fails with a timeout.
    pub async fn read_head_async(
        &mut self,
        limits: &Limits,
        deadline: &mut (dyn FnMut(bool) -> Instant + Send),
    ) -> Result<usize, HeadError> {
        let mut scanned = 0;
        loop {
            let partial = match self.head_step(limits, &mut scanned)? {
                Ok(len) => return Ok(len),
                Err(partial) => partial,
            };
            let want = self.buffered().len() + 1;
            let until = tokio::time::Instant::from_std(deadline(partial));
            match tokio::time::timeout_at(until, self.fill_async(want)).await {
                Ok(r) => head_fill_result(r, partial)?,
                Err(_) => return Err(HeadError::Timeout { partial }),
            }
        }
    }
}

/// The length of the head in `data` through its terminating empty line, if
/// complete: the first LF that follows an LF with at most a CR between.
fn head_end(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < data.len() {
        if data[i] == b'\n' {
            if data.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Split a complete head into lines, without their line endings.
fn head_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// RFC 9110 5.6.2: token characters.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse one field line (RFC 9112 5): `name ":" OWS value OWS`.
pub fn parse_field(line: &[u8]) -> Result<Header, &'static str> {
    if line[0] == b' ' || line[0] == b'\t' {
        // RFC 9112 5.2: obsolete line folding may be rejected with 400.
        return Err("obsolete line folding");
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or("field without a colon")?;
    let name = &line[..colon];
    // RFC 9112 5.1: no whitespace between the name and the colon.
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err("bad field name");
    }
    let value = trim_ows(&line[colon + 1..]);
    // RFC 9110 5.5: CR, LF and NUL are never allowed in a value.
    if value
        .iter()
        .any(|&b| b == b'\r' || b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err("bad character in a field value");
    }
    Ok(Header {
        name: String::from_utf8_lossy(name).into_owned(),
        value: String::from_utf8_lossy(value).into_owned(),
    })
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The head's fields as httparse found them, checked against our limits
/// and RFC 9110 5.5 (httparse already refuses obs-fold, whitespace before
/// the colon and control characters; values are trimmed of OWS).
fn fields_from(parsed: &[httparse::Header<'_>], limits: &Limits) -> Result<Vec<Header>, HeadError> {
    let mut headers = Vec::with_capacity(parsed.len());
    for h in parsed {
        // name ":" OWS value: at least this long on the wire.
        if h.name.len() + 1 + h.value.len() > limits.max_header_line {
            return Err(HeadError::Bad(Status::HEADERS_TOO_LARGE, "header field too long"));
        }
        let value = trim_ows(h.value);
        if value
            .iter()
            .any(|&b| b == b'\r' || b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(HeadError::Bad(
                Status::BAD_REQUEST,
                "bad character in a field value",
            ));
        }
        headers.push(Header {
            name: h.name.to_string(),
            value: String::from_utf8_lossy(value).into_owned(),
        });
    }
    Ok(headers)
}

/// What an httparse error means for a head whose start line is `line`.
fn head_error(e: httparse::Error, line: &[u8], what: &'static str) -> HeadError {
    let bad = |why| HeadError::Bad(Status::BAD_REQUEST, why);
    match e {
        httparse::Error::TooManyHeaders => {
            HeadError::Bad(Status::HEADERS_TOO_LARGE, "too many header fields")
        }
        // httparse speaks HTTP/1.0 and 1.1 only; a well-formed other
        // version is answered 505 (RFC 9110 15.6.6), anything else 400.
        httparse::Error::Version => {
            let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            match parts.as_slice() {
                [_, _, v] => match parse_version(v) {
                    Some(v) if v.0 != 1 => {
                        HeadError::Bad(Status::VERSION_NOT_SUPPORTED, "only HTTP/1.x is spoken here")
                    }
                    _ => bad("malformed HTTP version"),
                },
                _ => bad(what),
            }
        }
        httparse::Error::Token => bad(what),
        httparse::Error::HeaderName => bad("bad field name"),
        httparse::Error::HeaderValue => bad("bad character in a field value"),
        httparse::Error::NewLine => bad("malformed line ending"),
        httparse::Error::Status => bad("malformed status code"),
    }
}

/// An HTTP version: only HTTP/1.x is spoken; others are parsed so that a
/// server can answer 505.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u8, pub u8);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP/{}.{}", self.0, self.1)
    }
}

/// RFC 9112 2.3: `HTTP-name "/" DIGIT "." DIGIT`, case-sensitive.
fn parse_version(v: &[u8]) -> Option<Version> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some(Version(major - b'0', minor - b'0'))
        }
        _ => None,
    }
}

/// A parsed request head.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Vec<Header>,
}

impl RequestHead {
    /// Parse a complete head (as framed by [`Input::read_head`]) with
    /// httparse, the parser hyper uses; the limits and the status codes
    /// stay ours.
    pub fn parse(head: &[u8], limits: &Limits) -> Result<RequestHead, HeadError> {
        let line = head_lines(head)
            .next()
            .ok_or(HeadError::Bad(Status::BAD_REQUEST, "empty request"))?;
        if line.len() > limits.max_request_line {
            return Err(HeadError::Bad(Status::URI_TOO_LONG, "request line too long"));
        }
        // RFC 9110 2.5: a higher HTTP/1.x minor version is spoken as the
        // highest we know (1.1); httparse knows only 1.0 and 1.1, so such a
        // head is parsed with its minor digit (the start line's last byte)
        // read as 1.
        let (head, minor_sent) = match line.split(|&b| b == b' ').nth(2).and_then(parse_version) {
            Some(Version(1, m)) if m > 1 => {
                let mut patched = head.to_vec();
                let at = line.as_ptr() as usize - head.as_ptr() as usize + line.len() - 1;
                patched[at] = b'1';
                (std::borrow::Cow::Owned(patched), Some(m))
            }
            _ => (std::borrow::Cow::Borrowed(head), None),
        };
        let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut req = httparse::Request::new(&mut fields);
        // RFC 9112 3: method SP request-target SP HTTP-version, single
        // spaces; anything else is an invalid request line (400).
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HeadError::Bad(Status::BAD_REQUEST, "incomplete head"))
            }
            Err(e) => return Err(head_error(e, line, "malformed request line")),
        }
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(HeadError::Bad(Status::BAD_REQUEST, "malformed request line"));
        };
        let minor = minor_sent.unwrap_or(minor);
        if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HeadError::Bad(Status::BAD_REQUEST, "bad request target"));
        }
        let headers = fields_from(req.headers, limits)?;
        Ok(RequestHead {
            method: method.to_string(),
            target: target.to_string(),
            version: Version(1, minor),
            headers,
        })
    }

    /// Every value of a field, in order.
    pub fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        field_values(&self.headers, name)
    }

    /// The comma-separated list elements of every value of a field.
    pub fn list<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        field_list(&self.headers, name)
    }
}

pub fn field_values<'a, 'n>(
    headers: &'a [Header],
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// RFC 9110 5.6.1: list elements, empty ones dropped.
pub fn field_list<'a, 'n>(
    headers: &'a [Header],
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    field_values(headers, name)
        .flat_map(|v| v.split(','))
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty())
}

/// A parsed response head (for the client), by httparse.
pub fn parse_response_head(
    head: &[u8],
    limits: &Limits,
) -> Result<(Version, u16, String, Vec<Header>), HeadError> {
    let line = head_lines(head)
        .next()
        .ok_or(HeadError::Bad(Status::BAD_REQUEST, "empty response"))?;
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Bad(Status::BAD_REQUEST, "incomplete head")),
        Err(e) => return Err(head_error(e, line, "malformed status line")),
    }
    let (Some(minor), Some(code)) = (resp.version, resp.code) else {
        return Err(HeadError::Bad(Status::BAD_REQUEST, "malformed status line"));
    };
    let reason = resp.reason.unwrap_or_default().to_string();
    let headers = fields_from(resp.headers, limits)?;
    let version = Version(1, minor);
    Ok((version, code, reason, headers))
}

/// How a message body is delimited (RFC 9112 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the peer closes (responses only).
    Close,
}

/// A body being read: the state of its framing. Reads go through the
/// connection's [`Input`], passed in on each call so that the connection
/// can be written between reads.
#[derive(Debug)]
pub struct Body {
    state: BodyState,
    read: u64,
    /// Trailer fields, once the chunked body has ended.
    pub trailers: Vec<Header>,
}

#[derive(Debug, PartialEq, Eq)]
enum BodyState {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Close,
    Done,
}

/// The longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

impl Body {
    pub fn new(framing: Framing) -> Body {
        let state = match framing {
            Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::ChunkSize,
            Framing::Close => BodyState::Close,
        };
        Body {
            state,
            read: 0,
            trailers: Vec::new(),
        }
    }

    /// Body bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Record `n` bytes read of the `left` the state expected.
    fn advance(&mut self, left: u64, n: usize) {
        let left = left - n as u64;
        self.state = match self.state {
            BodyState::Length(_) if left == 0 => BodyState::Done,
            BodyState::Length(_) => BodyState::Length(left),
            _ if left == 0 => BodyState::ChunkEnd,
            _ => BodyState::ChunkData(left),
        };
        self.read += n as u64;
    }

    /// RFC 9112 7.1: chunk-size [ chunk-ext ] CRLF
    fn chunk_size(line: &[u8]) -> io::Result<u64> {
        let size_end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
        let digits = trim_ows(&line[..size_end]);
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(invalid("bad chunk size"));
        }
        u64::from_str_radix(std::str::from_utf8(digits).expect("hex digits"), 16)
            .map_err(|_| invalid("bad chunk size"))
    }

    /// One trailer line (RFC 9112 7.1.2); true at the empty line that ends
    /// the section.
    fn trailer_line(
        &mut self,
        line: io::Result<Vec<u8>>,
        total: &mut usize,
        limits: &Limits,
    ) -> io::Result<bool> {
        let line = line.map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                invalid("trailer field too long")
            } else {
                e
            }
        })?;
        if line.is_empty() {
            return Ok(true);
        }
        *total += line.len();
        if self.trailers.len() == limits.max_headers || *total > limits.max_head {
            return Err(invalid("trailer section too large"));
        }
        self.trailers.push(parse_field(&line).map_err(invalid)?);
        Ok(false)
    }

    /// Read body bytes into `out`; 0 at the end of the body. A body cut
    /// short is `UnexpectedEof`; bad chunked framing is `InvalidData`.
    pub fn read<R: Read>(
        &mut self,
        input: &mut Input<R>,
        out: &mut [u8],
        limits: &Limits,
    ) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Length(left) | BodyState::ChunkData(left) => {
                    let want = left.min(out.len() as u64) as usize;
                    let n = input.read_some(&mut out[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
                    }
                    self.advance(left, n);
                    return Ok(n);
                }
                BodyState::Close => {
                    let n = input.read_some(out)?;
                    if n == 0 {
                        self.state = BodyState::Done;
                    }
                    self.read += n as u64;
                    return Ok(n);
                }
                BodyState::ChunkSize => {
                    let size = Self::chunk_size(&input.read_line(MAX_CHUNK_LINE)?)?;
                    if size == 0 {
                        let mut total = 0;
                        while !self.trailer_line(
                            input.read_line(limits.max_header_line),
                            &mut total,
                            limits,
                        )? {}
                        self.state = BodyState::Done;
                        return Ok(0);
                    }
                    self.state = BodyState::ChunkData(size);
                }
                BodyState::ChunkEnd => {
                    if !input.read_line(0)?.is_empty() {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    self.state = BodyState::ChunkSize;
                }
            }
        }
    }

    /// [`read`](Self::read) on an async stream.
    pub async fn read_async<R: AsyncRead + Unpin>(
        &mut self,
        input: &mut Input<R>,
        out: &mut [u8],
        limits: &Limits,
    ) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Length(left) | BodyState::ChunkData(left) => {
                    let want = left.min(out.len() as u64) as usize;
                    let n = input.read_some_async(&mut out[..want]).await?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
                    }
                    self.advance(left, n);
                    return Ok(n);
                }
                BodyState::Close => {
                    let n = input.read_some_async(out).await?;
                    if n == 0 {
                        self.state = BodyState::Done;
                    }
                    self.read += n as u64;
                    return Ok(n);
                }
                BodyState::ChunkSize => {
                    let size = Self::chunk_size(&input.read_line_async(MAX_CHUNK_LINE).await?)?;
                    if size == 0 {
                        let mut total = 0;
                        loop {
                            let line = input.read_line_async(limits.max_header_line).await;
                            if self.trailer_line(line, &mut total, limits)? {
                                break;
                            }
                        }
                        self.state = BodyState::Done;
                        return Ok(0);
                    }
                    self.state = BodyState::ChunkData(size);
                }
                BodyState::ChunkEnd => {
                    if !input.read_line_async(0).await?.is_empty() {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    self.state = BodyState::ChunkSize;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<RequestHead, HeadError> {
        let mut input = Input::new(bytes);
        let n = input.read_head(&Limits::default(), &mut |_, _| Ok(()))?;
        RequestHead::parse(&input.buffered()[..n], &Limits::default())
    }

    fn status(bytes: &[u8]) -> u16 {
        match head(bytes) {
            Ok(_) => 200,
            Err(HeadError::Bad(s, _)) => s.0,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn request_lines() {
        let h = head(b"\r\n\r\nGET /a?b HTTP/1.1\r\nHost: x\r\nX-A:  v v \t\r\n\r\n").unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.version),
            ("GET", "/a?b", Version(1, 1))
        );
        assert_eq!(h.headers[1].value, "v v");
        assert_eq!(head(b"GET / HTTP/1.0\n\n").unwrap().version, Version(1, 0));
        assert_eq!(status(b"GET  / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1 \r\n\r\n"), 400);
        assert_eq!(status(b"GET / http/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status(b"G(T / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"), 400);
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let mut input =
            Input::new(&b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\nU: two\r\n\r\nNEXT"[..]);
        let mut body = Body::new(Framing::Chunked);
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = body.read(&mut input, &mut buf, &Limits::default()).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, b"hello world");
        assert_eq!(body.trailers.len(), 2);
        assert_eq!(input.buffered(), b"NEXT");
    }

    #[test]
    fn bad_chunks() {
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX\r\n",
            b"-1\r\n",
            b"1000000000000000\r\n",
        ] {
            let mut input = Input::new(bad);
            let mut body = Body::new(Framing::Chunked);
            let mut buf = [0u8; 64];
            let e = loop {
                match body.read(&mut input, &mut buf, &Limits::default()) {
                    Ok(0) => panic!("accepted {bad:?}"),
                    Ok(_) => {}
                    Err(e) => break e,
                }
            };
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
