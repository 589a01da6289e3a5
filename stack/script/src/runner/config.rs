//! How the runner maps a script onto the stack.

use super::*;

/// How the runner maps the script onto the stack; the defaults are
/// packetdrill's where it has one.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The `Instant` of script time 0.
    pub start: Instant,
    /// packetdrill `--tolerance_usecs` (4 ms).
    pub tolerance: Duration,
    /// packetdrill `--tolerance_percent` (12.5): tolerance grows with the
    /// time since the previous event.
    pub tolerance_percent: f64,
    /// The scripted peer.
    pub peer_ip: Ipv4Addr,
    pub peer_mac: [u8; 6],
    /// The peer's port for connections it opens; each new one takes the
    /// next port up.
    pub remote_port: u16,
    /// The port `bind(fd, ..., ...)` binds (packetdrill `--bind_port`).
    pub bind_port: u16,
    /// The peer port `connect(fd, ..., ...)` connects to
    /// (packetdrill `--connect_port`).
    pub connect_port: u16,
    /// Check outbound TS val against the script, with this much time per
    /// tick (packetdrill `--tcp_ts_tick_usecs`; off by default).
    pub ts_val_tick: Option<Duration>,
    /// Check outbound TS ecr against the script (packetdrill does not).
    pub check_ts_ecr: bool,
    /// Check outbound TCP checksums (packetdrill checks only IP's).
    pub check_tcp_checksum: bool,
    /// Check that outbound payload is the zeros the runner writes.
    pub check_payload: bool,
    /// Compare the PSH flag of outbound segments. Off for packetdrill's
    /// upstream Linux scripts (`tests/upstream.rs`): which segment of a
    /// write carries PSH follows Linux's socket-buffer and TSO boundaries
    /// (tcp_mark_push, forced_push, tso_fragment keeping PSH on the tail),
    /// which RFC 9293 3.9.1 and RFC 1122 4.2.2.2 leave to the sender.
    pub check_psh: bool,
    /// Let one `>` line with N bytes match consecutive segments that add up
    /// to N (TSO/GSO; packetdrill does unless `--strict_segments`).
    pub aggregate_segments: bool,
    /// How long a blocking call without an end time may block, and how long
    /// a `*` outbound packet may take.
    pub max_block: Duration,
    /// After the last event (and any call still blocked), wait this long
    /// and fail on any outbound packet no line matched. packetdrill has no
    /// such check (after its last event it runs the cleanup command and
    /// closes the sockets), so it is off by default; see
    /// [`RunnerConfig::END_GRACE`].
    pub end_grace: Option<Duration>,
    /// Fail as soon as a packet is sent that no `>` line can expect (sent
    /// before the current line's time by more than the tolerance). When off,
    /// such a packet fails the next `>` line instead, as in packetdrill.
    pub strict_unexpected: bool,
    /// Drop outbound packets of connections other than the one under test
    /// (packetdrill's behaviour) instead of failing on them.
    pub ignore_other_flows: bool,
    /// The script's directory, where a shell line's `defaults.sh` is read
    /// from (`run_file` sets it); `None` reads no file.
    pub script_dir: Option<std::path::PathBuf>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            start: Instant::from_secs(1),
            tolerance: Duration::from_micros(4000),
            tolerance_percent: 12.5,
            peer_ip: Ipv4Addr::new(10, 77, 0, 1),
            peer_mac: [0x02, 0x00, 0x00, 0x77, 0x00, 0x01],
            remote_port: 48123,
            bind_port: 8080,
            connect_port: 8080,
            ts_val_tick: None,
            check_ts_ecr: true,
            check_tcp_checksum: true,
            check_payload: true,
            check_psh: true,
            aggregate_segments: true,
            max_block: Duration::from_secs(10),
            end_grace: None,
            strict_unexpected: true,
            ignore_other_flows: false,
            script_dir: None,
        }
    }
}

impl RunnerConfig {
    /// The end check's grace period: 100 ms after the last line.
    ///
    /// Long enough to catch what the stack does at once or soon in reply to
    /// the last lines: a RST answering a RST, an ACK that should not be
    /// sent (immediate, or after the 40 ms delayed-ACK timer, Linux's
    /// TCP_DELACK_MIN), a segment sent into a closed window. Short enough
    /// that no retransmission timer armed by the last line fires inside
    /// it: the RTO is never below 200 ms (RFC 6298 2.4 allows 1 s; Linux
    /// and tapir use TCP_RTO_MIN = 200 ms), so a script ending on a
    /// segment in flight is not failed by the retransmission it did not
    /// mean to describe. Timers armed earlier in the script can still fire
    /// inside the grace: a script must then say what comes (a `>` line)
    /// or end before it.
    pub const END_GRACE: Duration = Duration::from_millis(100);

    /// How our own suite runs scripts (`tests/scripts.rs`): packetdrill's
    /// defaults with this runner's stricter checks, plus the end check
    /// ([`RunnerConfig::END_GRACE`]).
    pub fn suite() -> Self {
        RunnerConfig {
            end_grace: Some(Self::END_GRACE),
            ..RunnerConfig::default()
        }
    }

    /// packetdrill's own semantics, for its upstream scripts
    /// (`tests/upstream.rs`): an outbound packet no line expects fails the
    /// next `>` line rather than at once, packets of other connections are
    /// ignored, and there is no end check. The runner's extra checks of
    /// outbound TS ecr, TCP checksums and payload stay on.
    pub fn packetdrill() -> Self {
        RunnerConfig {
            strict_unexpected: false,
            ignore_other_flows: true,
            ..RunnerConfig::default()
        }
    }
}
