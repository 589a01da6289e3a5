//! Frame-level devices: where Ethernet frames enter and leave the process.
//!
//! The stack is sans-IO; something has to move its frames to a real link.
//! [`Device`] is that something, reduced to what the [driver](crate::driver)
//! needs: a non-blocking `recv` of one whole frame, a `send` of one whole
//! frame, and a file descriptor to wait on with poll(2).
//!
//! Three implementations:
//!
//! - [`TapDevice`]: a Linux TAP (`IFF_TAP | IFF_NO_PI`). The kernel sees an
//!   ordinary Ethernet interface; we see its wire. This is how tapir meets
//!   the kernel's own stack in the tests and the demo.
//! - [`PacketDevice`]: an `AF_PACKET` raw socket bound to an existing
//!   interface (typically one end of a veth pair whose kernel side has no
//!   address), for links that are not TAPs.
//! - [`MemoryDevice`]: two connected in-memory ends, for tests that need a
//!   driver but no kernel. Each end has an eventfd so the driver can poll it
//!   like a real device.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tapir_stack::offload::complete_checksum;
use tapir_stack::{GsoType, Offload, RxChecksum, RxMeta, Transmit, TxChecksum};

/// A frame-level network device, as the driver uses it.
///
/// A device may also offload work ([`Device::offload`]): it then hands
/// over frames with [`RxMeta`] (checksums verified or left partial, GRO
/// super-segments) through [`Device::recv_meta`], and takes frames with a
/// [`Transmit`] (checksums to complete, TSO super-segments to cut) through
/// [`Device::send_meta`]. The defaults describe a device that does
/// nothing of the kind, so plain devices implement `recv` and `send` only.
///
/// Implementations must be non-blocking: `recv` returns
/// [`io::ErrorKind::WouldBlock`] when no frame is waiting, and `send` returns
/// `WouldBlock` (or `ENOBUFS`) rather than sleeping when the device cannot
/// take a frame now; the driver keeps the frame and retries.
pub trait Device {
    /// Read one whole frame into `buf`; the return value is its length.
    /// A frame larger than `buf` is dropped, never returned truncated.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Write one whole frame (Ethernet header included, no FCS).
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;

    /// A descriptor that polls readable when `recv` has a frame, and
    /// writable when `send` would succeed. `None` makes the driver poll on a
    /// short timer instead.
    fn as_raw_fd(&self) -> Option<RawFd>;

    /// The link's IP MTU, if the device knows it.
    fn mtu(&self) -> Option<usize> {
        None
    }

    /// A name for logs and errors (the interface name for kernel devices).
    fn name(&self) -> &str;

    /// What the device does for the stack: the driver gives it to
    /// [`Interface::set_offload`](tapir_stack::Interface::set_offload).
    fn offload(&self) -> Offload {
        Offload::default()
    }

    /// [`Self::recv`] with what the device knows of the frame.
    fn recv_meta(&mut self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        self.recv(buf).map(|n| (n, RxMeta::default()))
    }

    /// [`Self::send`] of a frame that may leave work to the device. The
    /// default, for a device that offloads nothing, completes a partial
    /// checksum in software (in place, marking `tx` complete, so a frame
    /// refused for now is not summed twice when it is retried) and refuses
    /// a super-segment (the stack sends none unless [`Self::offload`]
    /// allows it).
    fn send_meta(&mut self, frame: &mut [u8], tx: &mut Transmit) -> io::Result<()> {
        if tx.gso_size != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} cannot segment a {}-byte super-segment",
                    self.name(),
                    frame.len()
                ),
            ));
        }
        complete_in_place(frame, tx);
        self.send(frame)
    }
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).recv(buf)
    }
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        (**self).send(frame)
    }
    fn as_raw_fd(&self) -> Option<RawFd> {
        (**self).as_raw_fd()
    }
    fn mtu(&self) -> Option<usize> {
        (**self).mtu()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn offload(&self) -> Offload {
        (**self).offload()
    }
    fn recv_meta(&mut self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        (**self).recv_meta(buf)
    }
    fn send_meta(&mut self, frame: &mut [u8], tx: &mut Transmit) -> io::Result<()> {
        (**self).send_meta(frame, tx)
    }
}

