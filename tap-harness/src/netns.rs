//! Network namespaces for tests and the demo.
//!
//! Every test against the real kernel runs in a namespace it made for
//! itself: its own loopback, its own TAP, its own routes. Traffic never
//! leaves it, tests can run in parallel without sharing addresses, and a
//! failed test leaves nothing behind on the host. [`NetNs`] creates a
//! uniquely named namespace with `ip netns add` (so `ip netns exec` and
//! `ip -n` reach it by name) and deletes it, by that exact name, on drop.
//!
//! Devices are created inside by running code on a thread that has
//! entered the namespace ([`NetNs::run_in`]); a descriptor opened there
//! keeps pointing into the namespace after the thread is gone, so the
//! driver can run on any thread.
//!
//! [`kernel_tests_allowed`] and the [`require_kernel!`](crate::require_kernel)
//! macro decide whether a kernel test can run here, and skip it loudly (or,
//! with `TAPIR_REQUIRE_KERNEL=1`, fail it) when it cannot.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace this process created, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Create `tapir-<prefix>-<pid>-<n>` with its loopback up.
    pub fn create(prefix: &str) -> io::Result<NetNs> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("tapir-{prefix}-{}-{n}", std::process::id());
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on, Drop removes it even if the rest fails.
        let ns = NetNs { name };
        run_checked(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        tracing::debug!(netns = %ns.name, "created");
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Run `cmd` inside the namespace and collect its output. Waits at most
    /// [`DEFAULT_EXEC_TIMEOUT`]; see [`NetNs::exec_timeout`].
    pub fn exec(&self, cmd: &[&str]) -> io::Result<Output> {
        self.exec_timeout(cmd, DEFAULT_EXEC_TIMEOUT)
    }

    /// Run `cmd` inside the namespace, killing it if it runs longer than
    /// `timeout` (the error is then [`io::ErrorKind::TimedOut`] and carries
    /// what the command printed so far).
    pub fn exec_timeout(&self, cmd: &[&str], timeout: Duration) -> io::Result<Output> {
        let (program, args) = cmd
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut c = self.command(program);
        c.args(args);
        output_with_timeout(&mut c, timeout)
    }

    /// Start `cmd` inside the namespace with piped stdout/stderr and null
    /// stdin; the caller waits for (or kills) the child.
    pub fn spawn(&self, cmd: &[&str]) -> io::Result<Child> {
        let (program, args) = cmd
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    /// [`spawn`](Self::spawn) `cmd` and wait, up to `timeout`, for its
    /// first line of output to be `ready`: a server or listener saying it
    /// is bound. Its later lines arrive on the receiver. If it says
    /// anything else first, or nothing in time, it is killed and the error
    /// carries what it said and its stderr.
    pub fn spawn_ready(
        &self,
        cmd: &[&str],
        ready: &str,
        timeout: Duration,
    ) -> io::Result<(Child, std::sync::mpsc::Receiver<String>)> {
        let mut child = self.spawn(cmd)?;
        let lines = stdout_lines(&mut child);
        let first = lines.recv_timeout(timeout);
        if first.as_deref() == Ok(ready) {
            return Ok((child, lines));
        }
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        Err(io::Error::other(format!(
            "{cmd:?} in {}: first line {first:?}, not {ready:?}; stderr: {err}",
            self.name
        )))
    }

    /// Run `f` on a new thread inside the namespace and return its result.
    ///
    /// Sockets and TAP devices that `f` creates belong to the namespace and
    /// stay there when the thread ends. The calling thread is not moved.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = Path::new("/var/run/netns").join(&self.name);
        let file = File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
        std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name(format!("netns-{}", self.name))
                .spawn_scoped(s, move || {
                    setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                    Ok(f())
                })?;
            match thread.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Create a veth pair inside the namespace: `kernel_end` gets
    /// `kernel_addr` (if any), `tapir_end` gets no address and no IPv6 (so
    /// the kernel never speaks for it), and both are brought up.
    pub fn veth_pair(
        &self,
        kernel_end: &str,
        tapir_end: &str,
        kernel_addr: Option<(Ipv4Addr, u8)>,
    ) -> io::Result<()> {
        let ip = |args: &[&str]| run_checked(Command::new("ip").args(["-n", &self.name]).args(args));
        ip(&[
            "link", "add", kernel_end, "type", "veth", "peer", "name", tapir_end,
        ])?;
        if let Some((addr, len)) = kernel_addr {
            ip(&["addr", "add", &format!("{addr}/{len}"), "dev", kernel_end])?;
        }
        // Quiet IPv6 on tapir's end: no link-local address, no router
        // solicitations or DAD from the kernel on a link it does not own.
        let sysctl = format!("net.ipv6.conf.{tapir_end}.disable_ipv6=1");
        if let Err(e) = self.exec(&["sysctl", "-q", "-w", &sysctl]).and_then(check_status) {
            tracing::debug!(error = %e, "could not disable IPv6 on {tapir_end}");
        }
        ip(&["link", "set", kernel_end, "up"])?;
        ip(&["link", "set", tapir_end, "up"])?;
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        match Command::new("ip").args(["netns", "del", &self.name]).output() {
            Ok(o) if o.status.success() => tracing::debug!(netns = %self.name, "deleted"),
            Ok(o) => tracing::warn!(
                netns = %self.name,
                stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                "ip netns del failed"
            ),
            Err(e) => tracing::warn!(netns = %self.name, error = %e, "ip netns del failed"),
        }
    }
}

/// How long [`NetNs::exec`] lets a command run.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Run `cmd`, capturing its output, killing it after `timeout`.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes on threads so a chatty child cannot block on a full
    // pipe while we wait for it to exit.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let collect = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    };
    let stdout = collect(out);
    let stderr = collect(err);
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{cmd:?} still running after {timeout:?}; killed. stdout: {} stderr: {}",
                String::from_utf8_lossy(&stdout).trim(),
                String::from_utf8_lossy(&stderr).trim()
            ),
        )),
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// An error unless `o` exited successfully; the error carries its stderr.
pub fn check_status(o: Output) -> io::Result<Output> {
    if o.status.success() {
        Ok(o)
    } else {
        Err(io::Error::other(format!(
            "{}: {}",
            describe(o.status),
            String::from_utf8_lossy(&o.stderr).trim()
        )))
    }
}

