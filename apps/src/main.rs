//! `tapir`: a userspace TCP/IP stack on a TAP device.

mod demo;
mod script;

use clap::{Parser, Subcommand};
use nix::sys::signal::{SigHandler, SigSet, Signal};
use std::process::ExitCode;
use tapir_apps::net::{bring_up_with, DriverMode, NetArgs};
use tapir_apps::services;

#[derive(Parser)]
#[command(
    name = "tapir",
    version,
    about = "A userspace TCP/IP and UDP stack over Linux TAP devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring the stack up on a device and serve until SIGINT or SIGTERM.
    Up(UpArgs),
    /// Make a network namespace with a TAP, bring tapir up in it, and have
    /// the kernel's own tools talk to it. Needs root (CAP_NET_ADMIN).
    Demo(demo::DemoArgs),
    /// Run TCP segment scripts (packetdrill syntax) against tapir's TCP on a
    /// virtual clock; prints pass/fail and skipped lines per file.
    Script(script::ScriptArgs),
    /// Fetch an http:// URL over tapir (an HTTP/1.1 client, tapir as the
    /// active opener): body to stdout or -o FILE, status line to stderr.
    /// Exits 0 for any HTTP response, non-zero for transport errors.
    Get(tapir_apps::get::GetArgs),
    /// Measure TCP throughput over tapir, iperf-like: client (--connect)
    /// or server (--listen), plain bytes, so nc or a python socket can be
    /// the peer; or, with --iperf3, iperf3's own protocol.
    Tput(tapir_apps::tput::TputArgs),
    /// Bridge two interfaces through an emulated link (loss, delay,
    /// reordering, rate limit...), so two kernels can talk through it.
    Impair(tapir_apps::impair::ImpairArgs),
    /// Draw a connection's timeline (`tapir tput --trace FILE.csv`) as an
    /// SVG: time-sequence graph, windows, RTT.
    Plot(tapir_apps::plot::PlotArgs),
}

