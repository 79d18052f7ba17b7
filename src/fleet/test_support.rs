//! What the fleet-file tests share: parsing a test fleet that must be valid, or the problems
//! of one that must not be.

use std::time::Duration;

use super::*;

/// The fleet of a text that must be valid.
pub(super) fn fleet(yaml: &str) -> Fleet {
    match parse(yaml, "t.yaml") {
        Ok(f) => f,
        Err(e) => panic!("expected a valid fleet, got:\n{e}"),
    }
}

/// Each problem of a text that must be invalid, as printed, without the origin.
pub(super) fn problems(yaml: &str) -> Vec<String> {
    match parse(yaml, "t.yaml") {
        Err(FleetError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The small fleet the network and protocol tests hit: lamp (0), temp (1), phone (2).
/// `faults:` is on line 7, so the first entry starts on line 8.
pub(super) fn with_faults(body: &str) -> String {
    const FLEET: &str = "\
name: t
duration: 10s
devices:
  - { kind: light, id: lamp }
  - { kind: sensor, id: temp }
  - { kind: phone, id: phone, targets: [lamp] }
faults:
";
    format!("{FLEET}{body}")
}

/// Each `(body, place, message)`: the fleet `build(body)` has a problem at `place` (e.g.
/// `8:13: faults[0].kind:`) saying `message`.
pub(super) fn assert_each_problem(build: impl Fn(&str) -> String, cases: &[(&str, &str, &str)]) {
    for (body, place, message) in cases {
        let p = problems(&build(body));
        assert!(
            p.iter().any(|p| p.contains(place) && p.contains(message)),
            "{body}: want `{place} ... {message}` in {p:#?}"
        );
    }
}

/// The checked faults as comparable rows: kind, schedule, targets, `down_for`, params.
pub(super) fn fault_rows(
    f: &Fleet,
) -> Vec<(FaultKind, Schedule, Vec<usize>, Duration, FaultParams)> {
    f.faults
        .iter()
        .map(|f| (f.kind, f.schedule, f.targets.clone(), f.down_for, f.params))
        .collect()
}
