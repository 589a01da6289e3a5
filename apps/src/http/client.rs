//! An HTTP/1.1 client: requests written in one piece, responses read with
//! every body delimitation RFC 9112 6.3 allows (Content-Length, chunked,
//! the end of the connection). It follows no redirects.

use super::message::{field_list, field_values, parse_response_head, Body, Framing, HeadError, Input};
use super::{Header, Limits};
use std::fmt;
use std::io::{self, Read, Write};

pub use super::message::Version;

/// An `http://` URL: host (a name or an address, as written), port, and
/// the path with its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(format!("{scheme}: only http:// URLs are supported")),
            None => return Err(format!("{s}: not an http:// URL")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err("user information in URLs is not supported".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("{s}: no host"));
        }
        if path.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err("the path must be percent-encoded ASCII".into());
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The Host field value (RFC 9110 7.2): the port only if not 80.
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// A response's status line and header fields.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Header>,
}

impl ResponseHead {
    /// The first value of a field.
    pub fn header(&self, name: &str) -> Option<&str> {
        field_values(&self.headers, name).next()
    }

    /// `HTTP/1.1 200 OK`
    pub fn status_line(&self) -> String {
        format!("{} {} {}", self.version, self.status, self.reason)
    }

    /// RFC 9112 6.3: how this response's body is delimited.
    fn framing(&self, method: &str) -> io::Result<Framing> {
        if method == "HEAD" || (100..200).contains(&self.status) || self.status == 204 || self.status == 304 {
            return Ok(Framing::Length(0));
        }
        let codings: Vec<&str> = field_list(&self.headers, "transfer-encoding").collect();
        if let Some(last) = codings.last() {
            return Ok(if last.eq_ignore_ascii_case("chunked") {
                Framing::Chunked
            } else {
                Framing::Close
            });
        }
        let lengths: Vec<&str> = field_list(&self.headers, "content-length").collect();
        match lengths.first() {
            None => Ok(Framing::Close),
            Some(first) if lengths.iter().all(|l| l == first) => {
                first.parse().map(Framing::Length).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length in the response")
                })
            }
            Some(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "conflicting Content-Length in the response",
            )),
        }
    }

    /// Whether the server will close the connection after this response.
    pub fn closes(&self) -> bool {
        let tokens: Vec<String> = field_list(&self.headers, "connection")
            .map(str::to_ascii_lowercase)
            .collect();
        if self.version >= Version(1, 1) {
            tokens.iter().any(|t| t == "close")
        } else {
            !tokens.iter().any(|t| t == "keep-alive")
        }
    }
}

/// What a response body turned out to be.
#[derive(Clone, Debug, Default)]
pub struct BodyInfo {
    pub len: u64,
    pub trailers: Vec<Header>,
}

/// A client on one connection; requests and responses alternate (or are
/// pipelined by sending several before reading).
pub struct Client<T> {
    input: Input<T>,
    limits: Limits,
}

impl<T: Read + Write> Client<T> {
    pub fn new(io: T) -> Client<T> {
        Client {
            input: Input::new(io),
            limits: Limits::default(),
        }
    }

    pub fn get_ref(&self) -> &T {
        self.input.get_ref()
    }

    /// The connection, e.g. to write a request body or raw bytes.
    pub fn get_mut(&mut self) -> &mut T {
        self.input.get_mut()
    }

    /// Write a request head: the request line, `Host`, the given fields and
    /// a blank line. A body, if any, is the caller's to write next.
    pub fn send_head(
        &mut self,
        method: &str,
        target: &str,
        host: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<()> {
        let mut h = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in headers {
            h.push_str(&format!("{name}: {value}\r\n"));
        }
        h.push_str("\r\n");
        let io = self.input.get_mut();
        io.write_all(h.as_bytes())?;
        io.flush()
    }

    /// Write a whole request with a Content-Length body (none for an empty
    /// GET or HEAD).
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let len = body.len().to_string();
        let mut all = headers.to_vec();
        if !body.is_empty() || method == "POST" {
            all.push(("Content-Length", &len));
        }
        self.send_head(method, target, host, &all)?;
        if !body.is_empty() {
            self.input.get_mut().write_all(body)?;
            self.input.get_mut().flush()?;
        }
        Ok(())
    }

