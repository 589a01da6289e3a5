//! Bringing a stack up on a device from command-line flags.

use clap::Args;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tapir_harness::{
    Device, Driver, DriverHandle, DriverOptions, DriverTask, ImpairedDevice, PacketDevice, TapDevice,
    TapOptions,
};
use tapir_stack::impair::LinkStats;
use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};
use tapir_stack::{Config, CongestionAlgorithm, Interface, Offload};

/// The device and address flags every command that runs a stack takes.
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// TAP device to attach to (created if missing).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "raw",
        required_unless_present = "raw"
    )]
    pub tap: Option<String>,
    /// Existing interface to use through an AF_PACKET socket instead of a TAP
    /// (e.g. one end of a veth pair whose kernel side has no address).
    #[arg(long, value_name = "IFNAME")]
    pub raw: Option<String>,
    /// tapir's own address and prefix.
    #[arg(long, value_name = "A.B.C.D/N")]
    pub addr: Ipv4Cidr,
    /// Address to give the KERNEL side of the TAP (never tapir's own).
    #[arg(long, value_name = "A.B.C.D/N")]
    pub host_addr: Option<Ipv4Cidr>,
    /// Next hop for destinations off the local prefix.
    #[arg(long, value_name = "A.B.C.D")]
    pub gateway: Option<Ipv4Addr>,
    /// tapir's MAC address [default: 02:00 followed by the IPv4 address].
    #[arg(long, value_name = "MAC")]
    pub mac: Option<EthernetAddress>,
    /// IP MTU [default: the device's].
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u16>,
    /// Open the device without checksum offload and TSO/GSO (a TAP's
    /// IFF_VNET_HDR and TUNSETOFFLOAD, an AF_PACKET socket's
    /// PACKET_VNET_HDR), which are used by default when the kernel has them
    /// (and always off with --impair, which works on wire-sized frames).
    #[arg(long)]
    pub no_offload: bool,
    /// Record every frame in and out to this pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Busy-poll the device for this many microseconds after the last
    /// frame instead of sleeping (Linux's SO_BUSY_POLL): a kernel sender no
    /// longer wakes the stack for each frame, at the cost of a core
    /// spinning while traffic flows [default: off].
    #[arg(long, value_name = "MICROS")]
    pub busy_poll: Option<u64>,
    /// Seed for everything the stack randomises (IP identifications,
    /// ephemeral ports, TCP ISNs and timestamp offsets), for a reproducible
    /// run. Predictable ISNs and ports let an off-path attacker inject
    /// segments (RFC 6528, RFC 6056): use it only for experiments
    /// [default: fresh from the operating system's random source].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most sockets (listeners, connections, UDP) the stack holds at once.
    /// A socket's buffers are allocated as it uses them, so an idle
    /// connection costs a few KB.
    #[arg(long, value_name = "N", default_value_t = 131_072)]
    pub max_sockets: usize,
    /// TCP congestion control of new connections, `cubic` or `reno`
    /// (Linux's net.ipv4.tcp_congestion_control); a socket can change its
    /// own with TCP_CONGESTION.
    #[arg(long, value_name = "NAME", default_value_t = CongestionAlgorithm::default())]
    pub cc: CongestionAlgorithm,
    /// Send TCP data as the window allows, without pacing it
    /// (`TcpConfig::pacing`: by default slow start is paced, in bursts of
    /// about a millisecond at twice cwnd / SRTT, as Linux's under the fq
    /// qdisc).
    #[arg(long)]
    pub no_pacing: bool,
    #[command(flatten)]
    pub impair: crate::impair::ImpairFlags,
    /// Trace every new TCP connection, with this many samples each
    /// (`TcpConfig::trace_connections`; set by `tapir up --trace`).
    #[arg(skip)]
    pub trace_connections: Option<usize>,
}

impl NetArgs {
    /// The stack's configuration for these flags on a device of `device_mtu`.
    pub fn config(&self, device_mtu: usize) -> io::Result<Config> {
        let mut config = Config::new(self.mac(), self.addr);
        config.gateway = self.gateway;
        config.mtu = self.mtu.map(usize::from).unwrap_or(device_mtu);
        config.max_sockets = self.max_sockets.max(1);
        config.tcp.congestion_control = self.cc;
        config.tcp.pacing = !self.no_pacing;
        config.tcp.trace_connections = self.trace_connections;
        seed_config(&mut config, self.seed)?;
        Ok(config)
    }

    /// Whether to ask the device for offloads.
    pub fn offload(&self) -> bool {
        !self.no_offload && self.impair.directions().is_none()
    }

