//! Tests of protocol faults (`withhold_acks`, `malformed_packet`, `oversize_packet`) and of the
//! request fault `duplicate_request`: what a good file becomes, and a table of bad entries with
//! their messages.

use std::time::Duration;

use super::test_support::{assert_each_problem, fault_rows, fleet, problems, with_faults};
use super::*;

#[test]
fn protocol_faults_take_their_options_and_defaults() {
    let f = fleet(&with_faults(
        "  - { kind: withhold_acks,    target: \"*\",   at: 1s, lasts: 3s }
  - { kind: malformed_packet, target: lamp,  every: 4s }
  - { kind: oversize_packet,  target: phone, at: 2s }
  - { kind: oversize_packet,  target: temp,  every: 3s, size: 16MiB }
  - { kind: duplicate_request, target: phone, probability: 0.5 }
  - { kind: duplicate_request, target: phone, every: 2s }
",
    ));
    let ms = Duration::from_millis;
    let d = FaultParams::default();
    let got = fault_rows(&f);
    assert_eq!(
        got,
        [
            (
                FaultKind::WithholdAcks,
                Schedule::At(ms(1000)),
                vec![0, 1, 2],
                ms(0),
                FaultParams {
                    lasts: Some(ms(3000)),
                    ..d
                }
            ),
            (
                FaultKind::MalformedPacket,
                Schedule::Every(ms(4000)),
                vec![0],
                ms(0),
                d
            ),
            (
                FaultKind::OversizePacket,
                Schedule::At(ms(2000)),
                vec![2],
                ms(0),
                FaultParams {
                    size: 2 * 1024 * 1024,
                    ..d
                }
            ),
            (
                FaultKind::OversizePacket,
                Schedule::Every(ms(3000)),
                vec![1],
                ms(0),
                FaultParams {
                    size: 16 * 1024 * 1024,
                    ..d
                }
            ),
            (
                FaultKind::DuplicateRequest,
                Schedule::Probability(0.5),
                vec![2],
                ms(0),
                d
            ),
            (
                FaultKind::DuplicateRequest,
                Schedule::Every(ms(2000)),
                vec![2],
                ms(0),
                d
            ),
        ]
    );
    assert_eq!(FaultKind::WithholdAcks.class(), FaultClass::Protocol);
    assert_eq!(FaultKind::DuplicateRequest.class(), FaultClass::Request);
}