// ---------------------------------------------------------------------------
// TAP

/// How to open a [`TapDevice`].
#[derive(Debug, Clone)]
pub struct TapOptions {
    /// Interface name (at most 15 bytes). An existing TAP of that name is
    /// attached to; otherwise one is created.
    pub name: String,
    /// IP MTU to set on the interface; `None` keeps the kernel's (1500).
    pub mtu: Option<u16>,
    /// The KERNEL side's address and prefix length, e.g. 10.77.0.1/24.
    /// Never tapir's own address: the kernel would then answer tapir's
    /// peers itself (with RSTs and port unreachables).
    pub kernel_ipv4: Option<(Ipv4Addr, u8)>,
    /// Bring the link up.
    pub up: bool,
    /// Open with `IFF_VNET_HDR` and ask for checksum offload and TSO
    /// (`TUNSETOFFLOAD`): the kernel then hands over and takes TCP
    /// super-segments of up to 64 KiB. If the kernel refuses, the TAP is
    /// opened without (see [`TapDevice::offload`](Device::offload)).
    pub offload: bool,
}

impl TapOptions {
    /// Options for a TAP named `name`, brought up, with no kernel address.
    pub fn new(name: impl Into<String>) -> Self {
        TapOptions {
            name: name.into(),
            mtu: None,
            kernel_ipv4: None,
            up: true,
            offload: false,
        }
    }

    pub fn offload(mut self, offload: bool) -> Self {
        self.offload = offload;
        self
    }

    pub fn mtu(mut self, mtu: u16) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn kernel_ipv4(mut self, addr: Ipv4Addr, prefix_len: u8) -> Self {
        self.kernel_ipv4 = Some((addr, prefix_len));
        self
    }

    pub fn up(mut self, up: bool) -> Self {
        self.up = up;
        self
    }
}

/// A Linux TAP device: frames written here appear as received by the
/// kernel's interface, and frames the kernel sends out of it are read here.
///
/// The device and its configuration live in the network namespace of the
/// thread that opens it (see [`NetNs::run_in`](crate::netns::NetNs::run_in));
/// the descriptor keeps working from any thread afterwards. A
/// non-persistent TAP disappears when this value is dropped.
pub struct TapDevice {
    dev: tun_rs::SyncDevice,
    name: String,
    mtu: usize,
    // Read at open: tun-rs answers these through a fresh control socket in
    // the *calling* thread's namespace, which after `run_in` is not the
    // TAP's.
    kernel_mac: [u8; 6],
    if_index: u32,
    /// Every frame carries a virtio-net header (`IFF_VNET_HDR`) and the
    /// kernel offloads checksums and segmentation to us and from us.
    vnet_hdr: bool,
}

/// The virtio-net header of a TAP opened with `IFF_VNET_HDR`
/// (include/uapi/linux/virtio_net.h), in the host's byte order (the TAP's
/// default, legacy virtio, without TUNSETVNETLE).
const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// What we ask the kernel to offload to us (TUNSETOFFLOAD): it may hand us
/// frames with partial checksums and TCP super-segments (with ECN bits
/// too), and take them from us. Not UDP segmentation (USO): the stack
/// takes no UDP super-datagrams.
const TUN_OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

nix::ioctl_write_int!(tunsetoffload, b'T', 208);

/// The largest super-segment we write, as an IP datagram.
const TAP_TSO_MAX: usize = 65535;

/// Complete a partial checksum in software, and say so in `tx`.
fn complete_in_place(frame: &mut [u8], tx: &mut Transmit) {
    if let TxChecksum::Partial { start, offset } = tx.checksum {
        complete_checksum(frame, start.into(), offset.into());
        tx.checksum = TxChecksum::Full;
    }
}

