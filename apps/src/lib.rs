//! The applications tapir hosts and the plumbing the `tapir` binary shares
//! between its commands: bringing a stack up on a device, the services
//! (UDP echo, TCP echo, discard, chargen), the HTTP/1.1 server and client,
//! and the `get` and `tput` client tools.

pub mod get;
pub mod http;
pub mod impair;
pub mod iperf3;
pub mod net;
pub mod plot;
pub mod progress;
pub mod services;
pub mod tput;
pub mod trace;
