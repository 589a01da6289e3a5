//! Helpers shared by the tests that run the `tapir` binary.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};
use tapir_harness::NetNs;

/// Wait (10 s at most) until the `tapir up` this test started in `ns` has
/// given the kernel's side of TAP `dev` the address `host` (e.g.
/// "10.77.0.1/24"): the stack is up. Kills it and panics if not.
pub fn wait_for_tap(ns: &NetNs, child: &mut Child, dev: &str, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = ns.exec(&["ip", "-4", "addr", "show", "dev", dev]).unwrap();
        if String::from_utf8_lossy(&o.stdout).contains(host) {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tapir up did not configure the TAP in {}", ns.name());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a stopped `tapir up` left behind.
pub struct Stopped {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Send SIGTERM to a `tapir up` this test started (`ip netns exec` execs
/// tapir in place, so the child's PID is tapir's), wait up to 10 s for it
/// to exit, and collect its output. Kills it and panics if it does not.
pub fn stop_up(child: &mut Child) -> Stopped {
    stop_up_with(child, nix::sys::signal::Signal::SIGTERM)
}

/// [`stop_up`] with another signal.
pub fn stop_up_with(child: &mut Child, signal: nix::sys::signal::Signal) -> Stopped {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).expect("signal tapir up");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for tapir up") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tapir up did not exit after {signal:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    Stopped {
        status,
        stdout,
        stderr,
    }
}
