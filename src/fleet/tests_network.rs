//! Tests of network faults and their options `direction`, `lasts`, `latency`, `jitter`, `rate`,
//! `slice`, `slice_delay` and `limit`: what a good file becomes, and a table of bad entries
//! with their messages.

use std::time::Duration;

use super::test_support::{assert_each_problem, fault_rows, fleet, problems, with_faults};
use super::*;

#[test]
fn network_faults_take_their_options_and_defaults() {
    let f = fleet(&with_faults(
        "  - { kind: latency,    target: phone, at: 1s, lasts: 3s, latency: 200ms, jitter: 50ms, direction: downstream }
  - { kind: bandwidth,  target: lamp,  every: 5s, lasts: 2s, rate: 4KiB, direction: upstream }
  - { kind: blackhole,  target: lamp,  at: 2s, lasts: 1s }
  - { kind: reset,      target: lamp,  at: 2s }
  - { kind: slicer,     target: phone, at: 0s, slice: 8, slice_delay: 2ms }
  - { kind: limit_data, target: \"*\",   at: 1s, limit: 200B, direction: both }
  - { kind: latency,    target: temp,  every: 1s }
  - { kind: bandwidth,  target: temp,  at: 1s, rate: 100 }
  - { kind: slicer,     target: temp,  at: 1s, slice: 1KiB, slice_delay: 0s }
",
    ));
    let ms = Duration::from_millis;
    let d = FaultParams::default();
    let got = fault_rows(&f);
    assert_eq!(
        got,
        [
            (
                FaultKind::Latency,
                Schedule::At(ms(1000)),
                vec![2],
                ms(0),
                FaultParams {
                    direction: Direction::Downstream,
                    lasts: Some(ms(3000)),
                    latency: ms(200),
                    jitter: ms(50),
                    ..d
                }
            ),
            (
                FaultKind::Bandwidth,
                Schedule::Every(ms(5000)),
                vec![0],
                ms(0),
                FaultParams {
                    direction: Direction::Upstream,
                    lasts: Some(ms(2000)),
                    rate: 4096,
                    ..d
                }
            ),
            (
                FaultKind::Blackhole,
                Schedule::At(ms(2000)),
                vec![0],
                ms(0),
                FaultParams {
                    lasts: Some(ms(1000)),
                    ..d
                }
            ),
            (FaultKind::Reset, Schedule::At(ms(2000)), vec![0], ms(0), d),
            (
                FaultKind::Slicer,
                Schedule::At(ms(0)),
                vec![2],
                ms(0),
                FaultParams {
                    slice: 8,
                    slice_delay: ms(2),
                    ..d
                }
            ),
            (
                FaultKind::LimitData,
                Schedule::At(ms(1000)),
                vec![0, 1, 2],
                ms(0),
                FaultParams { limit: 200, ..d }
            ),
            (
                FaultKind::Latency,
                Schedule::Every(ms(1000)),
                vec![1],
                ms(0),
                d
            ),
            (
                FaultKind::Bandwidth,
                Schedule::At(ms(1000)),
                vec![1],
                ms(0),
                FaultParams { rate: 100, ..d }
            ),
            (
                FaultKind::Slicer,
                Schedule::At(ms(1000)),
                vec![1],
                ms(0),
                FaultParams {
                    slice: 1024,
                    slice_delay: ms(0),
                    ..d
                }
            ),
        ]
    );
    // The defaults the runner relies on: both ways, to the end of the run.
    assert_eq!(d.direction, Direction::Both);
    assert_eq!(d.lasts, None);
}

#[test]
fn jitter_may_equal_latency_and_is_checked_against_the_default() {
    let f = fleet(&with_faults(
        "  - { kind: latency, target: lamp, at: 1s, latency: 80ms, jitter: 80ms }
  - { kind: latency, target: lamp, at: 1s, jitter: 100ms }
",
    ));
    let ms = Duration::from_millis;
    assert_eq!(f.faults[0].params.jitter, ms(80));
    assert_eq!(f.faults[1].params.latency, ms(100));
    assert_eq!(f.faults[1].params.jitter, ms(100));
}

#[test]
fn bad_network_fault_entries_name_line_field_and_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "  - { kind: latency, target: lamp, probability: 0.5 }\n",
            "8:49: faults[0].probability:",
            "`probability` is only for request and responder faults: network faults need `at` or `every`",
        ),
        (
            "  - { kind: latency, target: lamp }\n",
            "8:5: faults[0]:",
            "a fault needs `at` (fire once) or `every` (fire repeatedly)",
        ),
        (
            "  - { kind: blackhole, target: lamp, at: 1s, down_for: 2s }\n",
            "8:56: faults[0].down_for:",
            "`down_for` is only for kill, stall, disconnect, disconnect_with_will and flap",
        ),
        (
            "  - { kind: reset, target: lamp, at: 1s, lasts: 1s }\n",
            "8:49: faults[0].lasts:",
            "`lasts` is only for latency, bandwidth, blackhole, slicer and withhold_acks, not reset: a reset is instant",
        ),
        (
            "  - { kind: limit_data, target: lamp, at: 1s, lasts: 1s }\n",
            ": faults[0].lasts:",
            "`lasts` is only for latency, bandwidth, blackhole, slicer and withhold_acks, not limit_data: limit_data ends by closing the connection once `limit` bytes have passed",
        ),
        (
            "  - { kind: kill, target: lamp, at: 1s, down_for: 2s, lasts: 1s }\n",
            ": faults[0].lasts:",
            "`lasts` is only for latency, bandwidth, blackhole, slicer and withhold_acks, not kill",
        ),
        (
            "  - { kind: blackhole, target: lamp, at: 1s, lasts: 0s }\n",
            ": faults[0].lasts:",
            "must be greater than 0, got `0s`",
        ),
        (
            "  - { kind: blackhole, target: lamp, at: 1s, lasts: forever }\n",
            ": faults[0].lasts:",
            "invalid duration `forever`",
        ),
        (
            "  - { kind: reset, target: lamp, at: 1s, direction: upstream }\n",
            "8:53: faults[0].direction:",
            "`direction` is only for latency, bandwidth, blackhole, slicer and limit_data, not reset: a reset closes the whole connection",
        ),
        (
            "  - { kind: slow, target: lamp, at: 1s, direction: upstream }\n",
            ": faults[0].direction:",
            "`direction` is only for latency, bandwidth, blackhole, slicer and limit_data, not slow",
        ),
        (
            "  - { kind: latency, target: lamp, at: 1s, direction: up }\n",
            ": faults[0].direction:",
            "direction must be upstream (device to broker), downstream (broker to device) or both, got `up`",
        ),
        (
            "  - { kind: bandwidth, target: lamp, at: 1s, latency: 1s }\n",
            ": faults[0].latency:",
            "`latency` is only for latency, not bandwidth",
        ),
        (
            "  - { kind: slicer, target: lamp, at: 1s, jitter: 1ms }\n",
            ": faults[0].jitter:",
            "`jitter` is only for latency, not slicer",
        ),
        (
            "  - { kind: latency, target: lamp, at: 1s, latency: 50ms, jitter: 60ms }\n",
            "8:67: faults[0].jitter:",
            "jitter must be at most latency (50ms), got `60ms`",
        ),
        (
            "  - { kind: latency, target: lamp, at: 1s, jitter: 1s }\n",
            ": faults[0].jitter:",
            "jitter must be at most latency (100ms, the default), got `1s`",
        ),
        (
            "  - { kind: latency, target: lamp, at: 1s, latency: soon }\n",
            ": faults[0].latency:",
            "invalid duration `soon`",
        ),
        (
            "  - { kind: latency, target: lamp, at: 1s, rate: 1KiB }\n",
            ": faults[0].rate:",
            "`rate` is only for bandwidth, not latency",
        ),
        (
            "  - { kind: bandwidth, target: lamp, at: 1s, rate: 0 }\n",
            ": faults[0].rate:",
            "rate must be greater than 0, got `0`",
        ),
        (
            "  - { kind: bandwidth, target: lamp, at: 1s, rate: 4kb }\n",
            ": faults[0].rate:",
            "rate must be a number of bytes, bare or with a unit B, KiB or MiB (like 64, 512B, 300KiB, 1MiB), got `4kb`",
        ),
        (
            "  - { kind: blackhole, target: lamp, at: 1s, slice: 8 }\n",
            ": faults[0].slice:",
            "`slice` is only for slicer, not blackhole",
        ),
        (
            "  - { kind: slicer, target: lamp, at: 1s, slice: 0 }\n",
            ": faults[0].slice:",
            "slice must be greater than 0, got `0`",
        ),
        (
            "  - { kind: slicer, target: lamp, at: 1s, slice: -1 }\n",
            ": faults[0].slice:",
            "slice must be a number of bytes",
        ),
        (
            "  - { kind: latency, target: lamp, at: 1s, slice_delay: 1ms }\n",
            ": faults[0].slice_delay:",
            "`slice_delay` is only for slicer, not latency",
        ),
        (
            "  - { kind: slicer, target: lamp, at: 1s, slice_delay: -1ms }\n",
            ": faults[0].slice_delay:",
            "invalid duration `-1ms`",
        ),
        (
            "  - { kind: reset, target: lamp, at: 1s, limit: 1KiB }\n",
            "8:49: faults[0].limit:",
            "`limit` is only for limit_data, not reset",
        ),
        (
            "  - { kind: limit_data, target: lamp, at: 1s, limit: 17MiB }\n",
            ": faults[0].limit:",
            "limit must be at most 16MiB (16777216 bytes), got `17MiB`",
        ),
        (
            "  - { kind: huge_payload, target: phone, at: 1s, latency: 1s }\n",
            ": faults[0].latency:",
            "`latency` is only for latency, not huge_payload",
        ),
        (
            "  - { kind: reset, target: lamp, at: 1s, size: 1KiB }\n",
            ": faults[0].size:",
            "`size` is only for huge_payload, binary_payload and oversize_packet, not reset",
        ),
    ];
    assert_each_problem(with_faults, cases);
}

