//! Brute-force throttling of password attempts: failed attempts are counted per source (a
//! network address) and per (account, source), and each count past its free allowance makes
//! the next attempt wait twice as long as the one before.
//!
//! Why two counts: the per-source count slows down one address guessing at many accounts; the
//! per-(account, source) count slows down one address guessing at one account, without touching
//! anybody else's attempts on that account. So an account under attack stays open to its owner
//! from another address, and an attacker cannot lock anyone out by failing on purpose. A
//! successful login clears the (account, source) count; it does not clear the source's count
//! (an attacker with one account of its own would otherwise reset it between guesses).
//!
//! Sources: an IPv4 address, an IPv6 /64 (one subscriber usually holds a whole /64, so its
//! 2^64 addresses count as one), the user for a logged-in password change, or "unknown" for
//! in-process callers. Behind a reverse proxy every client has the proxy's address: the
//! proxy should do its own throttling (docs/security.md).
//!
//! Memory is bounded: each table holds at most its configured number of entries; an entry is
//! forgotten `forget_after` after its last failure, and a full table first drops what it may
//! forget, then the entries with the fewest failures (an address spraying new names or new
//! addresses evicts its own one-failure entries, not the throttled ones). Keys are hashed with
//! a per-process random key (SipHash), so nobody can aim at one hash bucket.
//!
//! The table is sans-IO: time comes in as `now`, so the unit tests drive it with a fake clock.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parley_protocol::ids::UserId;

/// Where a password attempt comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A network address: an IPv4 address or an IPv6 /64 (see [`Source::from_ip`]).
    Ip(IpAddr),
    /// A logged-in user changing its password (the attempt runs on its session's identity).
    User(UserId),
    /// An in-process caller that named no address; all such callers share this one source.
    Unknown,
}

impl Source {
    /// The source of a connection from `peer`, if known ([`Source::from_ip`]); else
    /// [`Source::Unknown`].
    pub fn of_peer(peer: Option<std::net::SocketAddr>) -> Source {
        peer.map_or(Source::Unknown, |p| Source::from_ip(p.ip()))
    }

    /// The source of a connection from `ip`: IPv4-mapped IPv6 addresses become IPv4, and an
    /// IPv6 address counts as its /64.
    pub fn from_ip(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::Ip(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Source::Ip(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ip(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Source::Ip(ip) => write!(f, "{ip}"),
            Source::User(u) => write!(f, "user {}", u.get()),
            Source::Unknown => f.write_str("unknown source"),
        }
    }
}

/// The throttle's settings (from `[login]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures from one source (any accounts) before it has to wait.
    pub source_free: u32,
    /// Failures from one source on one account before that pair has to wait.
    pub account_free: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A count is forgotten this long after its last failure (at least `max`).
    pub forget_after: Duration,
    /// Most sources tracked.
    pub max_sources: usize,
    /// Most (account, source) pairs tracked.
    pub max_pairs: usize,
}

/// Failed attempts of one key.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// The wait after `self.count` failures with `free` of them free.
    fn wait(&self, free: u32, s: &ThrottleSettings) -> Duration {
        if self.count < free.max(1) {
            return Duration::ZERO;
        }
        let doublings = (self.count - free.max(1)).min(31);
        s.base.saturating_mul(1u32 << doublings).min(s.max)
    }

    /// How long from `now` until the next attempt is allowed.
    fn remaining(&self, free: u32, s: &ThrottleSettings, now: Instant) -> Duration {
        (self.last + self.wait(free, s)).saturating_duration_since(now)
    }
}

