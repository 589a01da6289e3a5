//! Connection timelines as CSV: `tapir tput --trace FILE.csv` writes one,
//! `tapir plot` reads it back (see [`crate::plot`]).
//!
//! One row per [`TraceSample`]: the sender's variables each time they
//! changed. Times are seconds since the first row; sequence numbers are as
//! the connection had them (32-bit, absolute). An infinite ssthresh and an
//! RTT not yet measured are empty fields.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use tapir_stack::{ConnTrace, Instant, SocketHandle, TraceSample};

pub const CSV_HEADER: &str = "time_s,state,snd_una,snd_nxt,rcv_nxt,snd_wnd,cwnd,ssthresh,bytes_in_flight,\
sacked_bytes,lost_bytes,srtt_ms,rto_ms,retransmits,recovery";

/// Writes samples as CSV rows, times relative to the first sample.
pub struct CsvWriter<W: Write> {
    out: W,
    start: Option<Instant>,
    pub rows: u64,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(mut out: W) -> io::Result<CsvWriter<W>> {
        writeln!(out, "{CSV_HEADER}")?;
        Ok(CsvWriter {
            out,
            start: None,
            rows: 0,
        })
    }

    pub fn write(&mut self, s: &TraceSample) -> io::Result<()> {
        let start = *self.start.get_or_insert(s.time);
        let t = s.time.saturating_duration_since(start).as_secs_f64();
        let ms = |d: tapir_stack::Duration| d.as_secs_f64() * 1e3;
        let ssthresh = if s.ssthresh == usize::MAX {
            String::new()
        } else {
            s.ssthresh.to_string()
        };
        let srtt = s.srtt.map(|d| format!("{:.3}", ms(d))).unwrap_or_default();
        writeln!(
            self.out,
            "{t:.6},{},{},{},{},{},{},{ssthresh},{},{},{},{srtt},{:.3},{},{}",
            s.state,
            s.snd_una,
            s.snd_nxt,
            s.rcv_nxt,
            s.snd_wnd,
            s.cwnd,
            s.bytes_in_flight,
            s.sacked_bytes,
            s.lost_bytes,
            ms(s.rto),
            s.retransmits,
            s.recovery,
        )?;
        self.rows += 1;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A row read back from the CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time_s: f64,
    pub state: String,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub snd_wnd: u64,
    pub cwnd: u64,
    pub ssthresh: Option<u64>,
    pub bytes_in_flight: u64,
    pub sacked_bytes: u64,
    pub lost_bytes: u64,
    pub srtt_ms: Option<f64>,
    pub rto_ms: f64,
    pub retransmits: u64,
    pub recovery: String,
}

fn bad(line: usize, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("line {line}: {what}"))
}

/// Every row of a timeline CSV, checked against [`CSV_HEADER`].
pub fn read_csv(input: impl BufRead) -> io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut lines = input.lines();
    let header = lines.next().transpose()?.unwrap_or_default();
    if header.trim() != CSV_HEADER {
        return Err(bad(1, "not a tapir timeline (header differs)"));
    }
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 2;
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 15 {
            return Err(bad(n, format!("{} fields, expected 15", f.len())));
        }
        fn num<T: std::str::FromStr>(n: usize, s: &str, name: &str) -> io::Result<T> {
            s.parse()
                .map_err(|_| bad(n, format!("{name}: {s:?} is not a number")))
        }
        let opt_u64 = |s: &str, name: &str| -> io::Result<Option<u64>> {
            if s.is_empty() {
                Ok(None)
            } else {
                num(n, s, name).map(Some)
            }
        };
        rows.push(Row {
            time_s: num(n, f[0], "time_s")?,
            state: f[1].to_string(),
            snd_una: num(n, f[2], "snd_una")?,
            snd_nxt: num(n, f[3], "snd_nxt")?,
            rcv_nxt: num(n, f[4], "rcv_nxt")?,
            snd_wnd: num(n, f[5], "snd_wnd")?,
            cwnd: num(n, f[6], "cwnd")?,
            ssthresh: opt_u64(f[7], "ssthresh")?,
            bytes_in_flight: num(n, f[8], "bytes_in_flight")?,
            sacked_bytes: num(n, f[9], "sacked_bytes")?,
            lost_bytes: num(n, f[10], "lost_bytes")?,
            srtt_ms: if f[11].is_empty() {
                None
            } else {
                Some(num(n, f[11], "srtt_ms")?)
            },
            rto_ms: num(n, f[12], "rto_ms")?,
            retransmits: num(n, f[13], "retransmits")?,
            recovery: f[14].to_string(),
        });
    }
    Ok(rows)
}

/// `tapir up --trace DIR`: one CSV file per connection in `DIR`, named
/// `<n>-<local>-<remote>.csv` (`n` counts the connections of the run, so a
/// reused 4-tuple gets a new file), fed from
/// [`Interface::tcp_drain_traces`](tapir_stack::Interface::tcp_drain_traces)
/// batches. A file is flushed and closed when its connection's timeline
/// ends.
pub struct TraceDir {
    dir: PathBuf,
    open: HashMap<SocketHandle, CsvWriter<BufWriter<File>>>,
    next: u64,
    /// Files written so far, and samples lost because a trace was full.
    pub files: u64,
    pub dropped: u64,
}

