//! The applications tapir hosts and the plumbing the `tapir` binary shares
//! between its commands: bringing a stack up on a device, and the services
//! (UDP echo now; HTTP, TCP echo, discard and chargen arrive with TCP).

pub mod net;
pub mod services;
