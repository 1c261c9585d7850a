//! Token-bucket rate limits by key, shared by every Vouch server: each key
//! has `burst` tokens, refilled at `rate` per second; a request takes as
//! many as it costs, or none and is refused. Tables are bounded: past
//! 100,000 keys, refilled buckets (as good as new) are forgotten, and if
//! that is not enough, all are.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Keys remembered per bucket table before refilled ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

/// Token buckets by key.
pub struct Buckets<K> {
    rate: f64,
    burst: f64,
    table: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: std::hash::Hash + Eq> Buckets<K> {
    /// Buckets refilled at `rate`/s (0: no limit) up to `burst`.
    pub fn new(rate: f64, burst: f64) -> Buckets<K> {
        Buckets {
            rate,
            burst: burst.max(1.0),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens from `key`'s bucket; false if there are not enough
    /// (then none are taken).
    pub fn take(&self, key: K, n: f64) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let Ok(mut m) = self.table.lock() else {
            return true;
        };
        let now = Instant::now();
        if m.len() > MAX_BUCKETS {
            let (rate, burst) = (self.rate, self.burst);
            m.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
            if m.len() > MAX_BUCKETS {
                m.clear();
            }
        }
        let (tokens, at) = m.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens < n {
            return false;
        }
        *tokens -= n;
        true
    }
}

/// The rate-limit bucket of an address: IPv4 addresses (also when mapped
/// into IPv6) one each, IPv6 one per /64, since one host usually holds a
/// whole /64 and could otherwise take a fresh bucket per request.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_buckets_are_per_ipv4_address_and_per_ipv6_64() {
        let k = |s: &str| rate_key(s.parse().unwrap());
        assert_eq!(k("192.0.2.1"), k("::ffff:192.0.2.1"));
        assert_ne!(k("192.0.2.1"), k("192.0.2.2"));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:bbbb::2"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }

    #[test]
    fn buckets_refuse_beyond_the_burst_and_take_nothing_then() {
        let b = Buckets::new(0.001, 3.0);
        assert!(b.take("a", 2.0));
        assert!(!b.take("a", 2.0), "one token left");
        assert!(b.take("a", 1.0), "the refused request took nothing");
        assert!(b.take("b", 3.0), "keys are separate");
        assert!(Buckets::new(0.0, 1.0).take("x", 1e9), "rate 0 is off");
    }
}
