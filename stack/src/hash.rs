//! A keyed hash for the tables the stack looks up per packet.
//!
//! Their keys (addresses and ports) come off the wire, so a peer that could
//! predict the hash could fill one bucket and make every lookup slow: the
//! hash must be keyed with a secret. std's SipHash is, but costs more than
//! the rest of a lookup; aHash (its portable fallback, a folded multiply)
//! is keyed too and a few times cheaper. The stack reads no randomness
//! itself: the key is derived from `Config::seed`, which a stack facing a
//! real network takes from a random source, as for the ISN secret.

use std::collections::HashMap;

/// The hasher of the stack's keyed tables.
pub(crate) type Keyed = ahash::RandomState;

/// A map keyed with [`Keyed`].
pub(crate) type KeyedMap<K, V> = HashMap<K, V, Keyed>;

/// The hasher for an interface whose configuration has `seed`: its own
/// stream of the seed (SplitMix64 finalizer over distinct counters), so it
/// takes nothing from the interface's random sequence.
pub(crate) fn keyed(seed: u64) -> Keyed {
    let k = |i: u64| {
        let mut z = (seed ^ 0x6b65_7965_645f_6861).wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    ahash::RandomState::with_seeds(k(1), k(2), k(3), k(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_keys_the_hash() {
        let key = (80u16, 0x0a4d_0001u32, 40000u16);
        assert_eq!(keyed(1).hash_one(key), keyed(1).hash_one(key));
        assert_ne!(keyed(1).hash_one(key), keyed(2).hash_one(key));
    }
}
