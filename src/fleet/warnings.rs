//! What a valid fleet may still run into: payloads a broker's Maximum Packet Size will refuse.
//! Not errors (an external broker may allow more), so `validate` prints them as warnings and a
//! run on the embedded broker logs them.

use super::model::{FaultKind, Fleet, Role};

/// Room the rest of a PUBLISH takes besides its payload and topics: fixed header, lengths,
/// packet id, Correlation Data and property ids, generously.
const PUBLISH_OVERHEAD: usize = 256;

/// One warning per payload that would make a PUBLISH larger than `limit` bytes.
pub fn oversized_payloads(fleet: &Fleet, limit: usize) -> Vec<String> {
    let mut warnings = Vec::new();
    // `extra`: other variable parts of the PUBLISH (the Response Topic).
    let mut warn = |who: &str, what: String, topic: &str, size: usize, extra: usize| {
        if size + topic.len() + extra + PUBLISH_OVERHEAD > limit {
            warnings.push(format!(
                "{who}: {what} of {size} bytes to {topic} exceeds a Maximum Packet Size of {limit} bytes: such requests fail (packet_too_large)"
            ));
        }
    };
    for device in &fleet.devices {
        if let Role::Phone(phone) = &device.role
            && let Some(payloads) = &phone.targets.payloads
        {
            let t = &phone.targets;
            for i in 0..t.len() {
                let extra = t.response_topic(i).len();
                for payload in payloads.iter() {
                    let topic = t.request_topic(i, fleet);
                    warn(&device.id, "a payload".into(), topic, payload.len(), extra);
                }
            }
        }
    }
    for fault in &fleet.faults {
        if matches!(
            fault.kind,
            FaultKind::HugePayload | FaultKind::BinaryPayload
        ) {
            for &target in &fault.targets {
                let Some(device) = fleet.devices.get(target) else {
                    continue;
                };
                let Role::Phone(phone) = &device.role else {
                    continue;
                };
                // The request may go to any of the phone's targets: the longest topics count.
                let t = &phone.targets;
                let longest = (0..t.len())
                    .max_by_key(|&i| t.request_topic(i, fleet).len() + t.response_topic(i).len());
                if let Some(i) = longest {
                    let what = format!("a {} fault's payload", fault.kind.as_str());
                    let extra = t.response_topic(i).len();
                    let topic = t.request_topic(i, fleet);
                    warn(&device.id, what, topic, fault.params.size, extra);
                }
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::parse;

    #[test]
    fn payloads_past_the_limit_are_named_with_their_device() {
        let big = "x".repeat(2000);
        let fleet = parse(
            &format!(
                "name: w\ndevices:\n  - {{ kind: light, id: lamp }}\n  - {{ kind: phone, id: phone, targets: [lamp], payloads: [ON, \"{big}\"] }}\nfaults:\n  - {{ kind: huge_payload, target: phone, at: 1s, size: 4KiB }}\n"
            ),
            "<test>",
        )
        .unwrap();
        let warnings = oversized_payloads(&fleet, 1024);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("phone: a payload of 2000 bytes to cmnd/lamp/power"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("huge_payload fault's payload of 4096 bytes"));
        assert!(oversized_payloads(&fleet, 1 << 20).is_empty());
    }
}
