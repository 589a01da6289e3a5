//! Progress of a long transfer on the terminal (`tapir get`, `tapir
//! tput`), as curl and iperf3 show it: bytes so far and the rate, redrawn
//! in place on stderr. Only when stderr is a terminal; otherwise nothing is
//! drawn and the output stays what scripts and tests read.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal, Read, Write};

/// A progress line, hidden unless stderr is a terminal.
pub fn bar(what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} in {elapsed_precise} ({binary_bytes_per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_string());
    pb
}

/// A reader or writer that counts what passes through it on `bar`.
pub struct Counted<T> {
    pub inner: T,
    pub bar: ProgressBar,
}

impl<T: Read> Read for Counted<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl<T: Write> Write for Counted<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_passes_both_ways() {
        let bar = ProgressBar::hidden();
        let mut w = Counted {
            inner: Vec::new(),
            bar: bar.clone(),
        };
        w.write_all(b"hello").unwrap();
        let mut r = Counted {
            inner: &b"abc"[..],
            bar: bar.clone(),
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!((w.inner.as_slice(), out.as_slice()), (&b"hello"[..], &b"abc"[..]));
        assert_eq!(bar.position(), 8);
    }
}
