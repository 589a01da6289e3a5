//! Benchmark support code (none yet; see benches/).