/// One table of counts, bounded.
#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Failures>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(cap: usize) -> Self {
        Table {
            entries: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Counts a failure of `key` and returns its new state.
    fn fail(&mut self, key: K, forget_after: Duration, now: Instant) -> Failures {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.make_room(forget_after, now);
        }
        let f = self.entries.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        // A count past its forget time starts over.
        if now.saturating_duration_since(f.last) >= forget_after {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        *f
    }

    /// Drops what may be forgotten; if that is not enough, the eighth of the table with the
    /// fewest failures (oldest first among equals), so the next inserts need no scan.
    fn make_room(&mut self, forget_after: Duration, now: Instant) {
        self.entries
            .retain(|_, f| now.saturating_duration_since(f.last) < forget_after);
        if self.entries.len() < self.cap {
            return;
        }
        let mut ranked: Vec<(u32, Instant, K)> = self
            .entries
            .iter()
            .map(|(k, f)| (f.count, f.last, k.clone()))
            .collect();
        let drop = (self.cap / 8).max(1).min(ranked.len());
        ranked.select_nth_unstable_by(drop - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, k) in ranked.into_iter().take(drop) {
            self.entries.remove(&k);
        }
    }

    fn get(&self, key: &K, forget_after: Duration, now: Instant) -> Option<Failures> {
        self.entries
            .get(key)
            .filter(|f| now.saturating_duration_since(f.last) < forget_after)
            .copied()
    }
}

/// The failure counts of password attempts.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    sources: Table<Source>,
    pairs: Table<(u64, Source)>,
    /// Keys account names (so a pair is a fixed-size entry, whatever the name's length).
    hasher: RandomState,
}

impl Throttle {
    /// An empty table.
    pub fn new(settings: ThrottleSettings) -> Throttle {
        let settings = ThrottleSettings {
            forget_after: settings.forget_after.max(settings.max),
            ..settings
        };
        Throttle {
            sources: Table::new(settings.max_sources),
            pairs: Table::new(settings.max_pairs),
            settings,
            hasher: RandomState::new(),
        }
    }

    fn account_key(&self, account: &str) -> u64 {
        self.hasher.hash_one(account)
    }

    /// How long `source` must still wait before a password attempt on `account` (`None`: it
    /// may try now).
    pub fn check(&self, source: Source, account: &str, now: Instant) -> Option<Duration> {
        let s = &self.settings;
        let by_source = self
            .sources
            .get(&source, s.forget_after, now)
            .map_or(Duration::ZERO, |f| f.remaining(s.source_free, s, now));
        let pair = (self.account_key(account), source);
        let by_pair = self
            .pairs
            .get(&pair, s.forget_after, now)
            .map_or(Duration::ZERO, |f| f.remaining(s.account_free, s, now));
        let wait = by_source.max(by_pair);
        (!wait.is_zero()).then_some(wait)
    }

    /// Counts a failed attempt of `source` on `account`; returns the wait that now applies
    /// before its next attempt, if any.
    pub fn failed(&mut self, source: Source, account: &str, now: Instant) -> Option<Duration> {
        let s = self.settings;
        let by_source = self
            .sources
            .fail(source, s.forget_after, now)
            .wait(s.source_free, &s);
        let pair = (self.account_key(account), source);
        let by_pair = self
            .pairs
            .fail(pair, s.forget_after, now)
            .wait(s.account_free, &s);
        let wait = by_source.max(by_pair);
        (!wait.is_zero()).then_some(wait)
    }

    /// A successful login of `source` on `account`: that pair's failures are forgotten.
    pub fn succeeded(&mut self, source: Source, account: &str) {
        let pair = (self.account_key(account), source);
        self.pairs.entries.remove(&pair);
    }

    /// Sources and (account, source) pairs tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.entries.len(), self.pairs.entries.len())
    }
}