fn decode_vnet_hdr(h: &[u8; VNET_HDR_LEN]) -> RxMeta {
    let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
    let (flags, gso_type) = (h[0], h[1]);
    let checksum = if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        RxChecksum::Partial {
            start: u16_at(6),
            offset: u16_at(8),
        }
    } else if flags & VIRTIO_NET_HDR_F_DATA_VALID != 0 {
        RxChecksum::Verified
    } else {
        RxChecksum::None
    };
    let gso = match gso_type & !VIRTIO_NET_HDR_GSO_ECN {
        VIRTIO_NET_HDR_GSO_NONE => GsoType::None,
        VIRTIO_NET_HDR_GSO_TCPV4 => GsoType::TcpV4,
        other => GsoType::Other(other),
    };
    RxMeta {
        checksum,
        gso,
        gso_size: u16_at(4),
    }
}

fn encode_vnet_hdr(tx: &Transmit) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    if let TxChecksum::Partial { start, offset } = tx.checksum {
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h[6..8].copy_from_slice(&start.to_ne_bytes());
        h[8..10].copy_from_slice(&offset.to_ne_bytes());
    }
    if tx.gso_size != 0 {
        h[1] = VIRTIO_NET_HDR_GSO_TCPV4;
        h[2..4].copy_from_slice(&tx.header_len.to_ne_bytes());
        h[4..6].copy_from_slice(&tx.gso_size.to_ne_bytes());
    }
    h
}

impl TapDevice {
    /// Create (or attach to) the TAP described by `opts`, configure it and
    /// make it non-blocking.
    pub fn open(opts: &TapOptions) -> io::Result<TapDevice> {
        let mut queues = Self::open_queues(opts, 1)?;
        Ok(queues.remove(0))
    }

    /// [`open`](Self::open) with `IFF_MULTI_QUEUE` and `n` queues (n > 1),
    /// each a descriptor of its own: the kernel hashes each flow to one
    /// queue (and sends a flow's frames to the queue its frames were last
    /// written on), so a stack shard per queue sees whole connections.
    /// With `n` of 1, a plain single-queue TAP.
    pub fn open_queues(opts: &TapOptions, n: usize) -> io::Result<Vec<TapDevice>> {
        if opts.offload {
            match Self::open_with(opts, true, n) {
                Ok(devs) => return Ok(devs),
                Err(e) => {
                    tracing::warn!(tap = %opts.name, error = %e, "TAP offloads refused; opening without");
                }
            }
        }
        Self::open_with(opts, false, n)
    }

    fn open_with(opts: &TapOptions, offload: bool, queues: usize) -> io::Result<Vec<TapDevice>> {
        let mut builder = tun_rs::DeviceBuilder::new()
            .name(opts.name.clone())
            .layer(tun_rs::Layer::L2)
            .offload(offload)
            .multi_queue(queues > 1)
            .enable(opts.up);
        if let Some(mtu) = opts.mtu {
            builder = builder.mtu(mtu);
        }
        if let Some((addr, prefix)) = opts.kernel_ipv4 {
            builder = builder.ipv4(addr, prefix, None);
        }
        let first = builder
            .build_sync()
            .map_err(|e| annotate(e, &format!("opening TAP {}", opts.name)))?;
        let name = first.name().unwrap_or_else(|_| opts.name.clone());
        let mtu = usize::from(first.mtu()?);
        let kernel_mac = first.mac_address()?;
        let if_index = first.if_index()?;
        let mut devs = vec![first];
        for _ in 1..queues {
            let queue = devs[0]
                .try_clone()
                .map_err(|e| annotate(e, &format!("opening a queue of TAP {name}")))?;
            devs.push(queue);
        }
        tracing::debug!(tap = %name, mtu, if_index, offload, queues, "TAP open");
        devs.into_iter()
            .map(|dev| {
                dev.set_nonblocking(true)?;
                if offload {
                    // tun-rs asks for UDP segmentation too where the kernel
                    // has it; ask for what the stack takes only.
                    // SAFETY: TUNSETOFFLOAD on our own TAP descriptor, with flags.
                    unsafe { tunsetoffload(dev.as_raw_fd(), TUN_OFFLOADS as _) }
                        .map_err(|e| annotate(e.into(), "TUNSETOFFLOAD"))?;
                }
                Ok(TapDevice {
                    dev,
                    name: name.clone(),
                    mtu,
                    kernel_mac,
                    if_index,
                    vnet_hdr: offload,
                })
            })
            .collect()
    }

