//! How fast one account may create groups and put members into them: two token buckets per
//! account, one counting groups created, one counting members added (by `CreateGroup`'s
//! initial members and by `ChangeMembers`). Without them one connection created 1,381 groups a
//! second, each with anyone in it (issue 15).
//!
//! A bucket holds up to `burst` tokens and refills at `per_minute` a minute. A request is let
//! through when its bucket is not empty and then takes its whole cost, which may leave the
//! bucket in debt: one legitimately large group still goes through at once, and its creator
//! waits afterwards until the bucket has refilled past zero. A refused request gets
//! `RATE_LIMITED` with `retry_after_ms`, the time until the bucket holds a token again.
//!
//! Memory is bounded: a full table first drops the buckets that have refilled completely
//! (they hold no information), then the fullest ones.
//!
//! Sans-IO: time comes in as `now`, so the unit tests drive it with a fake clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parley_protocol::ids::UserId;

/// Most accounts tracked at once.
const MAX_TRACKED: usize = 65_536;

/// One kind of operation's rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens a minute.
    pub per_minute: u32,
    /// Most tokens held.
    pub burst: u32,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets of one rate, per account.
#[derive(Debug)]
pub struct Buckets {
    rate: Rate,
    buckets: HashMap<UserId, Bucket>,
}

impl Buckets {
    /// No account has spent anything yet.
    pub fn new(rate: Rate) -> Buckets {
        Buckets {
            rate,
            buckets: HashMap::new(),
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let per_sec = f64::from(self.rate.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * per_sec).min(f64::from(self.rate.burst))
    }

    /// The tokens `user` holds now.
    fn tokens(&self, user: UserId, now: Instant) -> f64 {
        match self.buckets.get(&user) {
            Some(b) => self.refilled(*b, now),
            None => f64::from(self.rate.burst),
        }
    }

    /// Whether a request costing `cost` would pass now; otherwise how long until `user`'s
    /// bucket holds a token again. A cost of 0 always passes.
    pub fn check(&self, user: UserId, cost: u32, now: Instant) -> Result<(), Duration> {
        let tokens = self.tokens(user, now);
        if cost == 0 || tokens >= 1.0 {
            return Ok(());
        }
        let per_sec = f64::from(self.rate.per_minute.max(1)) / 60.0;
        let wait = Duration::from_secs_f64(((1.0 - tokens) / per_sec).min(86_400.0));
        Err(wait.max(Duration::from_millis(1)))
    }

    /// Takes `cost` tokens of `user`'s bucket if it is not empty (see [`Buckets::check`]).
    pub fn take(&mut self, user: UserId, cost: u32, now: Instant) -> Result<(), Duration> {
        self.check(user, cost, now)?;
        if cost == 0 {
            return Ok(());
        }
        let tokens = self.tokens(user, now);
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&user) {
            self.evict(now);
        }
        self.buckets.insert(
            user,
            Bucket {
                tokens: tokens - f64::from(cost),
                at: now,
            },
        );
        Ok(())
    }

    /// Drops the buckets that have refilled; if none has, the eighth with the most tokens.
    fn evict(&mut self, now: Instant) {
        let burst = f64::from(self.rate.burst);
        let before = self.buckets.len();
        let snapshot: Vec<(UserId, f64)> = self
            .buckets
            .iter()
            .map(|(u, b)| (*u, self.refilled(*b, now)))
            .collect();
        for (u, t) in &snapshot {
            if *t >= burst {
                self.buckets.remove(u);
            }
        }
        if self.buckets.len() < before {
            return;
        }
        let mut by_tokens = snapshot;
        by_tokens.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (u, _) in by_tokens.iter().take(before / 8 + 1) {
            self.buckets.remove(u);
        }
    }

    /// Accounts tracked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// The two buckets of group operations.
#[derive(Debug)]
pub struct GroupRate {
    creates: Buckets,
    adds: Buckets,
}

impl GroupRate {
    /// Groups created and members added, each at its rate.
    pub fn new(creates: Rate, adds: Rate) -> GroupRate {
        GroupRate {
            creates: Buckets::new(creates),
            adds: Buckets::new(adds),
        }
    }

    /// Charges `user` for creating `groups` groups and adding `members` members, both or
    /// neither; otherwise the longer of the waits.
    pub fn take(
        &mut self,
        user: UserId,
        groups: u32,
        members: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        match (
            self.creates.check(user, groups, now),
            self.adds.check(user, members, now),
        ) {
            (Ok(()), Ok(())) => {}
            (Err(a), Err(b)) => return Err(a.max(b)),
            (Err(w), _) | (_, Err(w)) => return Err(w),
        }
        self.creates.take(user, groups, now)?;
        self.adds.take(user, members, now)
    }
}

impl super::Core {
    /// Charges `user` for creating `groups` groups and adding `members` members:
    /// `RATE_LIMITED` with `retry_after_ms` when its bucket is empty.
    pub(crate) fn charge_group_ops(
        &self,
        user: UserId,
        groups: u32,
        members: usize,
    ) -> super::CoreResult<()> {
        let now = tokio::time::Instant::now().into_std();
        let members = u32::try_from(members).unwrap_or(u32::MAX);
        let mut rate = self.group_rate.lock().unwrap_or_else(|e| e.into_inner());
        rate.take(user, groups, members, now).map_err(|wait| {
            super::err(
                parley_protocol::ErrorCode::RateLimited,
                "too many groups created or members added; try again later",
            )
            .with_retry_after(wait)
        })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a fixed start instant; time then moves by hand
mod tests {
    use super::*;

    fn u(n: u64) -> UserId {
        UserId::try_from(n).unwrap()
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let mut b = Buckets::new(Rate {
            per_minute: 60,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            b.take(u(1), 1, t0).unwrap();
        }
        let wait = b.take(u(1), 1, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // Another account is not affected.
        b.take(u(2), 1, t0).unwrap();
        // A second later one token is back, and only one.
        let t1 = t0 + Duration::from_secs(1);
        b.take(u(1), 1, t1).unwrap();
        assert!(b.take(u(1), 1, t1).is_err());
    }

    #[test]
    fn a_large_cost_goes_through_once_then_waits_off_its_debt() {
        let mut b = Buckets::new(Rate {
            per_minute: 60,
            burst: 10,
        });
        let t0 = Instant::now();
        b.take(u(1), 100, t0).unwrap();
        let wait = b.take(u(1), 1, t0).unwrap_err();
        // 90 tokens of debt plus one: 91 s at one a second.
        assert!(wait >= Duration::from_secs(90) && wait <= Duration::from_secs(92));
        assert!(b.take(u(1), 1, t0 + Duration::from_secs(60)).is_err());
        b.take(u(1), 1, t0 + Duration::from_secs(92)).unwrap();
        // Nothing to add costs nothing.
        b.take(u(1), 0, t0).unwrap();
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut b = Buckets::new(Rate {
            per_minute: 1,
            burst: 5,
        });
        let t0 = Instant::now();
        for n in 1..=(MAX_TRACKED as u64 + 100) {
            b.take(u(n), 1, t0).unwrap();
        }
        assert!(b.len() <= MAX_TRACKED);
    }
}
