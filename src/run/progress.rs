//! The progress line: every few seconds of the run phase, one line on stderr saying where the
//! run stands (`--progress`, or by default when stderr is a terminal). Read from the shards'
//! tallies under their locks, without copying them whole.

use std::time::Duration;

pub use crate::tally::Glance;

/// How often the line is printed.
pub const EVERY: Duration = Duration::from_secs(5);

/// One line: `elapsed/duration`, connected devices, request outcomes so far, the answer rate
/// since the previous line, and the p99 round trip so far.
pub fn line(
    now: &Glance,
    before: &Glance,
    since_before: Duration,
    elapsed: Duration,
    duration: Duration,
    devices: usize,
) -> String {
    let (q, earlier) = (&now.requests, before.requests.matched);
    let rate = q.matched.saturating_sub(earlier) as f64 / since_before.as_secs_f64().max(0.001);
    let p99 = if now.latency.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.2} ms", now.latency.latency().p99)
    };
    format!(
        "progress  {:.0}s/{:.0}s  connected {}/{devices}  sent {}  matched {}  late {}  timed out {}  failed {}  {rate:.1} answers/s  p99 {p99}",
        elapsed.as_secs_f64(),
        duration.as_secs_f64(),
        now.connected.max(0),
        q.sent,
        q.matched,
        q.late,
        q.timed_out,
        q.failed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::ShardTally;

    #[test]
    fn the_line_adds_up_the_shards_and_rates_the_answers_since_the_last_line() {
        let shards = [ShardTally::default(), ShardTally::default()];
        for (i, shard) in shards.iter().enumerate() {
            let mut t = shard.lock();
            t.requests.sent = 10;
            t.requests.matched = 8 + i as u64;
            t.requests.timed_out = 1;
            t.timeline.at(Duration::ZERO).connected += 3;
            t.timeline.at(Duration::from_secs(4)).connected -= i as i64;
            t.latency.record(Duration::from_millis(4));
        }
        let mut before = Glance::default();
        before.requests.matched = 7;
        let now = Glance::of(&shards);
        let text = line(
            &now,
            &before,
            Duration::from_secs(5),
            Duration::from_secs(12),
            Duration::from_secs(60),
            6,
        );
        assert_eq!(
            text,
            "progress  12s/60s  connected 5/6  sent 20  matched 17  late 0  timed out 2  failed 0  2.0 answers/s  p99 4.00 ms"
        );
        let empty = line(
            &Glance::default(),
            &Glance::default(),
            EVERY,
            EVERY,
            EVERY,
            1,
        );
        assert!(empty.ends_with("0.0 answers/s  p99 -"), "{empty}");
    }
}
