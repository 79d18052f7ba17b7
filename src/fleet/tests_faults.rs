//! Tests of request and responder faults and of the fault options `probability`, `delay` and
//! `size`: what a good file becomes, and a table of bad entries with their messages.

use std::time::Duration;

use super::test_support::{assert_each_problem, fault_rows, fleet, problems};
use super::*;

/// Devices in fleet order: light-1 (0), light-2 (1), sensor (2), phone-1 (3), phone-2 (4).
/// `faults:` is on line 14, so the first entry starts on line 15.
const FLEET: &str = "\
name: t
duration: 10s
devices:
  - kind: light
    id: light-{n}
    count: 2
    will: {}
  - kind: sensor
    id: sensor
  - kind: phone
    id: phone-{n}
    count: 2
    targets: [\"light-*\"]
faults:
";

fn with_faults(body: &str) -> String {
    format!("{FLEET}{body}")
}

#[test]
fn request_and_responder_faults_take_their_options_and_defaults() {
    let f = fleet(&with_faults(
        "  - { kind: no_response_topic, target: \"phone-*\", probability: 0.2 }
  - { kind: slow, target: \"light-*\", every: 3s, delay: 200ms..1s }
  - { kind: slow, target: sensor, at: 1s, delay: 300ms }
  - { kind: huge_payload, target: phone-1, at: 2s, size: 300KiB }
  - { kind: binary_payload, target: phone-2, probability: 1 }
  - { kind: huge_payload, target: phone-2, probability: 0 }
  - { kind: no_answer, target: sensor, at: 0s }
",
    ));
    let ms = Duration::from_millis;
    let defaults = FaultParams::default();
    let got = fault_rows(&f);
    assert_eq!(
        got,
        [
            (
                FaultKind::NoResponseTopic,
                Schedule::Probability(0.2),
                vec![3, 4],
                ms(0),
                defaults
            ),
            (
                FaultKind::Slow,
                Schedule::Every(ms(3000)),
                vec![0, 1],
                ms(0),
                FaultParams {
                    delay: (ms(200), ms(1000)),
                    ..defaults
                }
            ),
            (
                FaultKind::Slow,
                Schedule::At(ms(1000)),
                vec![2],
                ms(0),
                FaultParams {
                    delay: (ms(300), ms(300)),
                    ..defaults
                }
            ),
            (
                FaultKind::HugePayload,
                Schedule::At(ms(2000)),
                vec![3],
                ms(0),
                FaultParams {
                    size: 300 * 1024,
                    ..defaults
                }
            ),
            (
                FaultKind::BinaryPayload,
                Schedule::Probability(1.0),
                vec![4],
                ms(0),
                FaultParams {
                    size: 64,
                    ..defaults
                }
            ),
            (
                FaultKind::HugePayload,
                Schedule::Probability(0.0),
                vec![4],
                ms(0),
                defaults
            ),
            (
                FaultKind::NoAnswer,
                Schedule::At(ms(0)),
                vec![2],
                ms(0),
                defaults
            ),
        ]
    );
    assert_eq!(defaults.size, 256 * 1024);
}

#[test]
fn every_kind_is_accepted_on_the_devices_it_acts_on() {
    for kind in FaultKind::ALL {
        let (target, extra) = match kind.class() {
            FaultClass::Connection => ("phone-1", ", down_for: 50s"),
            FaultClass::Request => ("\"phone-*\"", ""),
            FaultClass::Responder => ("\"*t*\"", ""),
            FaultClass::Network => ("\"*\"", ""),
            FaultClass::Protocol if kind == FaultKind::WithholdAcks => ("\"*\"", ", lasts: 1s"),
            FaultClass::Protocol => ("\"*\"", ""),
        };
        // Flap needs a Will delay; phones have none, so it goes to a light with one.
        let yaml = if kind == FaultKind::Flap {
            "name: t\ndevices:\n  - {kind: light, id: l, will: {delay: 5s}}\nfaults:\n  - {kind: flap, target: l, at: 1s, down_for: 2s}\n"
                .to_string()
        } else {
            with_faults(&format!(
                "  - {{kind: {}, target: {target}, at: 1s{extra}}}\n",
                kind.as_str()
            ))
        };
        let f = fleet(&yaml);
        assert_eq!(f.faults[0].kind, kind, "{}", kind.as_str());
    }
}

#[test]
fn will_checks_apply_to_connection_faults_only() {
    // light-1's Will is due at once (delay 0): a responder fault, which takes no device away,
    // has nothing to race with.
    let f = fleet(&with_faults(
        "  - { kind: no_answer, target: light-1, every: 1s }\n",
    ));
    assert_eq!(f.faults[0].down_for, Duration::ZERO);
    let p = problems(&with_faults(
        "  - { kind: kill, target: light-1, at: 1s, down_for: 500ms }\n",
    ));
    assert!(
        p[0].contains("within a second of when its Will is due"),
        "{p:?}"
    );
}

#[test]
fn bad_fault_entries_name_line_field_and_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "  - { kind: kill, target: light-1, probability: 0.5, down_for: 1s }\n",
            "15:49: faults[0].probability:",
            "`probability` is only for request and responder faults: connection faults need `at` or `every`",
        ),
        (
            "  - { kind: slow, target: light-1, probability: 1.5 }\n",
            "15:49: faults[0].probability:",
            "probability must be a number from 0.0 to 1.0, got 1.5",
        ),
        (
            "  - { kind: slow, target: light-1, probability: .nan }\n",
            ": faults[0].probability:",
            "got NaN",
        ),
        (
            "  - { kind: slow, target: light-1, probability: -0.1 }\n",
            ": faults[0].probability:",
            "got -0.1",
        ),
        (
            "  - { kind: slow, target: light-1, at: 1s, probability: 0.5 }\n",
            ": faults[0].probability:",
            "only one of `at`, `every` and `probability`",
        ),
        (
            "  - { kind: slow, target: light-1 }\n",
            "15:5: faults[0]:",
            "`every` (fire repeatedly) or `probability`",
        ),
        (
            "  - { kind: slow, target: light-1, at: 1s, down_for: 2s }\n",
            "15:54: faults[0].down_for:",
            "`down_for` is only for kill, stall, disconnect, disconnect_with_will and flap",
        ),
        (
            "  - { kind: kill, target: light-1, at: 1s }\n",
            ": faults[0].down_for:",
            "missing required field `down_for`",
        ),
        (
            "  - { kind: no_answer, target: light-1, at: 1s, delay: 1s }\n",
            "15:56: faults[0].delay:",
            "`delay` is only for slow, not no_answer",
        ),
        (
            "  - { kind: slow, target: light-1, at: 1s, delay: 2s..1s }\n",
            ": faults[0].delay:",
            "MIN <= MAX, got `2s..1s`",
        ),
        (
            "  - { kind: slow, target: light-1, at: 1s, delay: soon }\n",
            ": faults[0].delay:",
            "invalid duration `soon` in delay `soon`",
        ),
        (
            "  - { kind: slow, target: light-1, at: 1s, size: 1KiB }\n",
            ": faults[0].size:",
            "`size` is only for huge_payload, binary_payload and oversize_packet, not slow",
        ),
        (
            "  - { kind: huge_payload, target: phone-1, at: 1s, size: 20MiB }\n",
            "15:58: faults[0].size:",
            "size must be at most 16MiB (16777216 bytes), got `20MiB`",
        ),
        (
            "  - { kind: binary_payload, target: phone-1, at: 1s, size: 0 }\n",
            ": faults[0].size:",
            "size must be greater than 0, got `0`",
        ),
        (
            "  - { kind: binary_payload, target: phone-1, at: 1s, size: 3kb }\n",
            ": faults[0].size:",
            "unit B, KiB or MiB (like 64, 512B, 300KiB, 1MiB), got `3kb`",
        ),
        (
            "  - { kind: no_response_topic, target: light-1, at: 1s }\n",
            "15:40: faults[0].target:",
            "no_response_topic only acts on phones (it alters the requests they send), but target `light-1` matches light-1, a light",
        ),
        (
            "  - { kind: slow, target: \"*\", at: 1s }\n",
            ": faults[0].target:",
            "slow only acts on lights and sensors (it alters their answers), but target `*` matches phone-1, a phone (and 1 other target)",
        ),
        (
            "  - { kind: huge_payload, target: \"*\", at: 1s }\n",
            ": faults[0].target:",
            "matches light-1, a light (and 2 other targets)",
        ),
        (
            "  - { kind: crash, target: light-1, at: 1s }\n",
            "15:13: faults[0].kind:",
            "fault kind must be a connection fault (kill, stall, disconnect, disconnect_with_will or flap), a request fault (no_response_topic, no_correlation_data, empty_correlation_data, wildcard_response_topic, huge_payload, binary_payload or duplicate_request), a responder fault (slow, no_answer, wrong_correlation, duplicate_answer, wrong_topic or error_payload), a network fault (latency, bandwidth, blackhole, reset, slicer or limit_data) or a protocol fault (withhold_acks, malformed_packet or oversize_packet), got `crash`",
        ),
        (
            "  - { kind: slow, target: light-1, every: 10s }\n",
            ": faults[0].every:",
            "would never fire",
        ),
    ];
    assert_each_problem(with_faults, cases);
}

#[test]
fn a_bad_fault_reports_every_problem_at_once() {
    let p = problems(&with_faults(
        "  - { kind: no_answer, target: phone-1, probability: 2, down_for: 1s, delay: 1s, size: 1B }\n",
    ));
    let fields: Vec<&str> = p.iter().filter_map(|p| p.split(": ").nth(1)).collect();
    assert_eq!(
        fields,
        [
            "faults[0].target",
            "faults[0].probability",
            "faults[0].down_for",
            "faults[0].delay",
            "faults[0].size"
        ],
        "{p:#?}"
    );
}
