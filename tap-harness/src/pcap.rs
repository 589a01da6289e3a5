//! Packet capture of everything tapir receives and sends.
//!
//! When a test fails or the demo misbehaves, the first question is "what
//! was on the wire?". The driver can record every frame it hands to the
//! stack and every frame the stack emits into a classic pcap file
//! (LINKTYPE_ETHERNET, microsecond wall-clock timestamps) that tshark,
//! tcpdump and Wireshark open as they are. Classic pcap has no direction
//! field; the Ethernet addresses tell the two ways apart.
//!
//! Writes are buffered; the file is flushed on [`PcapWriter::finish`] or on
//! drop, so a capture survives a panicking test as long as the writer is
//! dropped while unwinding.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, PcapError, TsResolution};

/// The most bytes of one frame kept in a capture. Larger than any frame a
/// plain TAP produces, and large enough for 64 KiB offload frames.
pub const SNAPLEN: u32 = 262_144;

/// Writes Ethernet frames to a pcap file.
pub struct PcapWriter {
    inner: Option<pcap_file::pcap::PcapWriter<SharedFile>>,
    /// The same buffered file the pcap-file writer writes to: pcap-file 2
    /// offers no way to reach its writer short of consuming it, and we want
    /// to flush without closing.
    file: SharedFile,
    path: PathBuf,
    frames: u64,
}

/// A buffered file shared between the pcap-file writer and us.
#[derive(Clone)]
struct SharedFile(Arc<Mutex<BufWriter<File>>>);

impl SharedFile {
    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.lock().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

impl PcapWriter {
    /// Create (truncating) the capture file at `path` and write its header.
    pub fn create(path: impl AsRef<Path>) -> io::Result<PcapWriter> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::MicroSecond,
            ..PcapHeader::default()
        };
        let file = SharedFile(Arc::new(Mutex::new(BufWriter::new(file))));
        let inner = pcap_file::pcap::PcapWriter::with_header(file.clone(), header).map_err(pcap_to_io)?;
        Ok(PcapWriter {
            inner: Some(inner),
            file,
            path,
            frames: 0,
        })
    }

    /// Record `frame` as seen now (wall clock).
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        self.write_frame_at(ts, frame)
    }

    /// Record `frame` with an explicit timestamp (time since the Unix epoch).
    /// Frames longer than [`SNAPLEN`] are cut there, with their original
    /// length recorded, as tcpdump does.
    pub fn write_frame_at(&mut self, timestamp: Duration, frame: &[u8]) -> io::Result<()> {
        let Some(w) = self.inner.as_mut() else {
            return Err(io::Error::other("pcap writer already finished"));
        };
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let kept = &frame[..frame.len().min(SNAPLEN as usize)];
        w.write_packet(&PcapPacket::new(timestamp, orig_len, kept))
            .map_err(pcap_to_io)?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Push buffered frames to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Flush and close, reporting any error (drop only logs it).
    pub fn finish(mut self) -> io::Result<()> {
        self.inner = None;
        self.file.flush()
    }
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        if let Err(e) = self.file.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "flushing pcap failed");
        }
    }
}

fn pcap_to_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn frames_read_back_with_timestamps() {
        let path = std::env::temp_dir().join(format!("tapir-pcap-unit-{}.pcap", std::process::id()));
        let frames: Vec<Vec<u8>> = vec![vec![0xff; 60], (0..=255u8).collect(), vec![7; 1514]];
        let t0 = Duration::from_secs(1_700_000_000) + Duration::from_micros(123_456);
        {
            let mut w = PcapWriter::create(&path).unwrap();
            for (i, f) in frames.iter().enumerate() {
                w.write_frame_at(t0 + Duration::from_millis(i as u64), f).unwrap();
            }
            w.write_frame(&[1, 2, 3]).unwrap();
            assert_eq!(w.frames(), 4);
            // Dropped here: drop must flush.
        }
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::ETHERNET);
        let mut n = 0;
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            if n < frames.len() {
                assert_eq!(&p.data[..], &frames[n][..]);
                assert_eq!(p.orig_len as usize, frames[n].len());
                assert_eq!(p.timestamp, t0 + Duration::from_millis(n as u64));
            } else {
                assert_eq!(&p.data[..], &[1, 2, 3]);
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                assert!(
                    now - p.timestamp < Duration::from_secs(60),
                    "wall-clock timestamp"
                );
            }
            n += 1;
        }
        assert_eq!(n, 4);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn finish_reports_and_truncates_at_snaplen() {
        let path = std::env::temp_dir().join(format!("tapir-pcap-snap-{}.pcap", std::process::id()));
        let mut w = PcapWriter::create(&path).unwrap();
        let big = vec![0xab; SNAPLEN as usize + 10];
        w.write_frame(&big).unwrap();
        w.finish().unwrap();
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        // pcap-file's checked reader refuses orig_len > snaplen (tshark and
        // tcpdump accept it), so read the record raw.
        let p = r.next_raw_packet().unwrap().unwrap();
        assert_eq!(p.data.len(), SNAPLEN as usize);
        assert_eq!(p.incl_len, SNAPLEN);
        assert_eq!(p.orig_len as usize, big.len());
        assert!(r.next_raw_packet().is_none());
        std::fs::remove_file(&path).unwrap();
    }
}
