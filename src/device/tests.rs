//! The device without a socket or a clock: events in, actions and counts out, time passed by
//! hand. These are the behaviours the actor only carries out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt5_protocol::packet::connack::ConnAckPacket;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::packet::suback::{SubAckPacket, SubAckReasonCode};
use mqtt5_protocol::{Packet, QoS, ReasonCode};

use super::*;
use crate::mqtt::{Inbound, Outbound};
use crate::shared::Shared;
use crate::tally::Tally;

/// A device of a one-file fleet, its counts and what it asked for.
struct Harness {
    device: Device,
    tally: Tally,
    shared: Arc<Shared>,
    now: Instant,
}

impl Harness {
    /// Device `index` of the fleet in `yaml`.
    fn new(yaml: &str, index: u32) -> Self {
        let fleet = Arc::new(crate::fleet::parse(yaml, "<test>").expect("valid test fleet"));
        let faults = crate::faults::per_device(&fleet).swap_remove(index as usize);
        let device = Device::new(DeviceSetup {
            fleet,
            index,
            faults,
            reconnect_window: Duration::from_millis(100),
        });
        Self {
            device,
            tally: Tally::default(),
            shared: Shared::new(Default::default()),
            now: Instant::now(),
        }
    }

    fn step(&mut self, event: impl FnOnce(&mut Device, Instant, &mut Out<'_>)) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut out = Out {
            actions: &mut actions,
            tally: &mut self.tally,
            shared: &self.shared,
        };
        event(&mut self.device, self.now, &mut out);
        actions
    }

    fn advance(&mut self, by: Duration) -> Vec<Action> {
        self.now += by;
        self.step(|d, now, out| d.tick(now, out))
    }

    fn packet(&mut self, generation: u64, packet: Packet) -> Vec<Action> {
        self.step(|d, now, out| d.frame(generation, Inbound::Packet(packet), now, out))
    }

    /// Dials, connects and subscribes (granting everything): connection `generation`.
    fn connect(&mut self) -> u64 {
        let actions = self.step(|d, now, out| d.start(now, out));
        let generation = match actions[..] {
            [Action::Dial { generation, .. }] => generation,
            ref other => panic!("expected a dial, got {other:?}"),
        };
        self.ready(generation);
        generation
    }

    fn ready(&mut self, generation: u64) {
        let actions = self.step(|d, now, out| d.dialed(generation, Ok(()), now, out));
        assert!(
            matches!(written(&actions)[..], [Packet::Connect(_)]),
            "{actions:?}"
        );
        let actions = self.packet(
            generation,
            Packet::ConnAck(ConnAckPacket::new(false, ReasonCode::Success)),
        );
        if let [Packet::Subscribe(s)] = &written(&actions)[..] {
            let mut ack = SubAckPacket::new(s.packet_id);
            ack.reason_codes = vec![SubAckReasonCode::GrantedQoS1; s.filters.len()];
            self.packet(generation, Packet::SubAck(ack));
        }
    }
}