    /// The kernel interface's MAC address (the peer tapir talks to; tapir
    /// has its own MAC in its [`Config`](tapir_stack::Config)), as it was
    /// when the device was opened.
    pub fn kernel_mac(&self) -> [u8; 6] {
        self.kernel_mac
    }

    /// The kernel's interface index of the TAP.
    pub fn if_index(&self) -> u32 {
        self.if_index
    }

    /// One frame behind its virtio-net header, in one write.
    fn write_vnet(&self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()> {
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: both iovecs describe live buffers of their length; writev
        // only reads them.
        let n = unsafe { libc::writev(self.dev.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != VNET_HDR_LEN + frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "TAP {} took {n} of {} bytes",
                    self.name,
                    VNET_HDR_LEN + frame.len()
                ),
            ));
        }
        Ok(())
    }
}

impl Device for TapDevice {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.vnet_hdr {
            // A TAP read returns one whole frame; a buffer that is too small
            // gets it truncated. Our buffers are sized for the device's MTU
            // plus headroom, so a truncated read means a misconfigured MTU.
            return self.dev.recv(buf);
        }
        // A caller that takes no metadata gets complete checksums (and a
        // super-segment as one large frame).
        let (n, meta) = self.recv_meta(buf)?;
        if let RxChecksum::Partial { start, offset } = meta.checksum {
            complete_checksum(&mut buf[..n], start.into(), offset.into());
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if self.vnet_hdr {
            return self.write_vnet(&[0; VNET_HDR_LEN], frame);
        }
        let n = self.dev.send(frame)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("TAP {} took {n} of {} bytes", self.name, frame.len()),
            ));
        }
        Ok(())
    }

    fn offload(&self) -> Offload {
        if self.vnet_hdr {
            Offload {
                tso_max: TAP_TSO_MAX,
                tx_checksum: true,
            }
        } else {
            Offload::default()
        }
    }

    fn recv_meta(&mut self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        if !self.vnet_hdr {
            return self.dev.recv(buf).map(|n| (n, RxMeta::default()));
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        let iov = [
            libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            },
        ];
        // SAFETY: both iovecs describe live, writable buffers of their length.
        let n = unsafe { libc::readv(self.dev.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < VNET_HDR_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TAP {}: a {n}-byte read has no virtio-net header", self.name),
            ));
        }
        Ok((n - VNET_HDR_LEN, decode_vnet_hdr(&hdr)))
    }

    fn send_meta(&mut self, frame: &mut [u8], tx: &mut Transmit) -> io::Result<()> {
        if !self.vnet_hdr {
            complete_in_place(frame, tx);
            if tx.gso_size != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("TAP {} was opened without offloads", self.name),
                ));
            }
            return self.send(frame);
        }
        self.write_vnet(&encode_vnet_hdr(tx), frame)
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.dev.as_raw_fd())
    }

    fn mtu(&self) -> Option<usize> {
        Some(self.mtu)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

// ---------------------------------------------------------------------------
// AF_PACKET

/// An `AF_PACKET` raw socket bound to one existing interface.
///
/// Use it where tapir owns one end of a link the kernel did not make for it
/// (a veth end, a dummy, a real NIC in a lab): the kernel side of that
/// interface must have no IPv4 address of its own, or the kernel will
/// answer tapir's peers too.
///
/// The socket sees every frame on the interface, including the ones it
/// sends itself; those are filtered out with `PACKET_IGNORE_OUTGOING`
/// (Linux 4.20) and, as a fallback, by the `PACKET_OUTGOING` packet type.
/// The interface is put in promiscuous mode through a packet membership
/// (dropped automatically with the socket) so frames to tapir's MAC reach
/// us on links that filter by destination.
pub struct PacketDevice {
    fd: OwnedFd,
    name: String,
    if_index: i32,
    mtu: usize,
    /// Every frame carries a virtio-net header (`PACKET_VNET_HDR`).
    vnet_hdr: bool,
}

/// `SOL_PACKET` option: a virtio-net header before every frame, both ways.
const PACKET_VNET_HDR: libc::c_int = 15;

impl PacketDevice {
    /// Bind to the interface `ifname` in the calling thread's namespace.
    pub fn open(ifname: &str) -> io::Result<PacketDevice> {
        Self::open_with(ifname, false)
    }

    /// [`Self::open`], with offloads if `offload` and the kernel has
    /// `PACKET_VNET_HDR`: frames then come and go with a virtio-net header,
    /// so super-segments (GSO from the interface's peer, TSO from us)
    /// cross whole and partial checksums are flagged rather than wrong.
    pub fn open_with(ifname: &str, offload: bool) -> io::Result<PacketDevice> {
        let cname = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let if_index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if if_index == 0 {
            return Err(annotate(
                io::Error::last_os_error(),
                &format!("interface {ifname}"),
            ));
        }
        let if_index = i32::try_from(if_index)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;

        // Protocol 0: the socket receives nothing until bind() names the
        // interface, so no frame from another interface slips in between.
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(annotate(io::Error::last_os_error(), "socket(AF_PACKET)"));
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // Best effort: older kernels lack it and we filter by packet type.
        let one: libc::c_int = 1;
        if let Err(e) = setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one) {
            tracing::debug!(error = %e, "PACKET_IGNORE_OUTGOING unavailable; filtering by packet type");
        }
        let vnet_hdr = offload
            && match setsockopt(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, &one) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(interface = ifname, error = %e, "PACKET_VNET_HDR refused; no offloads");
                    false
                }
            };

        // SAFETY: sockaddr_ll is plain old data; zero is a valid start.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = if_index;
        // SAFETY: sll is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(annotate(
                io::Error::last_os_error(),
                &format!("bind AF_PACKET to {ifname}"),
            ));
        }

        // SAFETY: packet_mreq is plain old data.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = if_index;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| annotate(e, &format!("promiscuous mode on {ifname}")))?;

        let mtu = interface_mtu(&fd, &cname).unwrap_or(1500);
        tracing::debug!(interface = ifname, if_index, mtu, vnet_hdr, "AF_PACKET open");
        Ok(PacketDevice {
            fd,
            name: ifname.to_owned(),
            if_index,
            mtu,
            vnet_hdr,
        })
    }

    /// The MAC address of the interface the socket is bound to. Using it as
    /// tapir's MAC makes the link look like an ordinary NIC.
    pub fn mac(&self) -> io::Result<[u8; 6]> {
        let cname = CString::new(self.name.as_str())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
        let mut req = ifreq_for(&cname)?;
        // SAFETY: SIOCGIFHWADDR fills ifr_hwaddr of a valid ifreq.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the ioctl succeeded, so the hwaddr member is the live one.
        let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
        let mut mac = [0u8; 6];
        for (m, d) in mac.iter_mut().zip(data.iter()) {
            *m = *d as u8;
        }
        Ok(mac)
    }

    pub fn if_index(&self) -> u32 {
        self.if_index as u32
    }
}