#[cfg(test)]
// The table takes time as an argument; any starting instant will do for the fake clock.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            source_free: 10,
            account_free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            forget_after: Duration::from_secs(3600),
            max_sources: 1000,
            max_pairs: 1000,
        }
    }

    fn ip(last: u8) -> Source {
        Source::from_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn an_account_pair_waits_twice_as_long_after_each_failure_past_its_allowance() {
        let mut t = Throttle::new(settings());
        let t0 = Instant::now();
        assert_eq!(t.failed(ip(1), "alice", t0), None);
        assert_eq!(t.failed(ip(1), "alice", t0), None);
        assert_eq!(t.check(ip(1), "alice", t0), None);
        // The third failure is the last free one: from now on, waits.
        assert_eq!(t.failed(ip(1), "alice", t0), Some(Duration::from_secs(1)));
        assert_eq!(
            t.check(ip(1), "alice", t0 + Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.check(ip(1), "alice", t1), None);
        assert_eq!(t.failed(ip(1), "alice", t1), Some(Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(t.failed(ip(1), "alice", t2), Some(Duration::from_secs(4)));
        // Capped at the maximum.
        let mut now = t2;
        for _ in 0..20 {
            now += Duration::from_secs(60);
            t.failed(ip(1), "alice", now);
        }
        assert_eq!(t.check(ip(1), "alice", now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn an_attacked_account_stays_open_to_other_sources_and_success_clears_the_pair() {
        let mut t = Throttle::new(settings());
        let t0 = Instant::now();
        for _ in 0..5 {
            t.failed(ip(1), "alice", t0);
        }
        assert!(t.check(ip(1), "alice", t0).is_some());
        // The owner, elsewhere: not throttled. The attacker on another account: not by this.
        assert_eq!(t.check(ip(2), "alice", t0), None);
        assert_eq!(t.check(ip(1), "bob", t0), None);
        // Once the wait is over, a success from the attacked pair clears it.
        let later = t0 + Duration::from_secs(60);
        t.succeeded(ip(1), "alice");
        assert_eq!(t.check(ip(1), "alice", later), None);
        assert_eq!(t.failed(ip(1), "alice", later), None);
    }

    #[test]
    fn a_source_guessing_many_accounts_waits_and_success_does_not_clear_it() {
        let mut t = Throttle::new(settings());
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(t.failed(ip(1), &format!("user{i}"), t0), None);
        }
        assert_eq!(t.failed(ip(1), "user9", t0), Some(Duration::from_secs(1)));
        assert!(t.check(ip(1), "somebody-else", t0).is_some());
        t.succeeded(ip(1), "own-account");
        assert!(t.check(ip(1), "somebody-else", t0).is_some());
        assert_eq!(t.check(ip(2), "somebody-else", t0), None);
    }

    #[test]
    fn counts_are_forgotten_after_the_quiet_period() {
        let mut t = Throttle::new(settings());
        let t0 = Instant::now();
        for _ in 0..10 {
            t.failed(ip(1), "alice", t0);
        }
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(t.check(ip(1), "alice", later), None);
        // And a new failure starts from one.
        assert_eq!(t.failed(ip(1), "alice", later), None);
    }

    #[test]
    fn tables_stay_bounded_and_keep_the_throttled_entries() {
        let mut t = Throttle::new(ThrottleSettings {
            max_sources: 64,
            max_pairs: 64,
            source_free: 1000,
            ..settings()
        });
        let t0 = Instant::now();
        // One attacker throttled on alice.
        for _ in 0..5 {
            t.failed(ip(1), "alice", t0);
        }
        // Then a spray of fresh addresses and fresh names.
        for i in 0..10_000u32 {
            let source = Source::from_ip(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)));
            t.failed(
                source,
                &format!("name{i}"),
                t0 + Duration::from_millis(i.into()),
            );
            let (sources, pairs) = t.tracked();
            assert!(
                sources <= 64 && pairs <= 64,
                "{sources} sources, {pairs} pairs"
            );
        }
        assert!(
            t.check(ip(1), "alice", t0).is_some(),
            "the throttled pair was evicted"
        );
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_is_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::from_ip(a.into()), Source::from_ip(b.into()));
        assert_ne!(Source::from_ip(a.into()), Source::from_ip(c.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Source::from_ip(mapped.into()), ip(1));
        assert_eq!(Source::from_ip(a.into()).to_string(), "2001:db8:1:2::/64");
    }
}
