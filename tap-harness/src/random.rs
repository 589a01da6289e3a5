//! Seeds from the operating system's random source.
//!
//! The stack itself never reads one: given a [`Config`] it is deterministic,
//! which makes tests and `--seed` runs reproducible. A stack facing a real
//! network must not be predictable (RFC 6528: guessable ISNs let an
//! off-path attacker inject segments; RFC 6056: so do guessable ports), so
//! whatever builds one for real use passes its `Config` through
//! [`randomize_config`].

use std::io;
use tapir_stack::Config;

/// Fill `buf` from getrandom(2): the kernel's CSPRNG, which blocks only
/// until it is initialised early at boot.
pub fn os_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live mutable
        // slice that getrandom writes at most `rest.len()` bytes into.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(())
}

/// A random u64 from the operating system.
pub fn os_random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    os_random(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}

/// Make `config` unpredictable: a fresh `seed` (IP identifications,
/// ephemeral ports) and, independently of it, a fresh RFC 6528 ISN secret,
/// so that what the seed lets one observe says nothing about the ISNs.
pub fn randomize_config(config: &mut Config) -> io::Result<()> {
    config.seed = os_random_u64()?;
    // Zero means "derive from the seed"; draw again in that 2^-64 case.
    config.tcp.isn_secret = 0;
    while config.tcp.isn_secret == 0 {
        config.tcp.isn_secret = os_random_u64()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_stack::wire::{EthernetAddress, Ipv4Cidr};

    #[test]
    fn two_randomized_configs_differ() {
        let cidr = Ipv4Cidr::new(std::net::Ipv4Addr::new(10, 77, 0, 2), 24).unwrap();
        let mut a = Config::new(EthernetAddress::local_from_seed(1), cidr);
        let mut b = a.clone();
        randomize_config(&mut a).unwrap();
        randomize_config(&mut b).unwrap();
        assert_ne!(a.seed, b.seed);
        assert_ne!(a.tcp.isn_secret, b.tcp.isn_secret);
        assert_ne!(a.tcp.isn_secret, 0);
    }
}