impl PacketDevice {
    /// One frame and its virtio-net header (zero without `PACKET_VNET_HDR`).
    fn recv_vnet(&mut self, buf: &mut [u8]) -> io::Result<(usize, [u8; VNET_HDR_LEN])> {
        let mut hdr = [0u8; VNET_HDR_LEN];
        loop {
            // SAFETY: sockaddr_ll and msghdr are plain old data.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut iov = [
                libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                },
            ];
            let (iov_at, hdr_len) = if self.vnet_hdr { (0, VNET_HDR_LEN) } else { (1, 0) };
            // SAFETY: as above.
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = iov[iov_at..].as_mut_ptr();
            msg.msg_iovlen = iov.len() - iov_at;
            // MSG_TRUNC makes the kernel return the frame's real length, so
            // a frame larger than `buf` is detected and dropped, not
            // handed to the stack cut short.
            // SAFETY: msg points to live buffers of the lengths given.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = (n as usize).saturating_sub(hdr_len);
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            if n > buf.len() {
                tracing::warn!(interface = %self.name, len = n, buf = buf.len(), "dropping oversized frame");
                continue;
            }
            return Ok((n, hdr));
        }
    }

    /// One frame behind its virtio-net header, if the socket has them.
    fn send_vnet(&mut self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()> {
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        let iov = if self.vnet_hdr { &iov[..] } else { &iov[1..] };
        // The socket is bound, so a plain write goes out of that interface.
        // SAFETY: the iovecs describe live buffers of their length.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let want: usize = iov.iter().map(|v| v.iov_len).sum();
        if n as usize != want {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("{} took {n} of {want} bytes", self.name),
            ));
        }
        Ok(())
    }
}

