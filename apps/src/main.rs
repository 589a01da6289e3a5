//! `tapir`: a userspace TCP/IP stack on a TAP device.

mod demo;
mod script;

use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use std::process::ExitCode;
use tapir_apps::net::{bring_up, NetArgs};
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
}

#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Serve UDP echo (RFC 862) on this port.
    #[arg(long, value_name = "PORT")]
    udp_echo: Option<u16>,
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapir: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(args: UpArgs) -> Result<(), String> {
    // Block the signals before any thread starts, so every thread inherits
    // the mask and only our sigwait below receives them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;

    let running = bring_up(&args.net).map_err(|e| format!("bringing the stack up: {e}"))?;
    let stack = running.driver.stack();
    let mut served = Vec::new();
    if let Some(port) = args.udp_echo {
        served.push(services::udp_echo(&stack, port).map_err(|e| format!("udp echo on {port}: {e}"))?);
    }
    let names: Vec<&str> = served.iter().map(|s| s.name.as_str()).collect();
    eprintln!(
        "tapir up on {}: {} mac {}{}{}; Ctrl-C to stop",
        running.device_name,
        args.net.addr,
        running.mac,
        if names.is_empty() { "" } else { ", serving " },
        names.join(", ")
    );
    let signal = signals.wait().map_err(|e| format!("waiting for a signal: {e}"))?;
    eprintln!("tapir: {signal:?}, shutting down");
    for s in served {
        let name = s.name.clone();
        match s.stop() {
            Ok(n) => eprintln!("{name}: {n} requests served"),
            Err(e) => eprintln!("{name}: stopped with error: {e}"),
        }
    }
    let error = running.driver.error();
    let iface = running.driver.shutdown();
    print!("{}", iface.stats());
    match error {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}