#[test]
fn bad_protocol_fault_entries_name_line_field_and_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "  - { kind: withhold_acks, target: lamp, at: 1s }\n",
            "8:5: faults[0].lasts:",
            "withhold_acks needs `lasts`: how long acks are held back before the device reconnects",
        ),
        (
            "  - { kind: withhold_acks, target: lamp, at: 1s, lasts: 0s }\n",
            ": faults[0].lasts:",
            "must be greater than 0, got `0s`",
        ),
        (
            "  - { kind: withhold_acks, target: lamp, at: 1s, lasts: a while }\n",
            ": faults[0].lasts:",
            "invalid duration `a while`",
        ),
        (
            "  - { kind: malformed_packet, target: lamp, at: 1s, lasts: 1s }\n",
            ": faults[0].lasts:",
            "`lasts` is only for latency, bandwidth, blackhole, slicer and withhold_acks, not malformed_packet",
        ),
        (
            "  - { kind: oversize_packet, target: lamp, at: 1s, lasts: 1s }\n",
            ": faults[0].lasts:",
            "`lasts` is only for latency, bandwidth, blackhole, slicer and withhold_acks, not oversize_packet",
        ),
        (
            "  - { kind: malformed_packet, target: lamp, probability: 0.5 }\n",
            "8:58: faults[0].probability:",
            "`probability` is only for request and responder faults: protocol faults need `at` or `every`",
        ),
        (
            "  - { kind: oversize_packet, target: lamp }\n",
            "8:5: faults[0]:",
            "a fault needs `at` (fire once) or `every` (fire repeatedly)",
        ),
        (
            "  - { kind: malformed_packet, target: lamp, at: 1s, down_for: 2s }\n",
            ": faults[0].down_for:",
            "`down_for` is only for kill, stall, disconnect, disconnect_with_will and flap",
        ),
        (
            "  - { kind: withhold_acks, target: lamp, at: 1s, lasts: 1s, direction: upstream }\n",
            ": faults[0].direction:",
            "`direction` is only for latency, bandwidth, blackhole, slicer and limit_data, not withhold_acks: a protocol fault acts on the device's own packets",
        ),
        (
            "  - { kind: malformed_packet, target: lamp, at: 1s, size: 1KiB }\n",
            ": faults[0].size:",
            "`size` is only for huge_payload, binary_payload and oversize_packet, not malformed_packet",
        ),
        (
            "  - { kind: withhold_acks, target: lamp, at: 1s, lasts: 1s, size: 1KiB }\n",
            ": faults[0].size:",
            "`size` is only for huge_payload, binary_payload and oversize_packet, not withhold_acks",
        ),
        (
            "  - { kind: oversize_packet, target: lamp, at: 1s, size: 17MiB }\n",
            ": faults[0].size:",
            "size must be at most 16MiB (16777216 bytes), got `17MiB`",
        ),
        (
            "  - { kind: oversize_packet, target: lamp, at: 1s, size: 0 }\n",
            ": faults[0].size:",
            "size must be greater than 0, got `0`",
        ),
        (
            "  - { kind: malformed_packet, target: lamp, at: 1s, delay: 1s }\n",
            ": faults[0].delay:",
            "`delay` is only for slow, not malformed_packet",
        ),
        (
            "  - { kind: oversize_packet, target: lamp, at: 1s, limit: 1KiB }\n",
            ": faults[0].limit:",
            "`limit` is only for limit_data, not oversize_packet",
        ),
        (
            "  - { kind: malformed_packet, target: lamp, at: 10s }\n",
            ": faults[0].at:",
            "fault at 10s would fire as the run ends at 10s",
        ),
        (
            "  - { kind: duplicate_request, target: lamp, at: 1s }\n",
            "8:40: faults[0].target:",
            "duplicate_request only acts on phones (it alters the requests they send), but target `lamp` matches lamp, a light",
        ),
        (
            "  - { kind: duplicate_request, target: phone, at: 1s, size: 1KiB }\n",
            ": faults[0].size:",
            "`size` is only for huge_payload, binary_payload and oversize_packet, not duplicate_request",
        ),
        (
            "  - { kind: duplicate_request, target: phone, at: 1s, lasts: 1s }\n",
            ": faults[0].lasts:",
            "not duplicate_request",
        ),
        (
            "  - { kind: duplicate_request, target: phone, at: 1s, down_for: 1s }\n",
            ": faults[0].down_for:",
            "`down_for` is only for kill",
        ),
        (
            "  - { kind: duplicate_request, target: phone, probability: 1.5 }\n",
            ": faults[0].probability:",
            "probability must be a number from 0.0 to 1.0, got 1.5",
        ),
        (
            "  - { kind: withhold, target: lamp, at: 1s }\n",
            "8:13: faults[0].kind:",
            "), a network fault (latency, bandwidth, blackhole, reset, slicer or limit_data) or a protocol fault (withhold_acks, malformed_packet or oversize_packet), got `withhold`",
        ),
    ];
    assert_each_problem(with_faults, cases);
}

#[test]
fn a_bad_protocol_fault_reports_every_problem_at_once() {
    let p = problems(&with_faults(
        "  - { kind: withhold_acks, target: nobody, probability: 0.5, down_for: 1s, direction: up, size: 1B, limit: 0 }\n",
    ));
    let fields: Vec<&str> = p.iter().filter_map(|p| p.split(": ").nth(1)).collect();
    assert_eq!(
        fields,
        [
            "faults[0].lasts",
            "faults[0].target",
            "faults[0].probability",
            "faults[0].down_for",
            "faults[0].direction",
            "faults[0].size",
            "faults[0].limit",
        ],
        "{p:#?}"
    );
}

#[test]
fn withhold_acks_needs_lasts_even_without_a_good_target() {
    let p = problems(&with_faults(
        "  - { kind: withhold_acks, target: \"?\", every: 1s }\n",
    ));
    assert!(
        p.iter()
            .any(|p| p.contains("faults[0].lasts: withhold_acks needs `lasts`")),
        "{p:#?}"
    );
}