impl Device for PacketDevice {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, hdr) = self.recv_vnet(buf)?;
        // A caller that takes no metadata gets complete checksums.
        if let RxChecksum::Partial { start, offset } = decode_vnet_hdr(&hdr).checksum {
            complete_checksum(&mut buf[..n], start.into(), offset.into());
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.send_vnet(&[0; VNET_HDR_LEN], frame)
    }

    fn offload(&self) -> Offload {
        if self.vnet_hdr {
            Offload {
                tso_max: TAP_TSO_MAX,
                tx_checksum: true,
            }
        } else {
            Offload::default()
        }
    }

    fn recv_meta(&mut self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        let (n, hdr) = self.recv_vnet(buf)?;
        Ok((n, decode_vnet_hdr(&hdr)))
    }

    fn send_meta(&mut self, frame: &mut [u8], tx: &mut Transmit) -> io::Result<()> {
        if !self.vnet_hdr {
            complete_in_place(frame, tx);
            if tx.gso_size != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} was opened without offloads", self.name),
                ));
            }
        }
        self.send_vnet(&encode_vnet_hdr(tx), frame)
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn mtu(&self) -> Option<usize> {
        Some(self.mtu)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value points to a T of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ifreq_for(name: &CString) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes_with_nul();
    // SAFETY: ifreq is plain old data.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    if bytes.len() > req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

fn interface_mtu(fd: &OwnedFd, name: &CString) -> io::Result<usize> {
    let mut req = ifreq_for(name)?;
    // SAFETY: SIOCGIFMTU fills ifr_mtu of a valid ifreq.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl succeeded, so ifru_mtu is the live member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
}

fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

// ---------------------------------------------------------------------------
// In memory

/// Frames each direction of a [`MemoryDevice`] pair holds by default.
pub const MEMORY_QUEUE_FRAMES: usize = 1024;

/// One direction of a memory link: a bounded frame queue and an eventfd
/// that is readable while the queue may be non-empty.
struct Pipe {
    queue: Mutex<VecDeque<Vec<u8>>>,
    capacity: usize,
    ready: EventFd,
    dropped: AtomicU64,
}

impl Pipe {
    fn new(capacity: usize) -> io::Result<Pipe> {
        let ready = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Pipe {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            ready,
            dropped: AtomicU64::new(0),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One end of an in-memory Ethernet link made by [`MemoryDevice::pair`].
///
/// What one end sends, the other receives, in order. Each direction holds
/// at most its capacity in frames; a frame sent into a full direction is
/// dropped and counted, as a NIC with a full ring would. The receive side
/// has an eventfd, so the driver polls a memory link exactly as it polls a
/// TAP.
pub struct MemoryDevice {
    rx: Arc<Pipe>,
    tx: Arc<Pipe>,
    name: String,
    mtu: Option<usize>,
}

impl MemoryDevice {
    /// Two connected ends, each direction holding [`MEMORY_QUEUE_FRAMES`].
    pub fn pair() -> io::Result<(MemoryDevice, MemoryDevice)> {
        Self::pair_with_capacity(MEMORY_QUEUE_FRAMES)
    }

    /// Two connected ends, each direction holding `capacity` frames.
    pub fn pair_with_capacity(capacity: usize) -> io::Result<(MemoryDevice, MemoryDevice)> {
        let a_to_b = Arc::new(Pipe::new(capacity)?);
        let b_to_a = Arc::new(Pipe::new(capacity)?);
        let a = MemoryDevice {
            rx: b_to_a.clone(),
            tx: a_to_b.clone(),
            name: "mem-a".into(),
            mtu: None,
        };
        let b = MemoryDevice {
            rx: a_to_b,
            tx: b_to_a,
            name: "mem-b".into(),
            mtu: None,
        };
        Ok((a, b))
    }

    /// Rename this end (for logs).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Report `mtu` as the link's IP MTU.
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Frames dropped because this end's receive direction was full.
    pub fn dropped(&self) -> u64 {
        self.rx.dropped.load(Ordering::Relaxed)
    }

    /// Frames waiting to be received at this end.
    pub fn pending(&self) -> usize {
        self.rx.queue().len()
    }

    /// Receive one frame, waiting up to `timeout` for it. For tests that
    /// play the far end of a link by hand.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.recv(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.rx.ready.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Device for MemoryDevice {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let frame = {
                let mut q = self.rx.queue();
                match q.pop_front() {
                    Some(f) => f,
                    None => {
                        // Clear readiness while holding the queue lock: a
                        // sender pushes and signals under the same lock, so
                        // no frame can be left queued with the eventfd clear.
                        let _ = self.rx.ready.read();
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                }
            };
            if frame.len() > buf.len() {
                self.rx.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(device = %self.name, len = frame.len(), buf = buf.len(), "dropping oversized frame");
                continue;
            }
            buf[..frame.len()].copy_from_slice(&frame);
            return Ok(frame.len());
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut q = self.tx.queue();
        if q.len() >= self.tx.capacity {
            self.tx.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        q.push_back(frame.to_vec());
        self.tx.ready.write(1)?;
        Ok(())
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.rx.ready.as_raw_fd())
    }

    fn mtu(&self) -> Option<usize> {
        self.mtu
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx<'a>(dev: &mut MemoryDevice, buf: &'a mut [u8]) -> &'a [u8] {
        let n = dev.recv(buf).expect("a frame");
        &buf[..n]
    }

    fn readable(dev: &MemoryDevice) -> bool {
        let fd = dev.as_raw_fd().expect("memory devices have an eventfd");
        // SAFETY: fd stays open for the duration of the call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).expect("poll") == 1
    }

    #[test]
    fn virtio_net_headers_read_back_as_written() {
        let tx = Transmit {
            len: 9000,
            gso_size: 1448,
            header_len: 66,
            checksum: TxChecksum::Partial {
                start: 34,
                offset: 16,
            },
        };
        let mut h = encode_vnet_hdr(&tx);
        let meta = decode_vnet_hdr(&h);
        assert_eq!(
            meta.checksum,
            RxChecksum::Partial {
                start: 34,
                offset: 16
            }
        );
        assert_eq!((meta.gso, meta.gso_size), (GsoType::TcpV4, 1448));
        // The ECN bit does not change the kind; other kinds are named.
        h[1] = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
        assert_eq!(decode_vnet_hdr(&h).gso, GsoType::TcpV4);
        h[1] = 5;
        assert_eq!(decode_vnet_hdr(&h).gso, GsoType::Other(5));
        assert_eq!(
            decode_vnet_hdr(&[VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0]).checksum,
            RxChecksum::Verified
        );
        assert_eq!(encode_vnet_hdr(&Transmit::default()), [0; VNET_HDR_LEN]);
    }

    #[test]
    fn plain_devices_complete_partial_checksums_once() {
        let (mut a, mut b) = MemoryDevice::pair().unwrap();
        // A UDP datagram 10.77.0.2:5000 -> 10.77.0.1:6000, "ping", with
        // the pseudo-header sum in its checksum field.
        let (src, dst) = ([10u8, 77, 0, 2], [10u8, 77, 0, 1]);
        let mut frame = vec![0u8; 14 + 20 + 8 + 4];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[42..].copy_from_slice(b"ping");
        let udp = &mut frame[34..];
        udp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        udp[2..4].copy_from_slice(&6000u16.to_be_bytes());
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        let pseudo: u32 = [&src[..], &dst[..], &[0, 17], &12u16.to_be_bytes()]
            .concat()
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = ((pseudo & 0xffff) + (pseudo >> 16)) as u16;
        udp[6..8].copy_from_slice(&folded.to_be_bytes());
        let mut tx = Transmit {
            len: frame.len(),
            checksum: TxChecksum::Partial { start: 34, offset: 6 },
            ..Transmit::default()
        };
        a.send_meta(&mut frame, &mut tx).unwrap();
        // Marked complete, so a retry does not sum it again.
        assert_eq!(tx.checksum, TxChecksum::Full);
        let mut buf = [0u8; 64];
        let n = b.recv(&mut buf).unwrap();
        // The receiver's check: the datagram plus pseudo-header sums to 0xffff.
        let mut sum = pseudo;
        for w in buf[34..n].chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        // A super-segment needs a device that cuts it.
        let mut tx = Transmit {
            len: frame.len(),
            gso_size: 1000,
            ..Transmit::default()
        };
        let err = a.send_meta(&mut frame, &mut tx).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(a.offload(), Offload::default());
    }

    #[test]
    fn frames_cross_in_order() {
        let (mut a, mut b) = MemoryDevice::pair().unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(b.recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(!readable(&b));
        a.send(b"one").unwrap();
        a.send(b"two").unwrap();
        assert!(readable(&b));
        assert_eq!(b.pending(), 2);
        assert_eq!(rx(&mut b, &mut buf), b"one");
        // Still readable: the eventfd is only cleared once the queue is empty.
        assert!(readable(&b));
        assert_eq!(rx(&mut b, &mut buf), b"two");
        assert_eq!(b.recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(!readable(&b));
        // The other direction is independent.
        b.send(b"back").unwrap();
        assert_eq!(rx(&mut a, &mut buf), b"back");
        assert_eq!(a.dropped() + b.dropped(), 0);
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (mut a, mut b) = MemoryDevice::pair_with_capacity(2).unwrap();
        for i in 0..5u8 {
            a.send(&[i]).unwrap();
        }
        assert_eq!(b.dropped(), 3);
        let mut buf = [0u8; 8];
        assert_eq!(rx(&mut b, &mut buf), &[0]);
        assert_eq!(rx(&mut b, &mut buf), &[1]);
        assert!(b.recv(&mut buf).is_err());
    }

    #[test]
    fn oversized_frames_are_dropped_not_truncated() {
        let (mut a, mut b) = MemoryDevice::pair().unwrap();
        a.send(&[1u8; 100]).unwrap();
        a.send(&[2u8; 10]).unwrap();
        let mut buf = [0u8; 50];
        assert_eq!(b.recv(&mut buf).unwrap(), 10);
        assert_eq!(b.dropped(), 1);
    }

    #[test]
    fn recv_timeout_waits_for_the_peer() {
        let (mut a, mut b) = MemoryDevice::pair().unwrap();
        let mut buf = [0u8; 8];
        let err = b.recv_timeout(&mut buf, Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            a.send(b"late").unwrap();
            a
        });
        assert_eq!(b.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap(), 4);
        t.join().unwrap();
    }
}
