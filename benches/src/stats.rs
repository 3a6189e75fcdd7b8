//! Latency histograms (hdrhistogram), sequence bookkeeping, and the summary of a run.

use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Highest latency recorded, nanoseconds (longer ones are clamped).
const MAX_NS: u64 = 120_000_000_000;

/// An empty histogram of nanoseconds (1 ns to 120 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    // Bounds are constants that satisfy hdrhistogram's preconditions.
    Histogram::new_with_bounds(1, MAX_NS, 3).unwrap_or_else(|_| unreachable!())
}

/// A latency histogram shared by many tasks. Each task records into a small local buffer and
/// merges it under the lock now and then, so thousands of connections need only one histogram.
#[derive(Clone, Debug)]
pub struct Latency {
    shared: Arc<Mutex<Histogram<u64>>>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            shared: Arc::new(Mutex::new(histogram())),
        }
    }
}

impl Latency {
    /// A recorder for one task.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            shared: self.shared.clone(),
            local: Vec::new(),
        }
    }

    /// Summary: count and percentiles in milliseconds.
    pub fn summary(&self) -> Value {
        let h = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        summarize(&h)
    }

    /// Merges a histogram in.
    pub fn add(&self, other: &Histogram<u64>) {
        let mut h = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let _ = h.add(other);
    }

    /// A copy of the histogram.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e6 * 1000.0).round() / 1000.0
}

/// Count, mean and p50/p99/p99.9/max of a histogram of nanoseconds, in milliseconds.
pub fn summarize(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": ms(h.mean() as u64),
    })
}

/// A task's buffer in front of a shared [`Latency`].
#[derive(Debug)]
pub struct Recorder {
    shared: Arc<Mutex<Histogram<u64>>>,
    local: Vec<u64>,
}

impl Recorder {
    /// Records one latency in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.local.push(ns.clamp(1, MAX_NS));
        if self.local.len() >= 4096 {
            self.flush();
        }
    }

    /// Merges the buffer into the shared histogram.
    pub fn flush(&mut self) {
        if self.local.is_empty() {
            return;
        }
        let mut h = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        for v in self.local.drain(..) {
            h.saturating_record(v);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A set of sequence numbers (a growable bitset), counting duplicates.
#[derive(Clone, Debug, Default)]
pub struct SeqSet {
    bits: Vec<u64>,
    count: u64,
    duplicates: u64,
}

impl SeqSet {
    /// Adds `seq`; false (and a duplicate counted) if it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        if self.bits[w] & (1 << b) != 0 {
            self.duplicates += 1;
            return false;
        }
        self.bits[w] |= 1 << b;
        self.count += 1;
        true
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        self.bits.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    /// Distinct members.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Inserts that were already present.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Largest member (0 if empty).
    pub fn max(&self) -> u64 {
        self.bits
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map_or(0, |(i, w)| {
                i as u64 * 64 + 63 - u64::from(w.leading_zeros())
            })
    }

    /// Largest `n` with `1..=n` all present.
    pub fn contiguous(&self) -> u64 {
        let mut n = 0;
        while self.contains(n + 1) {
            n += 1;
        }
        n
    }

    /// Members of `self` missing from `other`.
    pub fn missing_from(&self, other: &SeqSet) -> u64 {
        self.bits
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let o = other.bits.get(i).copied().unwrap_or(0);
                u64::from((w & !o).count_ones())
            })
            .sum()
    }

    /// Adds every member of `other`; returns how many were already present.
    pub fn union_with(&mut self, other: &SeqSet) -> u64 {
        if other.bits.len() > self.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        let mut overlap = 0;
        for (i, o) in other.bits.iter().enumerate() {
            overlap += u64::from((self.bits[i] & o).count_ones());
            self.count += u64::from((o & !self.bits[i]).count_ones());
            self.bits[i] |= o;
        }
        overlap
    }

    /// True if the set is exactly `1..=len`: gapless from 1.
    pub fn is_gapless(&self) -> bool {
        !self.contains(0) && self.max() == self.count
    }

    /// The set `1..=n` minus `self`.
    pub fn complement_upto(&self, n: u64) -> SeqSet {
        let mut out = SeqSet::default();
        for s in 1..=n {
            if !self.contains(s) {
                out.insert(s);
            }
        }
        out
    }
}

/// Prints a JSON report as an indented human-readable summary.
pub fn print_human(v: &Value) {
    fn walk(v: &Value, indent: usize, out: &mut String) {
        if let Value::Object(map) = v {
            for (k, val) in map {
                match val {
                    Value::Object(_) => {
                        out.push_str(&format!("{:indent$}{k}:\n", ""));
                        walk(val, indent + 2, out);
                    }
                    Value::Number(n) if n.is_f64() => {
                        let f = n.as_f64().unwrap_or(0.0);
                        let s = if f.abs() >= 100.0 {
                            format!("{f:.0}")
                        } else {
                            format!("{f:.3}")
                        };
                        out.push_str(&format!("{:indent$}{k}: {s}\n", ""));
                    }
                    other => out.push_str(&format!("{:indent$}{k}: {other}\n", "")),
                }
            }
        }
    }
    let mut out = String::new();
    walk(v, 0, &mut out);
    print!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqset_counts_and_checks_gaps() {
        let mut s = SeqSet::default();
        for q in [1, 2, 3, 5] {
            assert!(s.insert(q));
        }
        assert!(!s.insert(3));
        assert_eq!(
            (s.len(), s.duplicates(), s.max(), s.contiguous()),
            (4, 1, 5, 3)
        );
        assert!(!s.is_gapless());
        s.insert(4);
        assert!(s.is_gapless());
        let mut got = SeqSet::default();
        got.insert(2);
        assert_eq!(s.missing_from(&got), 4);
        assert_eq!(s.complement_upto(7).len(), 2);
        assert_eq!(got.union_with(&s), 1);
        assert_eq!(got.len(), 5);
    }
}
