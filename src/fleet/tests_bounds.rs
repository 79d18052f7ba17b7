//! Tests of the upper bounds that keep a valid fleet runnable: every duration within
//! `MAX_DURATION` (or its protocol bound), signal numbers within `MAX_SIGNAL`, and the fault
//! schedule within `MAX_INJECTIONS`.

use std::time::Duration;

use super::test_support::{assert_each_problem, fleet, problems, with_faults};
use super::*;

const OVER: &str = "at most 30days, got `31days`";

/// A fleet of one device group, written on line 4.
fn with_group(group: &str) -> String {
    format!("name: t\nduration: 10s\ndevices:\n  - {group}\n")
}

#[test]
fn every_duration_field_is_bounded_by_30_days() {
    let top =
        |field: &str| format!("name: t\n{field}: 31days\ndevices:\n  - {{kind: light, id: l}}\n");
    for field in ["duration", "will_ack_timeout"] {
        let p = problems(&top(field));
        assert!(
            p.iter()
                .any(|p| p.starts_with("2:") && p.contains(field) && p.contains(OVER)),
            "{field}: {p:#?}"
        );
    }
    assert_each_problem(
        with_group,
        &[
            (
                "{kind: light, id: l, delay: 31days}",
                "devices[0].delay:",
                OVER,
            ),
            (
                "{kind: sensor, id: s, every: 31days}",
                "devices[0].every:",
                OVER,
            ),
            (
                "{kind: light, id: l, consume_wills: {topics: a, ack_delay: 31days}}",
                "devices[0].consume_wills.ack_delay:",
                OVER,
            ),
        ],
    );
    let phone = |field: &str| {
        format!(
            "name: t\ndevices:\n  - {{kind: light, id: l}}\n  - {{kind: phone, id: p, targets: [l], {field}: 31days}}\n"
        )
    };
    for field in ["every", "jitter", "timeout"] {
        let p = problems(&phone(field));
        assert!(
            p.iter()
                .any(|p| p.contains(&format!("devices[1].{field}:")) && p.contains(OVER)),
            "{field}: {p:#?}"
        );
    }
    assert_each_problem(
        with_faults,
        &[
            (
                "  - { kind: reset, target: lamp, at: 31days }\n",
                "faults[0].at:",
                OVER,
            ),
            (
                "  - { kind: reset, target: lamp, every: 31days }\n",
                "faults[0].every:",
                OVER,
            ),
            (
                "  - { kind: kill, target: lamp, at: 1s, down_for: 31days }\n",
                "faults[0].down_for:",
                OVER,
            ),
            (
                "  - { kind: slow, target: lamp, at: 1s, delay: 1s..31days }\n",
                "faults[0].delay:",
                "delay must be at most 30days, got `31days`",
            ),
            (
                "  - { kind: latency, target: lamp, at: 1s, lasts: 31days }\n",
                "faults[0].lasts:",
                OVER,
            ),
            (
                "  - { kind: latency, target: lamp, at: 1s, latency: 31days }\n",
                "faults[0].latency:",
                OVER,
            ),
            (
                "  - { kind: latency, target: lamp, at: 1s, jitter: 31days }\n",
                "faults[0].jitter:",
                OVER,
            ),
            (
                "  - { kind: slicer, target: lamp, at: 1s, slice_delay: 31days }\n",
                "faults[0].slice_delay:",
                OVER,
            ),
            (
                "  - { kind: withhold_acks, target: lamp, at: 1s, lasts: 31days }\n",
                "faults[0].lasts:",
                OVER,
            ),
            // Far past what a clock can add: refused, not a panic at run time.
            (
                "  - { kind: kill, target: lamp, at: 1s, down_for: 500000000000years }\n",
                "faults[0].down_for:",
                "at most 30days",
            ),
        ],
    );
}

#[test]
fn thirty_days_is_accepted_everywhere_and_protocol_intervals_keep_their_own_bound() {
    let f = fleet(
        "name: t
duration: 30days
will_ack_timeout: 30days
devices:
  - kind: light
    id: lamp
    delay: 30days
    keepalive: 65535s
    session_expiry: 4294967295s
    will: { delay: 4294967295s, message_expiry: 4294967295s }
  - kind: phone
    id: phone
    targets: [lamp]
    every: 30days
    jitter: 29days
    timeout: 30days
    consume_wills: { topics: status/+, ack_delay: 30days }
faults:
  - { kind: slow, target: lamp, at: 0s, delay: 30days..30days }
  - { kind: latency, target: phone, every: 29days, lasts: 30days, latency: 30days, jitter: 30days }
  - { kind: slicer, target: phone, at: 1s, slice_delay: 30days }
",
    );
    let month = Duration::from_secs(30 * 24 * 3600);
    assert_eq!(f.duration, month);
    assert_eq!(f.will_ack_timeout, month);
    assert_eq!(MAX_DURATION, month);
    assert_eq!(f.devices[0].connection.session_expiry, u32::MAX);
    assert_eq!(f.faults[1].params.latency, month);
    // The protocol bound, not 30 days, is what a whole-seconds field is held to.
    let p = problems(&with_group(
        "{kind: light, id: l, session_expiry: 4294967296s}",
    ));
    assert!(
        p.iter().any(|p| p.contains("at most 4294967295s")),
        "{p:#?}"
    );
}