#[derive(clap::Args)]
#[command(after_help = tapir_apps::impair::SYNTAX)]
struct UpArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Serve UDP echo (RFC 862) on this port.
    #[arg(long, value_name = "PORT")]
    udp_echo: Option<u16>,
    /// Serve TCP echo (RFC 862) on this port.
    #[arg(long, value_name = "PORT")]
    tcp_echo: Option<u16>,
    /// Serve TCP discard (RFC 863) on this port.
    #[arg(long, value_name = "PORT")]
    discard: Option<u16>,
    /// Serve the TCP character generator (RFC 864) on this port.
    #[arg(long, value_name = "PORT")]
    chargen: Option<u16>,
    /// Serve iperf3's TCP tests on this port (the kernel's `iperf3 -c`).
    #[arg(long, value_name = "PORT")]
    iperf3: Option<u16>,
    /// Serve HTTP/1.1 on this port: /bytes/N, /echo, /stats, and files
    /// from --http-root.
    #[arg(long, value_name = "PORT")]
    http: Option<u16>,
    /// Run the services with one acceptor thread and N worker threads,
    /// each owning the connections handed to it (a current-thread tokio
    /// runtime per worker) [default: tokio's multi-thread runtime].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Threads of the default multi-thread runtime [default: the cores,
    /// 2 to 4].
    #[arg(long, value_name = "N", conflicts_with = "workers", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Run to completion: the stack's driver, the accept loops and every
    /// connection on one thread (the driver as a task of the services'
    /// runtime), with no wakeup crossing threads.
    #[arg(long, conflicts_with_all = ["workers", "threads"])]
    inline: bool,
    /// Open the TAP with IFF_MULTI_QUEUE and this many queues, one stack
    /// shard each, on a thread each with its services and driver (as
    /// --inline): the kernel keeps a flow on one queue, and every shard
    /// listens on every service's port (SO_REUSEPORT-style). Each shard's
    /// /stats and closing counters are its own. Not with --iperf3: a
    /// test's control and data connections may land on different shards.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64),
          conflicts_with_all = ["workers", "threads", "trace"])]
    queues: u16,
    /// Directory the HTTP server serves files from.
    #[arg(long, value_name = "DIR", requires = "http")]
    http_root: Option<std::path::PathBuf>,
    /// Record every TCP connection's timeline (cwnd, ssthresh, flight,
    /// SACKed and lost bytes, SRTT, RTO, sequence numbers, recovery state)
    /// into DIR, one CSV file per connection (`tapir plot` draws one).
    #[arg(long, value_name = "DIR")]
    trace: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up(args),
        Command::Demo(args) => demo::run(args),
        Command::Script(args) => script::run(args),
        Command::Get(args) => tapir_apps::get::run(args),
        Command::Tput(args) => tapir_apps::tput::run(args),
        Command::Impair(args) => tapir_apps::impair::run(args),
        Command::Plot(args) => tapir_apps::plot::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapir: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(mut args: UpArgs) -> Result<(), String> {
    // Block the signals before any thread starts, so every thread inherits
    // the mask and only our sigwait below receives them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    // A shell starts background jobs with SIGINT ignored (POSIX 2.11), and
    // whoever started us may have ignored SIGTERM: we wait for them, so they
    // are not ignored. Blocked first, so the default action (termination)
    // never runs.
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: no handler is installed, only the default disposition.
        unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }
            .map_err(|e| format!("resetting {sig:?}: {e}"))?;
    }

    if args.trace.is_some() {
        args.net.trace_connections = Some(tapir_stack::DEFAULT_TRACE_CAPACITY / 16);
    }
    let queues = usize::from(args.queues);
    let mut nodes = Vec::new();
    let mut tracer = None;
    if queues > 1 && args.iperf3.is_some() {
        return Err(
            "--queues with --iperf3: a test's control and data connections may land on \
                    different shards"
                .into(),
        );
    }
    if queues > 1 {
        // One shard per queue, each with its services and driver on a
        // thread of its own (ExecMode::Inline).
        let shards = tapir_apps::net::bring_up_shards(&args.net, queues)
            .map_err(|e| format!("bringing the stack up: {e}"))?;
        for (running, task) in shards {
            nodes.push(Node::start(
                &args,
                running,
                Some(task),
                services::ExecMode::Inline,
            )?);
        }
    } else {
        let driver_mode = if args.inline {
            DriverMode::Task
        } else {
            DriverMode::Thread
        };
        let (running, task) =
            bring_up_with(&args.net, driver_mode).map_err(|e| format!("bringing the stack up: {e}"))?;
        if let Some(dir) = &args.trace {
            let stack = running.driver.stack();
            tracer = Some(Tracer::start(&stack, dir).map_err(|e| format!("--trace {}: {e}", dir.display()))?);
        }
        let mode = match (args.inline, args.workers, args.threads) {
            (true, _, _) => services::ExecMode::Inline,
            (false, Some(n), _) => services::ExecMode::Workers(n.into()),
            (false, None, Some(t)) => services::ExecMode::Runtime { threads: t.into() },
            (false, None, None) => services::ExecMode::default(),
        };
        nodes.push(Node::start(&args, running, task, mode)?);
    }
    let names = nodes[0].names();
    eprintln!(
        "tapir up on {}: {} mac {}{}{}{}; Ctrl-C to stop",
        nodes[0].running.device_name,
        args.net.addr,
        nodes[0].running.mac,
        if queues > 1 {
            format!(", {queues} queues, one stack each")
        } else {
            String::new()
        },
        if names.is_empty() { "" } else { ", serving " },
        names.join(", ")
    );
    let signal = signals.wait().map_err(|e| format!("waiting for a signal: {e}"))?;
    eprintln!("tapir: {signal:?}, shutting down");
    for node in &mut nodes {
        node.stop_services();
    }
    if let Some(t) = tracer {
        match t.stop() {
            Ok(d) => eprintln!(
                "traces: {} connections in {}",
                d.files,
                args.trace.unwrap_or_default().display()
            ),
            Err(e) => eprintln!("traces: {e}"),
        }
    }
    let mut error = None;
    let sharded = nodes.len() > 1;
    for (k, node) in nodes.into_iter().enumerate() {
        let (e, iface) = node.finish();
        error = error.or(e);
        if sharded {
            println!("# queue {k}");
        }
        print!("{}", iface.stats());
    }
    match error {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

/// One stack and what it serves: its services and HTTP server, the
/// executor they run on, and its driver task if it runs on that executor.
struct Node {
    running: tapir_apps::net::Running,
    exec: services::Executor,
    driver_task: Option<tokio::task::JoinHandle<()>>,
    served: Vec<services::Service>,
    http: Option<tapir_apps::http::HttpServer>,
}

impl Node {
    fn start(
        args: &UpArgs,
        running: tapir_apps::net::Running,
        task: Option<tapir_harness::DriverTask>,
        mode: services::ExecMode,
    ) -> Result<Node, String> {
        let stack = running.driver.stack();
        let exec = services::Executor::new(mode).map_err(|e| format!("starting the runtime: {e}"))?;
        let driver_task = task.map(|t| {
            exec.spawn_service(async move {
                // The error is also what every socket then reports, and
                // what `DriverHandle::error` gives.
                let _ = t.run().await;
            })
        });
        let mut served = Vec::new();
        if let Some(port) = args.udp_echo {
            served.push(
                services::udp_echo(&exec, &stack, port).map_err(|e| format!("udp echo on {port}: {e}"))?,
            );
        }
        if let Some(port) = args.tcp_echo {
            served.push(
                services::tcp_echo(&exec, &stack, port).map_err(|e| format!("tcp echo on {port}: {e}"))?,
            );
        }
        if let Some(port) = args.discard {
            served.push(
                services::tcp_discard(&exec, &stack, port).map_err(|e| format!("discard on {port}: {e}"))?,
            );
        }
        if let Some(port) = args.chargen {
            served.push(
                services::tcp_chargen(&exec, &stack, port).map_err(|e| format!("chargen on {port}: {e}"))?,
            );
        }
        if let Some(port) = args.iperf3 {
            served.push(
                services::iperf3_server(&exec, &stack, port).map_err(|e| format!("iperf3 on {port}: {e}"))?,
            );
        }
        let http = match args.http {
            Some(port) => Some(
                tapir_apps::http::serve_on_stack(&exec, &stack, port, args.http_root.clone())
                    .map_err(|e| format!("http on {port}: {e}"))?,
            ),
            None => None,
        };
        Ok(Node {
            running,
            exec,
            driver_task,
            served,
            http,
        })
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.served.iter().map(|s| s.name.clone()).collect();
        names.extend(self.http.as_ref().map(|h| h.name.clone()));
        names
    }

    /// Stop serving, saying what each service served.
    fn stop_services(&mut self) {
        let on = &self.running.device_name;
        if let Some(h) = self.http.take() {
            let name = h.name.clone();
            eprintln!("{name}: {} requests served ({on})", h.stop());
        }
        for s in self.served.drain(..) {
            let name = s.name.clone();
            let unit = s.unit();
            match s.stop() {
                Ok(n) => eprintln!("{name}: {n} {unit} served ({on})"),
                Err(e) => eprintln!("{name}: stopped with error: {e} ({on})"),
            }
        }
    }

    /// Stop the stack: the error that stopped its driver, if one did, and
    /// the stack itself, for its counters.
    fn finish(self) -> (Option<std::io::Error>, tapir_stack::Interface) {
        eprint!("{}", self.running.impair_report().unwrap_or_default());
        let error = self.running.driver.error();
        let iface = self.running.driver.shutdown();
        // A driver task stops with its handle: it returns at its next step,
        // which completes the capture, and must do so before its runtime
        // goes.
        if let Some(t) = self.driver_task {
            let _ = self.exec.block_on(t);
        }
        drop(self.exec);
        (error, iface)
    }
}

/// `tapir up --trace DIR`: a thread that drains every connection's timeline
/// from the stack every 50 ms (well within a trace's bound at any rate the
/// stack reaches) into one CSV file per connection.
struct Tracer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<tapir_apps::trace::TraceDir>>,
}

impl Tracer {
    fn start(stack: &tapir_harness::StackHandle, dir: &std::path::Path) -> std::io::Result<Tracer> {
        use std::sync::atomic::Ordering;
        let mut out = tapir_apps::trace::TraceDir::create(dir)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, stack) = (stop.clone(), stack.clone());
        let thread = std::thread::Builder::new().name("trace".into()).spawn(move || {
            let mut batch = Vec::new();
            loop {
                let last = flag.load(Ordering::Relaxed);
                if stack.try_with(|i| i.tcp_drain_traces(&mut batch)).is_err() {
                    break; // the driver stopped
                }
                out.write(&batch)?;
                batch.clear();
                if last {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            out.finish()?;
            Ok(out)
        })?;
        Ok(Tracer { stop, thread })
    }

    /// One last drain, then close every file.
    fn stop(self) -> Result<tapir_apps::trace::TraceDir, String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.thread.join() {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("the trace thread panicked".into()),
        }
    }
}