fn describe(s: ExitStatus) -> String {
    match s.code() {
        Some(c) => format!("exit status {c}"),
        None => format!("{s}"),
    }
}

fn run_checked(cmd: &mut Command) -> io::Result<Output> {
    let o = output_with_timeout(cmd, DEFAULT_EXEC_TIMEOUT)?;
    check_status(o).map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))
}

/// Whether `program` is found on `PATH`.
pub fn have_program(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let p = dir.join(program);
        p.is_file()
            && std::fs::metadata(&p)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                .unwrap_or(false)
    })
}

/// Whether this process may run the kernel tests: CAP_NET_ADMIN (root),
/// `/dev/net/tun`, `ip`, and `ip netns add` actually working. The answer
/// is computed once per process.
pub fn kernel_tests_allowed() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER.get_or_init(probe_kernel).clone()
}

fn probe_kernel() -> Result<(), String> {
    if !has_net_admin() {
        return Err("no CAP_NET_ADMIN (run as root)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun is missing".into());
    }
    if !have_program("ip") {
        return Err("`ip` (iproute2) is not installed".into());
    }
    // The real test: can we make (and remove) a namespace here?
    NetNs::create("probe")
        .map(drop)
        .map_err(|e| format!("cannot create a network namespace: {e}"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return is_root();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .map(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
        .unwrap_or_else(is_root)
}

/// Whether `TAPIR_REQUIRE_KERNEL=1` asks for skips to be failures.
pub fn kernel_required() -> bool {
    std::env::var("TAPIR_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
}

/// Decide whether a kernel test runs: `Ok(true)` to run, `Ok(false)` after
/// printing `SKIPPED: <reason>`; panics with the reason instead when
/// [`kernel_required`]. `programs` are extra tools the test needs.
pub fn should_run_kernel_test(test: &str, programs: &[&str]) -> bool {
    let reason = match kernel_tests_allowed() {
        Err(r) => Some(r),
        Ok(()) => programs
            .iter()
            .find(|p| !have_program(p))
            .map(|p| format!("`{p}` is not installed")),
    };
    match reason {
        None => true,
        Some(reason) if kernel_required() => {
            panic!("{test}: kernel test cannot run ({reason}) and TAPIR_REQUIRE_KERNEL=1")
        }
        Some(reason) => {
            skip_notice(&format!("{test}: {reason}"));
            false
        }
    }
}

/// Print `SKIPPED: <what>` to the real stderr. The test harness captures
/// `eprintln!` of passing tests; a skip must be seen, so this writes to the
/// stream directly.
pub fn skip_notice(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// Start a kernel test: returns from the calling function (skipping the
/// test) when the kernel tests cannot run here, or panics when
/// `TAPIR_REQUIRE_KERNEL=1`. Extra required programs may be named:
/// `require_kernel!("ping", "python3");`
#[macro_export]
macro_rules! require_kernel {
    ($($program:expr),* $(,)?) => {
        fn __here() {}
        let __test = ::std::any::type_name_of_val(&__here);
        let __test = __test.strip_suffix("::__here").unwrap_or(__test);
        if !$crate::netns::should_run_kernel_test(__test, &[$($program),*]) {
            return;
        }
    };
}

/// A child's stdout, line by line, through a channel (to wait on with a
/// bound); a thread reads it until it closes or the receiver is dropped.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}