    /// A stable, locally administered MAC derived from the address, so
    /// restarts keep the kernel's ARP entry valid.
    pub fn mac(&self) -> EthernetAddress {
        self.mac.unwrap_or_else(|| {
            let o = self.addr.addr.octets();
            EthernetAddress([0x02, 0x00, o[0], o[1], o[2], o[3]])
        })
    }
}

/// Seed `config` from `--seed` if given (the ISN secret is then derived from
/// it, so the run is reproducible), else from the operating system.
pub fn seed_config(config: &mut Config, seed: Option<u64>) -> io::Result<()> {
    match seed {
        Some(seed) => {
            config.seed = seed;
            config.tcp.isn_secret = 0;
            Ok(())
        }
        None => tapir_harness::randomize_config(config),
    }
}

/// A stack running on its device.
pub struct Running {
    pub driver: DriverHandle,
    pub device_name: String,
    pub mac: EthernetAddress,
    /// The emulated link's counters (in, out), with `--impair`.
    pub impair_stats: Option<Arc<Mutex<(LinkStats, LinkStats)>>>,
}

impl Running {
    /// What the emulated link did, one line per direction, with `--impair`.
    pub fn impair_report(&self) -> Option<String> {
        let s = self.impair_stats.as_ref()?;
        let (rx, tx) = s.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Some(format!("impair in:  {rx}\nimpair out: {tx}\n"))
    }
}

/// One stack shard per queue of a multi-queue TAP (`tapir up --queues N`),
/// each with its driver as a task for the caller to run on the shard's own
/// thread. The shards share the address and MAC; each has its own seed and
/// a disjoint part of the ephemeral port range, so two shards never open
/// the same connection. The kernel keeps a flow on one queue.
pub fn bring_up_shards(args: &NetArgs, queues: usize) -> io::Result<Vec<(Running, DriverTask)>> {
    let Some(name) = &args.tap else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--queues needs --tap",
        ));
    };
    if args.impair.directions().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--queues and --impair: the emulator works on one device",
        ));
    }
    let mut opts = TapOptions::new(name.clone()).offload(args.offload());
    if let Some(mtu) = args.mtu {
        opts = opts.mtu(mtu);
    }
    if let Some(h) = args.host_addr {
        if h.addr == args.addr.addr {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--host-addr must differ from --addr: the kernel would answer for tapir",
            ));
        }
        opts = opts.kernel_ipv4(h.addr, h.prefix_len);
    }
    let taps = TapDevice::open_queues(&opts, queues.max(1))?;
    let n = taps.len();
    let mut shards = Vec::with_capacity(n);
    for (k, tap) in taps.into_iter().enumerate() {
        let mtu = tap.mtu().unwrap_or(1500);
        let mut config = args.config(mtu)?;
        if let Some(seed) = args.seed {
            config.seed = seed.wrapping_add(k as u64);
        }
        let (lo, hi) = config.udp.ephemeral_ports;
        let span = (u32::from(hi) - u32::from(lo) + 1) / n as u32;
        let start = u32::from(lo) + span * k as u32;
        let end = if k + 1 == n {
            u32::from(hi)
        } else {
            start + span - 1
        };
        config.udp.ephemeral_ports = (start as u16, end as u16);
        let iface =
            Interface::new(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let device_name = format!("{}#{k}", tap.name());
        let opts = DriverOptions {
            pcap: args.pcap.as_ref().map(|p| {
                let mut p = p.clone().into_os_string();
                p.push(format!(".{k}"));
                p.into()
            }),
            busy_poll: args.busy_poll.map(Duration::from_micros),
            ..Default::default()
        };
        let (driver, task) = Driver::task(iface, Box::new(tap), opts)?;
        shards.push((
            Running {
                driver,
                device_name,
                mac: args.mac(),
                impair_stats: None,
            },
            task,
        ));
    }
    Ok(shards)
}

/// Open the device and start the driver thread.
pub fn bring_up(args: &NetArgs) -> io::Result<Running> {
    bring_up_with(args, DriverMode::Thread).map(|(running, _)| running)
}

/// Where the stack's driver runs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverMode {
    /// A thread of its own; application threads and tasks are woken
    /// across threads.
    Thread,
    /// A task of the application's runtime (`Driver::task`): run it on
    /// the runtime that runs the sockets, and nothing is handed between
    /// threads.
    #[default]
    Task,
}