fn written(actions: &[Action]) -> Vec<Packet> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(Outbound::Packet(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn publishes(actions: &[Action]) -> Vec<PublishPacket> {
    written(actions)
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// An answer to `request` as a light would publish it (QoS 1, packet id `id`).
fn answer_to(request: &PublishPacket, id: u16) -> Packet {
    let topic = response_topic_of(request).expect("a Response Topic");
    let mut answer = PublishPacket::new(
        topic,
        Bytes::from_static(b"{\"power\":\"ON\"}"),
        QoS::AtLeastOnce,
    );
    answer.packet_id = Some(id);
    if let Some(c) = correlation_of(request) {
        answer.properties.set_correlation_data(c);
    }
    Packet::Publish(answer)
}

const PHONE: &str = "name: t\ndevices:\n  - { kind: light, id: lamp }\n  - { kind: phone, id: phone, targets: [lamp], every: 100ms, timeout: 1s }\n";

#[test]
fn a_phone_sends_when_due_and_matches_the_answer_by_correlation_data() {
    let mut h = Harness::new(PHONE, 1);
    let generation = h.connect();
    assert_eq!(h.shared.progress.ready_count(), 1);
    h.step(|d, now, out| d.begin(now, out));
    // The first request is due within the first interval.
    let actions = h.advance(Duration::from_millis(100));
    let sent = publishes(&actions);
    assert_eq!(sent.len(), 1, "{actions:?}");
    assert_eq!(sent[0].topic_name, "cmnd/lamp/power");
    assert_eq!(response_topic_of(&sent[0]).as_deref(), Some("resp/phone"));
    assert_eq!(correlation_of(&sent[0]).as_deref(), Some(&b"phone:1"[..]));
    assert_eq!(h.tally.requests.sent, 1);
    h.now += Duration::from_millis(3);
    let actions = h.packet(generation, answer_to(&sent[0], 1));
    assert!(
        matches!(written(&actions)[..], [Packet::PubAck(_)]),
        "acked: {actions:?}"
    );
    assert_eq!(h.tally.requests.matched, 1);
    assert_eq!(h.tally.latency.len(), 1);
}

#[test]
fn an_unanswered_request_times_out_at_its_deadline_without_a_timer_of_its_own() {
    let mut h = Harness::new(PHONE, 1);
    h.connect();
    h.step(|d, now, out| d.begin(now, out));
    let sent_at = h.now + Duration::from_millis(100);
    h.advance(Duration::from_millis(100));
    assert_eq!(h.tally.requests.sent, 1);
    // The device's one wakeup covers the deadline (and the next send, which comes first).
    assert!(
        h.device
            .next_wakeup()
            .is_some_and(|w| w <= sent_at + Duration::from_secs(1))
    );
    h.now = sent_at + Duration::from_millis(999);
    h.step(|d, now, out| d.tick(now, out));
    assert_eq!(h.tally.requests.timed_out, 0);
    h.now = sent_at + Duration::from_secs(1);
    h.step(|d, now, out| d.tick(now, out));
    assert_eq!(h.tally.requests.timed_out, 1);
}

#[test]
fn a_closed_loop_refills_its_window_as_requests_end() {
    let yaml = PHONE.replace("every: 100ms", "in_flight: 2");
    let mut h = Harness::new(&yaml, 1);
    let generation = h.connect();
    let actions = h.step(|d, now, out| d.begin(now, out));
    let sent = publishes(&actions);
    assert_eq!(sent.len(), 2, "the window fills at once");
    let actions = h.packet(generation, answer_to(&sent[0], 1));
    assert_eq!(publishes(&actions).len(), 1, "one ended, one more goes");
    assert_eq!(h.tally.requests.sent, 3);
    // A timeout frees a slot too.
    h.now += Duration::from_secs(2);
    let actions = h.step(|d, now, out| d.tick(now, out));
    assert_eq!(h.tally.requests.timed_out, 2);
    assert_eq!(publishes(&actions).len(), 2);
}

#[test]
fn requests_due_while_disconnected_are_skipped_not_sent_later() {
    let mut h = Harness::new(PHONE, 1);
    let generation = h.connect();
    h.step(|d, now, out| d.begin(now, out));
    let actions = h.step(|d, now, out| d.closed(generation, None, now, out));
    assert!(
        actions.iter().any(|a| matches!(a, Action::Drop)),
        "{actions:?}"
    );
    assert_eq!(h.tally.links.unplanned_drops, 1);
    // A second's worth of requests falls due while it is down (its redial fails meanwhile).
    for _ in 0..10 {
        let actions = h.advance(Duration::from_millis(100));
        for action in &actions {
            if let Action::Dial { generation, .. } = action {
                let g = *generation;
                h.step(|d, now, out| d.dialed(g, Err("refused".into()), now, out));
            }
        }
        assert!(publishes(&actions).is_empty());
    }
    assert_eq!(h.tally.requests.sent, 0);
    assert!(
        h.tally.requests.skipped_offline >= 9,
        "{:?}",
        h.tally.requests
    );
}

#[test]
fn a_light_answers_on_the_response_topic_with_the_correlation_data_copied() {
    let mut h = Harness::new(PHONE, 0);
    let generation = h.connect();
    let mut request = PublishPacket::new(
        "cmnd/lamp/power",
        Bytes::from_static(b"ON"),
        QoS::AtLeastOnce,
    );
    request.packet_id = Some(7);
    request.properties.set_response_topic("resp/phone".into());
    request
        .properties
        .set_correlation_data(Bytes::from_static(b"phone:1"));
    let actions = h.packet(generation, Packet::Publish(request));
    let written = written(&actions);
    assert!(
        written
            .iter()
            .any(|p| matches!(p, Packet::PubAck(a) if a.packet_id == 7)),
        "{written:?}"
    );
    let answer = publishes(&actions).pop().expect("an answer");
    assert_eq!(answer.topic_name, "resp/phone");
    assert_eq!(correlation_of(&answer).as_deref(), Some(&b"phone:1"[..]));
    assert_eq!(&answer.payload[..], br#"{"power":"ON"}"#);
    assert_eq!(
        (h.tally.responders.received, h.tally.responders.answered),
        (1, 1)
    );
}

#[test]
fn a_broker_that_drops_every_connection_after_connack_is_given_up_on_the_fifth_time() {
    let mut h = Harness::new(PHONE, 0);
    let mut actions = h.step(|d, now, out| d.start(now, out));
    let mut waits = Vec::new();
    for _ in 0..5 {
        let Some(Action::Dial { generation, .. }) = actions.pop() else {
            panic!("expected a dial, got {actions:?}");
        };
        h.step(|d, now, out| d.dialed(generation, Ok(()), now, out));
        h.packet(
            generation,
            Packet::ConnAck(ConnAckPacket::new(false, ReasonCode::Success)),
        );
        actions = h.step(|d, now, out| d.closed(generation, None, now, out));
        if actions.iter().any(|a| matches!(a, Action::Stop)) {
            break;
        }
        let wait = h.device.next_wakeup().expect("a redial is due") - h.now;
        waits.push(wait);
        h.now += wait;
        actions = h.step(|d, now, out| d.tick(now, out));
    }
    assert!(
        actions.iter().any(|a| matches!(a, Action::Stop)),
        "{actions:?}"
    );
    let (device, reason) = h.shared.progress.failure().expect("the run hears why");
    assert_eq!(device, "lamp");
    assert!(reason.contains("closed the connection"), "{reason}");
    assert_eq!(waits.len(), 4);
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]),
        "backing off: {waits:?}"
    );
}
