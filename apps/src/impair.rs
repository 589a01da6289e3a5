//! `tapir impair`: the link emulator as a bridge between two interfaces,
//! and the `--impair` flags that put it between tapir and its device.

use clap::Args;
use nix::sys::signal::{SigSet, Signal};
use tapir_harness::Bridge;
use tapir_stack::impair::Spec;

/// The syntax of an impairment spec, for `--help`.
pub const SYNTAX: &str = "\
IMPAIRMENT SPEC: comma-separated key=value, e.g.
  delay=10ms,jitter=2ms,loss=1%,burst=ge:p=1%:r=30%,reorder=2%,dup=0.5%,corrupt=0.1%,rate=100mbit,queue=100,mtu=1400,seed=7
  delay=D          fixed one-way delay (D: 250us, 10ms, 1s)
  jitter=D         extra delay, uniform in [0, D], per frame
  loss=P           random loss (P: 1% or 0.01)
  burst=ge:p=P:r=R[:bad=B][:good=G]
                   Gilbert-Elliott burst loss: P(good->bad)=P, P(bad->good)=R per
                   frame; loss B in the bad state (default 100%), G in the good (0%)
  reorder=P        hold a frame back so later ones overtake it
  reorder-delay=D  for how long (default delay + jitter + 1ms)
  dup=P            deliver a frame twice
  corrupt=P        flip one byte of a frame
  rate=R           serialization rate (R: 9600bit, 64kbit, 100mbit, 1gbit)
  queue=N | Nb     the rate limiter's queue: N full-size frames or N bytes
                   (default 64 KiB); tail drop when full
  mtu=N            largest IP packet carried; larger frames are dropped
  limit=N          frames in flight at once (default 10000)
  seed=N           seed of the random choices (each direction draws its own)
An empty spec or `none` is a clean link.";

/// Impairment flags for commands that bring a stack up.
#[derive(Args, Debug, Clone, Default)]
pub struct ImpairFlags {
    /// Emulate an impaired link between tapir and its device, both
    /// directions (syntax below: delay=10ms,loss=1%,...).
    #[arg(long, value_name = "SPEC")]
    pub impair: Option<Spec>,
    /// Impairments for frames arriving to tapir (overrides --impair).
    #[arg(long, value_name = "SPEC")]
    pub impair_in: Option<Spec>,
    /// Impairments for frames tapir sends (overrides --impair).
    #[arg(long, value_name = "SPEC")]
    pub impair_out: Option<Spec>,
}

impl ImpairFlags {
    /// (in, out), or `None` when no flag was given.
    pub fn directions(&self) -> Option<(Spec, Spec)> {
        if self.impair.is_none() && self.impair_in.is_none() && self.impair_out.is_none() {
            return None;
        }
        let both = self.impair.clone().unwrap_or_default();
        Some((
            self.impair_in.clone().unwrap_or_else(|| both.clone()),
            self.impair_out.clone().unwrap_or(both),
        ))
    }
}

#[derive(Args, Debug)]
#[command(after_help = SYNTAX)]
pub struct ImpairArgs {
    /// The two interfaces to bridge (AF_PACKET on each, promiscuous). With
    /// impairments, turn offloads off on their peers (ethtool -K PEER tx off
    /// tso off gso off); with none, GSO frames pass whole.
    #[arg(long, num_args = 2, value_names = ["A", "B"], required = true)]
    pub between: Vec<String>,
    /// Impairments for both directions.
    #[arg(value_name = "SPEC", default_value = "")]
    pub spec: Spec,
    /// Impairments from A to B (overrides SPEC).
    #[arg(long, value_name = "SPEC")]
    pub a_to_b: Option<Spec>,
    /// Impairments from B to A (overrides SPEC).
    #[arg(long, value_name = "SPEC")]
    pub b_to_a: Option<Spec>,
}

/// Bridge until SIGINT or SIGTERM, then print what each direction did.
pub fn run(args: ImpairArgs) -> Result<(), String> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let [a, b] = [&args.between[0], &args.between[1]];
    let ab = args.a_to_b.unwrap_or_else(|| args.spec.clone());
    let ba = args.b_to_a.unwrap_or(args.spec);
    let bridge = Bridge::start(a, b, &ab, &ba).map_err(|e| format!("bridging {a} and {b}: {e}"))?;
    eprintln!("tapir impair: {a} -> {b}: {ab}; {b} -> {a}: {ba}; Ctrl-C to stop");
    let signal = signals.wait().map_err(|e| format!("waiting for a signal: {e}"))?;
    let (sa, sb) = bridge.stop().map_err(|e| format!("bridge: {e}"))?;
    eprintln!("tapir impair: {signal:?}, stopped");
    for (dir, s) in [(format!("{a} -> {b}"), sa), (format!("{b} -> {a}"), sb)] {
        eprintln!(
            "{dir}: {} bytes; {}; oversized {}, send dropped {}",
            s.bytes, s.link, s.oversized, s.send_dropped
        );
    }
    Ok(())
}
