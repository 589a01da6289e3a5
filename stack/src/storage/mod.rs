//! Socket buffers: bounded, allocation-free on the hot path.
//!
//! Every queue here has a limit fixed at construction and refuses data past
//! it instead of growing, so an untrusted peer cannot make the stack hold more
//! than its configuration allows.

pub mod assembler;
pub mod packet_queue;
pub mod ring;

pub use assembler::{Assembler, TooManyRanges};
pub use packet_queue::{Full, PacketQueue};
pub use ring::RingBuffer;