/// Open the device and start the driver: as a thread, or made into a task
/// for the caller to spawn (returned with `DriverMode::Task`).
pub fn bring_up_with(args: &NetArgs, mode: DriverMode) -> io::Result<(Running, Option<DriverTask>)> {
    if let Some(host) = args.host_addr {
        if host.addr == args.addr.addr {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--host-addr must differ from --addr: the kernel would answer for tapir",
            ));
        }
    }
    let (device, device_mtu): (Box<dyn Device + Send>, usize) = match (&args.tap, &args.raw) {
        (Some(name), _) => {
            let mut opts = TapOptions::new(name.clone());
            if let Some(mtu) = args.mtu {
                opts = opts.mtu(mtu);
            }
            if let Some(h) = args.host_addr {
                opts = opts.kernel_ipv4(h.addr, h.prefix_len);
            }
            opts = opts.offload(args.offload());
            let tap = TapDevice::open(&opts)?;
            let mtu = tap.mtu().unwrap_or(1500);
            (Box::new(tap), mtu)
        }
        (None, Some(ifname)) => {
            let dev = PacketDevice::open_with(ifname, args.offload())?;
            let mtu = dev.mtu().unwrap_or(1500);
            (Box::new(dev), mtu)
        }
        (None, None) => return Err(io::Error::new(io::ErrorKind::InvalidInput, "give --tap or --raw")),
    };
    let mut impair_stats = None;
    let device: Box<dyn Device + Send> = match args.impair.directions() {
        Some((rx, tx)) => {
            let dev = ImpairedDevice::new(device, &rx, &tx)?;
            impair_stats = Some(dev.stats_handle());
            Box::new(dev)
        }
        None => device,
    };
    let mac = args.mac();
    let config = args.config(device_mtu)?;
    let iface =
        Interface::new(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let device_name = device.name().to_string();
    let offload = device.offload();
    if offload != Offload::default() {
        tracing::info!(device = %device_name, tso_max = offload.tso_max, "offloads on: checksums, TSO/GSO");
    }
    let opts = DriverOptions {
        pcap: args.pcap.clone(),
        busy_poll: args.busy_poll.map(Duration::from_micros),
        ..Default::default()
    };
    let (driver, task) = match mode {
        DriverMode::Thread => (Driver::spawn(iface, device, opts)?, None),
        DriverMode::Task => {
            let (driver, task) = Driver::task(iface, device, opts)?;
            (driver, Some(task))
        }
    };
    Ok((
        Running {
            driver,
            device_name,
            mac,
            impair_stats,
        },
        task,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::net::SocketAddrV4;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        net: NetArgs,
    }

    fn config(extra: &[&str]) -> Config {
        let args = ["tapir", "--tap", "tap0", "--addr", "10.77.0.2/24"]
            .iter()
            .chain(extra);
        Cli::parse_from(args).net.config(1500).unwrap()
    }

    /// The ephemeral port and the ISN a fresh stack picks for one connect.
    fn first_choices(config: Config) -> (u16, u32) {
        let mut iface = Interface::new(config).unwrap();
        let port = iface
            .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
            .unwrap();
        let port = iface.udp_local_addr(port).unwrap().port();
        let now = tapir_stack::time::Instant::from_secs(1);
        let c = iface
            .tcp_connect(now, SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 80))
            .unwrap();
        (port, iface.tcp_stats(c).unwrap().snd_una)
    }

    #[test]
    fn default_configs_are_unpredictable() {
        // Defect 8: without --seed, every run picked the same ports and ISNs.
        let (a, b) = (config(&[]), config(&[]));
        assert_ne!((a.seed, a.tcp.isn_secret), (b.seed, b.tcp.isn_secret));
        let (a, b) = (first_choices(a), first_choices(b));
        assert_ne!(a.1, b.1, "the ISNs differ");
    }

    #[test]
    fn cc_picks_the_congestion_control() {
        assert_eq!(config(&[]).tcp.congestion_control, CongestionAlgorithm::Cubic);
        assert_eq!(
            config(&["--cc", "reno"]).tcp.congestion_control,
            CongestionAlgorithm::Reno
        );
        assert_eq!(
            config(&["--cc", "cubic"]).tcp.congestion_control,
            CongestionAlgorithm::Cubic
        );
        let mut cmd = <Cli as clap::CommandFactory>::command();
        assert!(cmd
            .try_get_matches_from_mut(["tapir", "--tap", "t", "--addr", "10.77.0.2/24", "--cc", "bbr"])
            .is_err());
    }

    #[test]
    fn pacing_is_on_unless_turned_off() {
        assert!(config(&[]).tcp.pacing);
        assert!(!config(&["--no-pacing"]).tcp.pacing);
    }

    #[test]
    fn seed_makes_a_run_reproducible() {
        let (a, b) = (config(&["--seed", "42"]), config(&["--seed", "42"]));
        assert_eq!((a.seed, a.tcp.isn_secret), (b.seed, b.tcp.isn_secret));
        assert_eq!(first_choices(a), first_choices(b));
        assert_ne!(
            first_choices(config(&["--seed", "42"])),
            first_choices(config(&["--seed", "43"]))
        );
    }
}