#[test]
fn a_bad_network_fault_reports_every_problem_at_once() {
    let p = problems(&with_faults(
        "  - { kind: reset, target: nobody, probability: 0.5, down_for: 1s, lasts: 1s, direction: up, latency: x, jitter: 1s, rate: 0, slice: 0, slice_delay: 1ms, limit: 0 }\n",
    ));
    let fields: Vec<&str> = p.iter().filter_map(|p| p.split(": ").nth(1)).collect();
    assert_eq!(
        fields,
        [
            "faults[0].target",
            "faults[0].probability",
            "faults[0].down_for",
            "faults[0].lasts",
            "faults[0].direction",
            "faults[0].latency",
            "faults[0].jitter",
            "faults[0].rate",
            "faults[0].slice",
            "faults[0].slice_delay",
            "faults[0].limit",
        ],
        "{p:#?}"
    );
}

#[test]
fn option_values_are_checked_even_with_a_bad_kind() {
    let p = problems(&with_faults(
        "  - { kind: crash, target: lamp, at: 1s, rate: 0, direction: sideways, lasts: 1s }\n",
    ));
    assert!(
        p.iter()
            .any(|p| p.contains("faults[0].rate: rate must be greater than 0")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|p| p.contains("faults[0].direction: direction must be")),
        "{p:#?}"
    );
    assert!(!p.iter().any(|p| p.contains("faults[0].lasts")), "{p:#?}");
}
