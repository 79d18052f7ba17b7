//! The sensor's signal: readings from a seeded random walk or range (publishing them and
//! answering `get` is in `respond`).

use rand::Rng;

use crate::fleet::Signal;

/// A seeded signal generator: random walk or uniform range.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalGen {
    signal: Signal,
    last: f64,
}

impl SignalGen {
    pub fn new(signal: &Signal) -> Self {
        let last = match *signal {
            Signal::Walk { start, .. } => start,
            Signal::Range { min, max } => (min + max) / 2.0,
        };
        Self {
            signal: signal.clone(),
            last,
        }
    }

    pub fn last(&self) -> f64 {
        self.last
    }

    pub fn next(&mut self, rng: &mut impl Rng) -> f64 {
        self.last = match self.signal {
            Signal::Walk { step, min, max, .. } => {
                let delta = if step > 0.0 {
                    rng.random_range(-step..=step)
                } else {
                    0.0
                };
                (self.last + delta).clamp(min, max)
            }
            Signal::Range { min, max } if max > min => rng.random_range(min..=max),
            Signal::Range { min, .. } => min,
        };
        // Two decimals: what a real sensor reports, and stable across platforms in the JSON.
        self.last = (self.last * 100.0).round() / 100.0;
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn walk_stays_within_bounds_and_moves_at_most_one_step() {
        let signal = Signal::Walk {
            start: 20.0,
            step: 0.5,
            min: 19.0,
            max: 21.0,
        };
        let mut generator = SignalGen::new(&signal);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut last = 20.0;
        for _ in 0..1000 {
            let v = generator.next(&mut rng);
            assert!((19.0..=21.0).contains(&v), "{v}");
            assert!((v - last).abs() <= 0.5 + 0.01, "{last} -> {v}");
            last = v;
        }
    }

    #[test]
    fn range_stays_within_bounds() {
        let mut generator = SignalGen::new(&Signal::Range {
            min: 0.0,
            max: 100.0,
        });
        let mut rng = SmallRng::seed_from_u64(1);
        let values: Vec<f64> = (0..500).map(|_| generator.next(&mut rng)).collect();
        assert!(values.iter().all(|v| (0.0..=100.0).contains(v)));
        assert!(values.iter().any(|v| *v < 25.0) && values.iter().any(|v| *v > 75.0));
    }

    #[test]
    fn same_seed_same_readings() {
        let signal = Signal::Walk {
            start: 20.0,
            step: 1.0,
            min: 0.0,
            max: 40.0,
        };
        let run = |seed| {
            let mut g = SignalGen::new(&signal);
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..50).map(|_| g.next(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
