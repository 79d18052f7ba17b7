//! Seeded random streams, one per purpose, so that what one purpose draws never shifts another:
//! a reconnect (which draws a backoff) does not change every later fault draw of the same seed.
//!
//! Each stream is SplitMix64: 8 bytes of state, which matters at tens of thousands of devices,
//! and statistically sound for jitter, schedules and fault draws (it is what seeds
//! xoshiro generators).

use rand::RngCore;

/// What a stream is drawn for; each device has one stream per purpose.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// When to dial again.
    Backoff = 1,
    /// When a phone sends, a sensor reads.
    Pacing = 2,
    /// Faults drawn by probability, Will acks dropped on purpose, responders' `slow` delays.
    Faults = 3,
    /// Sensor readings and random payloads.
    Payloads = 4,
}

/// One stream: SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct Stream(u64);

impl Stream {
    /// The stream of `purpose` for device `index` of a fleet with `seed`: a function of the
    /// three only, so a run reproduces whatever the arbiters' interleaving.
    pub fn new(seed: u64, index: u32, purpose: Purpose) -> Self {
        let mut stream = Self(
            seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (purpose as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        // Mix the start once, so neighbouring devices do not begin on neighbouring states.
        stream.next_u64();
        stream
    }
}

impl RngCore for Stream {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A device's streams.
#[derive(Debug, Clone)]
pub struct Streams {
    pub backoff: Stream,
    pub pacing: Stream,
    pub faults: Stream,
    pub payloads: Stream,
}

impl Streams {
    pub fn new(seed: u64, index: u32) -> Self {
        Self {
            backoff: Stream::new(seed, index, Purpose::Backoff),
            pacing: Stream::new(seed, index, Purpose::Pacing),
            faults: Stream::new(seed, index, Purpose::Faults),
            payloads: Stream::new(seed, index, Purpose::Payloads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_reproduce_and_differ_by_seed_device_and_purpose() {
        let draw = |mut s: Stream| (0..4).map(|_| s.next_u64()).collect::<Vec<_>>();
        let a = draw(Stream::new(7, 3, Purpose::Faults));
        assert_eq!(a, draw(Stream::new(7, 3, Purpose::Faults)));
        assert_ne!(a, draw(Stream::new(8, 3, Purpose::Faults)));
        assert_ne!(a, draw(Stream::new(7, 4, Purpose::Faults)));
        assert_ne!(a, draw(Stream::new(7, 3, Purpose::Backoff)));
    }

    #[test]
    fn drawing_from_one_purpose_leaves_the_others_alone() {
        let mut quiet = Streams::new(1, 0);
        let mut busy = Streams::new(1, 0);
        for _ in 0..100 {
            busy.backoff.next_u64();
        }
        assert_eq!(quiet.faults.next_u64(), busy.faults.next_u64());
    }

    #[test]
    fn uniform_enough_for_jitter() {
        let mut s = Stream::new(0, 0, Purpose::Pacing);
        let draws: Vec<f64> = (0..10_000).map(|_| s.random_range(0.0..1.0)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let low = draws.iter().filter(|d| **d < 0.1).count();
        assert!((800..1200).contains(&low), "{low}");
    }
}