impl TraceDir {
    pub fn create(dir: &Path) -> io::Result<TraceDir> {
        std::fs::create_dir_all(dir)?;
        Ok(TraceDir {
            dir: dir.to_path_buf(),
            open: HashMap::new(),
            next: 0,
            files: 0,
            dropped: 0,
        })
    }

    pub fn write(&mut self, batch: &[ConnTrace]) -> io::Result<()> {
        for t in batch {
            self.dropped += t.dropped;
            let w = match self.open.entry(t.handle) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    self.next += 1;
                    self.files += 1;
                    let name = format!("{}-{}-{}.csv", self.next, t.local, t.remote);
                    let file = File::create(self.dir.join(name))?;
                    v.insert(CsvWriter::new(BufWriter::new(file))?)
                }
            };
            for s in &t.samples {
                w.write(s)?;
            }
            if t.finished {
                if let Some(w) = self.open.remove(&t.handle) {
                    w.into_inner().flush()?;
                }
            }
        }
        Ok(())
    }

    /// Flush every file still open (the stack is stopping).
    pub fn finish(&mut self) -> io::Result<()> {
        for (_, w) in self.open.drain() {
            w.into_inner().flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_stack::{Duration, TcpState};

    #[test]
    fn rows_round_trip() {
        let s = TraceSample {
            time: Instant::from_millis(1500),
            state: TcpState::Established,
            snd_una: u32::MAX - 10,
            snd_nxt: 5,
            rcv_nxt: 7,
            snd_wnd: 65535,
            cwnd: 14480,
            ssthresh: usize::MAX,
            bytes_in_flight: 16,
            sacked_bytes: 0,
            lost_bytes: 0,
            srtt: None,
            rto: Duration::from_millis(1000),
            retransmits: 3,
            recovery: "open",
        };
        let mut w = CsvWriter::new(Vec::new()).unwrap();
        w.write(&s).unwrap();
        let later = TraceSample {
            time: Instant::from_millis(2000),
            ssthresh: 7240,
            srtt: Some(Duration::from_micros(1250)),
            recovery: "recovery",
            ..s
        };
        w.write(&later).unwrap();
        let rows = read_csv(&w.into_inner()[..]).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].time_s, 0.0);
        assert_eq!(rows[0].ssthresh, None);
        assert_eq!(rows[0].srtt_ms, None);
        assert_eq!((rows[0].snd_una, rows[0].snd_nxt), (u32::MAX - 10, 5));
        assert_eq!(rows[1].time_s, 0.5);
        assert_eq!(rows[1].ssthresh, Some(7240));
        assert_eq!(rows[1].srtt_ms, Some(1.25));
        assert_eq!(rows[1].recovery, "recovery");
        assert_eq!(rows[1].state, "ESTABLISHED");
    }

    #[test]
    fn trace_dir_writes_one_file_per_connection_and_closes_finished_ones() {
        let dir = std::env::temp_dir().join(format!("tapir-trace-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut iface = tapir_stack::Interface::new(tapir_stack::testing::config()).unwrap();
        let any = |p| std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, p);
        let (h1, h2) = (iface.udp_bind(any(1)).unwrap(), iface.udp_bind(any(2)).unwrap());
        let sample = |ms, una| TraceSample {
            time: Instant::from_millis(ms),
            state: TcpState::Established,
            snd_una: una,
            snd_nxt: una,
            rcv_nxt: 0,
            snd_wnd: 0,
            cwnd: 0,
            ssthresh: usize::MAX,
            bytes_in_flight: 0,
            sacked_bytes: 0,
            lost_bytes: 0,
            srtt: None,
            rto: Duration::from_millis(200),
            retransmits: 0,
            recovery: "open",
        };
        let trace = |h, local: u16, samples: Vec<TraceSample>, finished| ConnTrace {
            handle: h,
            local: "10.77.0.2:80".parse().unwrap(),
            remote: std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(10, 77, 0, 1), local),
            samples,
            dropped: 1,
            finished,
        };
        let mut d = TraceDir::create(&dir).unwrap();
        d.write(&[
            trace(h1, 5000, vec![sample(0, 1), sample(1, 2)], false),
            trace(h2, 5001, vec![sample(0, 9)], true),
        ])
        .unwrap();
        d.write(&[trace(h1, 5000, vec![sample(2, 3)], true)]).unwrap();
        d.finish().unwrap();
        assert_eq!((d.files, d.dropped), (2, 3));
        let read =
            |name: &str| read_csv(std::io::BufReader::new(File::open(dir.join(name)).unwrap())).unwrap();
        let first = read("1-10.77.0.2:80-10.77.0.1:5000.csv");
        assert_eq!(first.iter().map(|r| r.snd_una).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(read("2-10.77.0.2:80-10.77.0.1:5001.csv").len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_files_are_refused() {
        assert!(read_csv(&b"a,b\n1,2\n"[..]).is_err());
        let short = format!("{CSV_HEADER}\n1,2,3\n");
        let e = read_csv(short.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
