//! Durations recorded for percentiles: an HDR histogram in microseconds.

use std::time::Duration;

use super::Latency;

/// 1 µs to 1 hour at 3 significant digits: a few tens of KiB, however many durations.
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
    fn empty_is_zero_and_tiny_counts_as_a_microsecond() {
        let mut h = DurationHistogram::default();
        assert_eq!(h.latency(), Latency::default());
        h.record(Duration::ZERO);
        assert!((h.latency().max - 0.001).abs() < 1e-9);
    }
}
