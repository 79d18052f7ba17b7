//! Durations recorded for percentiles: an HDR histogram in microseconds.

use std::time::Duration;

use super::Latency;

/// 1 µs to 1 hour at 3 significant digits: a few tens of KiB, however many durations.
///
/// Serialised as its non-empty buckets, `[[microseconds, count], ...]`, and merged by adding
/// histograms (`Histogram::add`): percentiles of merged shards come from the merged counts,
/// never from averaging percentiles.
#[derive(Clone, Debug, PartialEq)]
pub struct DurationHistogram(hdrhistogram::Histogram<u64>);

impl Default for DurationHistogram {
    fn default() -> Self {
        Self(
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant histogram bounds are valid"),
        )
    }
}

impl DurationHistogram {
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // Beyond an hour is clamped; below a microsecond counts as one.
        self.0.saturating_record(us.max(1));
    }

    /// Adds `other`'s counts: the histogram of both together.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so adding cannot fail; values beyond are clamped anyway.
        let _ = self.0.add(&other.0);
    }

    /// How many recorded round trips took at most `d`.
    pub fn count_up_to(&self, d: Duration) -> u64 {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.count_between(0, us)
    }

    /// All recorded round trips added up (from the histogram's buckets: within its 3
    /// significant digits).
    pub fn sum(&self) -> Duration {
        let us: u64 = self
            .0
            .iter_recorded()
            .map(|v| v.value_iterated_to().saturating_mul(v.count_at_value()))
            .fold(0, u64::saturating_add);
        Duration::from_micros(us)
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// p50/p90/p99/max in milliseconds; all zero when nothing was recorded.
    pub fn latency(&self) -> Latency {
        let h = &self.0;
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

impl serde::Serialize for DurationHistogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(None)?;
        for bucket in self.0.iter_recorded() {
            seq.serialize_element(&(bucket.value_iterated_to(), bucket.count_at_value()))?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for DurationHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let buckets = Vec::<(u64, u64)>::deserialize(deserializer)?;
        let mut histogram = Self::default();
        for (us, count) in buckets {
            histogram.0.saturating_record_n(us.max(1), count);
        }
        Ok(histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = DurationHistogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let l = h.latency();
        assert!((l.p50 - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p99 - 99.0).abs() < 0.1, "{l:?}");
        assert!((l.max - 100.0).abs() < 0.1, "{l:?}");
    }

    #[test]
    fn merged_histograms_give_the_percentiles_of_all_values_and_survive_serde() {
        let mut low = DurationHistogram::default();
        let mut high = DurationHistogram::default();
        let mut all = DurationHistogram::default();
        for ms in 1..=50 {
            low.record(Duration::from_millis(ms));
            all.record(Duration::from_millis(ms));
        }
        for ms in 51..=100 {
            high.record(Duration::from_millis(ms));
            all.record(Duration::from_millis(ms));
        }
        let json = serde_json::to_string(&high).unwrap();
        let high: DurationHistogram = serde_json::from_str(&json).unwrap();
        low.merge(&high);
        assert_eq!(low.latency(), all.latency());
        assert_eq!(low.len(), 100);
    }

    #[test]
    fn empty_is_zero_and_tiny_counts_as_a_microsecond() {
        let mut h = DurationHistogram::default();
        assert_eq!(h.latency(), Latency::default());
        h.record(Duration::ZERO);
        assert!((h.latency().max - 0.001).abs() < 1e-9);
    }
}