#[test]
fn signal_numbers_are_bounded_so_their_spread_is_finite() {
    let p = problems(&with_group(
        "{kind: sensor, id: s, signal: {range: {min: -1e308, max: 1e308}}}",
    ));
    for field in ["signal.range.min", "signal.range.max"] {
        assert!(
            p.iter()
                .any(|p| p.contains(field) && p.contains("within -1e12..=1e12")),
            "{field}: {p:#?}"
        );
    }
    let p = problems(&with_group(
        "{kind: sensor, id: s, signal: {walk: {step: 1e13}}}",
    ));
    assert!(p.iter().any(|p| p.contains("signal.walk.step")), "{p:#?}");
    fleet(&with_group(
        "{kind: sensor, id: s, signal: {walk: {start: 0, step: 1e12, min: -1e12, max: 1e12}}}",
    ));
}

#[test]
fn the_fault_schedule_is_bounded_and_counted_as_it_is_built() {
    // 10s / 10us: 999999 firings, on one device; 1ns: ten thousand times more.
    let f = fleet(&with_faults(
        "  - { kind: reset, target: lamp, every: 10us }\n",
    ));
    assert_eq!(f.injections(), 999_999);
    assert_eq!(crate::faults::schedule(&f).count(), 999_999);
    assert_each_problem(
        with_faults,
        &[
            (
                "  - { kind: reset, target: lamp, every: 1ns }\n",
                "8:41: faults[0].every:",
                "faults would fire 9999999999 times or more in all in a run of 10s (max 1000000)",
            ),
            (
                "  - { kind: reset, target: \"*\", every: 10us }\n",
                "faults[0].every:",
                "times or more in all in a run of 10s (max 1000000)",
            ),
            (
                "  - { kind: reset, target: lamp, every: 20us }\n  - { kind: reset, target: temp, every: 20us }\n  - { kind: reset, target: \"*\", at: 1s }\n",
                "faults[2].target:",
                // 2 x 499999 + 3
                "faults would fire 1000001 times or more",
            ),
        ],
    );
    let text = with_faults(
        "  - { kind: reset, target: lamp, at: 1s }\n  - { kind: latency, target: \"*\", every: 3s }\n",
    );
    let f = fleet(&text);
    assert_eq!(f.injections(), 1 + 3 * 3);
    assert_eq!(crate::faults::schedule(&f).count(), 10);
    // A longer run (`--duration`) fires the same faults more often: the validator counts them
    // against the duration given on the command line.
    let overrides = Overrides {
        duration: Some(MAX_DURATION),
        ..Overrides::default()
    };
    let ctx = validate::Context {
        base: None,
        env: &secret::process_env,
        overrides: &overrides,
    };
    let e = parse_in(&text, "t.yaml", &ctx).unwrap_err().to_string();
    assert!(
        e.contains("faults[1].every") && e.contains("2591998 times or more"),
        "{e}"
    );
}

#[test]
fn shards_deal_every_device_to_exactly_one_and_keep_their_indexes() {
    for devices in [0usize, 1, 5, 63, 64, 65, 1000, 1001] {
        for count in 1..=64u32 {
            let mut seen = vec![0u8; devices];
            let mut total = 0;
            for index in 0..count {
                let shard = crate::fleet::Shard { index, count };
                let held: Vec<usize> = shard.devices(devices).collect();
                assert_eq!(held.len(), shard.len(devices), "{devices} devices, {shard}");
                for (position, &i) in held.iter().enumerate() {
                    assert!(shard.holds(i));
                    assert_eq!(shard.position(i), position);
                    seen[i] += 1;
                }
                total += held.len();
            }
            assert_eq!(total, devices);
            assert!(
                seen.iter().all(|&n| n == 1),
                "{devices} devices in {count} shards"
            );
        }
    }
}

#[test]
fn shard_arguments_read_one_based_and_refuse_the_rest() {
    use crate::fleet::Shard;
    assert_eq!(Shard::parse("1/1"), Ok(Shard::default()));
    assert_eq!(Shard::parse("3/8"), Ok(Shard { index: 2, count: 8 }));
    assert_eq!(Shard::parse("3/8").unwrap().to_string(), "3/8");
    for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/3", "1/100000"] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
}