    /// Read the next final response head; interim 1xx responses (100
    /// Continue) are skipped.
    pub fn read_head(&mut self) -> io::Result<ResponseHead> {
        loop {
            let n = self
                .input
                .read_head(&self.limits, &mut |_, _| Ok(()))
                .map_err(|e| match e {
                    HeadError::Bad(_, why) => {
                        io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {why}"))
                    }
                    e => io::Error::from(e),
                })?;
            let (version, status, reason, headers) =
                parse_response_head(&self.input.buffered()[..n], &self.limits)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {e}")))?;
            self.input.consume(n);
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            return Ok(ResponseHead {
                version,
                status,
                reason,
                headers,
            });
        }
    }

    /// Read the body of the response to a `method` request into `out`.
    pub fn read_body(
        &mut self,
        head: &ResponseHead,
        method: &str,
        out: &mut dyn Write,
    ) -> io::Result<BodyInfo> {
        let mut body = Body::new(head.framing(method)?);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = body.read(&mut self.input, &mut buf, &self.limits)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
        }
        Ok(BodyInfo {
            len: body.bytes_read(),
            trailers: std::mem::take(&mut body.trailers),
        })
    }

    /// Read a whole response, its body into `out`.
    pub fn response(&mut self, method: &str, out: &mut dyn Write) -> io::Result<(ResponseHead, BodyInfo)> {
        let head = self.read_head()?;
        let info = self.read_body(&head, method, out)?;
        Ok((head, info))
    }

    /// Read a whole response, its body into memory.
    pub fn response_vec(&mut self, method: &str) -> io::Result<(ResponseHead, Vec<u8>)> {
        let mut body = Vec::new();
        let (head, _) = self.response(method, &mut body)?;
        Ok((head, body))
    }
}

/// One request on a fresh connection (`Connection: close`): the response
/// head and the length of the body written to `out`.
pub fn fetch<T: Read + Write>(
    io: T,
    method: &str,
    url: &Url,
    out: &mut dyn Write,
) -> io::Result<(ResponseHead, u64)> {
    let mut client = Client::new(io);
    let agent = concat!("tapir/", env!("CARGO_PKG_VERSION"));
    client.send(
        method,
        &url.path,
        &url.authority(),
        &[("User-Agent", agent), ("Accept", "*/*"), ("Connection", "close")],
        &[],
    )?;
    let (head, info) = client.response(method, out)?;
    Ok((head, info.len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://10.77.0.1:8080/f.bin?x=1#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.77.0.1", 8080, "/f.bin?x=1")
        );
        assert_eq!(u.authority(), "10.77.0.1:8080");
        let u = Url::parse("HTTP://example").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.authority().as_str()),
            (80, "/", "example")
        );
        assert_eq!(Url::parse("http://h?q").unwrap().path, "/?q");
        assert!(Url::parse("https://h/").is_err());
        assert!(Url::parse("h/x").is_err());
        assert!(Url::parse("http://h:99999/").is_err());
        assert!(Url::parse("http://u@h/").is_err());
    }

    #[test]
    fn response_framings() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
                    HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno\
                    HTTP/1.0 200 OK\r\n\r\nuntil close";
        struct Rw<'a>(&'a [u8]);
        impl Read for Rw<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                self.0.read(b)
            }
        }
        impl Write for Rw<'_> {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut c = Client::new(Rw(raw));
        let mut body = Vec::new();
        let (h, info) = c.response("GET", &mut body).unwrap();
        assert_eq!(
            (h.status, body.as_slice(), info.trailers.len()),
            (200, &b"abc"[..], 1)
        );
        let (h, body) = c.response_vec("GET").unwrap();
        assert_eq!((h.status, body.as_slice(), h.closes()), (404, &b"no"[..], false));
        let (h, body) = c.response_vec("GET").unwrap();
        assert_eq!(
            (h.status, body.as_slice(), h.closes()),
            (200, &b"until close"[..], true)
        );
    }
}
