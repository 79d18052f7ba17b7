//! Connections off the happy path, against a tiny misbehaving broker written here: brokers that
//! accept and then drop every client stop the run in seconds naming why; drops mid-run fail the
//! verdict with their reason; a device offline at the end fails it too.

mod common;

use std::time::{Duration, Instant};

use common::fake::{Conn, FakeBroker, suback};
use common::*;
use fleetsim::run::{RunError, RunOptions, run};
use mqtt5_protocol::packet::disconnect::DisconnectPacket;
use mqtt5_protocol::packet::suback::SubAckReasonCode;
use mqtt5_protocol::{Packet, ReasonCode};

const LAMP: &str = "name: lamp\nduration: 10s\ndevices:\n  - { kind: light, id: lamp }\n";

/// Runs `yaml` against `broker`; the error the run stops with, and how long it took.
fn run_error(yaml: &str, broker: &FakeBroker) -> (String, Duration) {
    let mut fleet = fleet_from(yaml);
    fleet.broker = broker.target();
    let started = Instant::now();
    let options = RunOptions {
        threads: 1,
        ..RunOptions::default()
    };
    match run(fleet, &options) {
        Err(e @ RunError::Unreachable { .. }) => (e.to_string(), started.elapsed()),
        other => panic!("expected the run to give up on the broker, got {other:?}"),
    }
}

#[test]
fn a_broker_that_accepts_then_closes_every_client_stops_the_run_in_seconds() {
    let broker = FakeBroker::start(|conn| {
        conn.accept();
        conn.close();
    });
    let (error, took) = run_error(LAMP, &broker);
    assert!(error.contains("closed the connection"), "{error}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    // Five tries, with a backoff between them, not a reconnect every few milliseconds.
    assert_eq!(broker.accepted(), 5);
}

#[test]
fn a_suback_for_another_packet_id_stops_the_run_naming_it() {
    let broker = FakeBroker::start(|conn| {
        conn.accept();
        if let Some(Packet::Subscribe(s)) = conn.expect("SUBSCRIBE") {
            let wrong = s.packet_id.wrapping_add(1).max(1);
            conn.write(&Packet::SubAck(suback(
                wrong,
                vec![SubAckReasonCode::GrantedQoS1],
            )));
        }
        conn.idle();
    });
    let (error, took) = run_error(LAMP, &broker);
    assert!(error.contains("SUBACK for packet id"), "{error}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_suback_with_too_few_reason_codes_stops_the_run_naming_it() {
    let broker = FakeBroker::start(|conn| {
        conn.accept();
        if let Some(Packet::Subscribe(s)) = conn.expect("SUBSCRIBE") {
            let one = vec![SubAckReasonCode::GrantedQoS1];
            conn.write(&Packet::SubAck(suback(s.packet_id, one)));
        }
        conn.idle();
    });
    // With a Will, the lamp subscribes to its command topic and its Will's Response Topic.
    let (error, _) = run_error(
        "name: lamp\nduration: 10s\ndevices:\n  - { kind: light, id: lamp, will: {} }\n",
        &broker,
    );
    assert!(error.contains("reason code count"), "{error}");
}

/// A broker that serves every connection properly, except that `first` plays the first one.
fn serving(first: impl Fn(&mut Conn) + Send + Sync + 'static) -> FakeBroker {
    FakeBroker::start(move |conn| {
        conn.accept();
        conn.grant_subscribe();
        if conn.index == 0 {
            first(conn);
        } else {
            conn.idle();
        }
    })
}

#[test]
fn a_server_disconnect_mid_run_fails_the_verdict_with_its_reason() {
    let broker = serving(|conn| {
        std::thread::sleep(Duration::from_millis(600));
        let payload_invalid = DisconnectPacket::new(ReasonCode::PayloadFormatInvalid);
        conn.write(&Packet::Disconnect(payload_invalid));
        conn.close();
    });
    let mut fleet = fleet_from(&LAMP.replace("10s", "2s"));
    fleet.broker = broker.target();
    let report = run_fleet(fleet);
    let d = &report.devices;
    assert_eq!(d.unplanned_drops, 1, "{d:?}");
    assert_eq!(
        d.drops_by_reason.get("server_disconnect_0x99"),
        Some(&1),
        "{d:?}"
    );
    assert_eq!((d.reconnects, d.offline_at_end), (1, 0), "{d:?}");
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("server_disconnect_0x99")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_device_the_broker_never_takes_back_is_offline_at_the_end() {
    let broker = serving(|conn| {
        std::thread::sleep(Duration::from_millis(700));
        conn.close();
    });
    let mut fleet = fleet_from(&LAMP.replace("10s", "2s"));
    fleet.broker = broker.target();
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(300));
    // From now on every reconnect is refused.
    broker.stop_listening();
    let report = runner.join().expect("run thread");
    let d = &report.devices;
    assert_eq!((d.unplanned_drops, d.offline_at_end), (1, 1), "{d:?}");
    assert_eq!(d.drops_by_reason.get("broker_closed"), Some(&1), "{d:?}");
    // Down from about 0.7 s to the end of a 2 s run, and kept trying: its reconnects back off.
    assert!(d.disconnected_s > 1.0, "{d:?}");
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("offline at the end")),
        "{:?}",
        report.problems
    );
}

/// A broker that sends `poison` (raw bytes) to every connection once it is subscribed, and
/// records the acks the device sends for it: (packet id, reason code).
/// Acks a fake broker saw: (packet id, reason code).
type Acks = std::sync::Arc<std::sync::Mutex<Vec<(u16, u8)>>>;

fn poisoning(poison: Vec<u8>) -> (FakeBroker, Acks) {
    let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = acks.clone();
    let broker = FakeBroker::start(move |conn| {
        conn.accept();
        conn.grant_subscribe();
        let mut bytes = poison.clone();
        if conn.index > 0 {
            bytes[0] |= 0x08; // a redelivery: DUP
        }
        conn.write_raw(&bytes);
        while let Some(packet) = conn.read() {
            match packet {
                Packet::PubAck(ack) => {
                    seen.lock()
                        .unwrap()
                        .push((ack.packet_id, ack.reason_code as u8));
                }
                Packet::PingReq => conn.write(&Packet::PingResp),
                _ => {}
            }
        }
    });
    (broker, acks)
}

fn lamp_on(broker: &FakeBroker) -> fleetsim::report::Report {
    let mut fleet = fleet_from(&LAMP.replace("10s", "2s"));
    fleet.broker = broker.target();
    run_fleet(fleet)
}

#[test]
fn a_poison_message_closes_one_connection_then_is_let_go_instead_of_looping() {
    // QoS 1, packet id 7, topic bytes C3 28 (not UTF-8), no properties, payload "x".
    let (broker, acks) = poisoning(vec![0x32, 8, 0, 2, 0xC3, 0x28, 0, 7, 0, b'x']);
    let report = lamp_on(&broker);
    let d = &report.devices;
    assert_eq!(d.drops_by_reason.get("malformed_packet"), Some(&1), "{d:?}");
    assert_eq!(
        (d.unplanned_drops, d.reconnects, d.poison_dropped),
        (1, 1, 1),
        "{d:?}"
    );
    assert_eq!(broker.accepted(), 2, "one reconnect, not a loop");
    // The redelivery was acknowledged (0x80: not accepted), so the broker can let it go.
    assert_eq!(*acks.lock().unwrap(), [(7, 0x80)]);
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("let go undelivered")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_publish_with_a_topic_alias_never_allowed_is_poison_too() {
    use bytes::Bytes;
    use mqtt5_protocol::QoS;
    use mqtt5_protocol::packet::publish::PublishPacket;
    let mut publish = PublishPacket::new(
        "cmnd/lamp/power",
        Bytes::from_static(b"ON"),
        QoS::AtLeastOnce,
    );
    publish.packet_id = Some(11);
    publish.properties.set_topic_alias(1);
    let mut bytes = bytes::BytesMut::new();
    fleetsim::mqtt::codec::encode(&Packet::Publish(publish), &mut bytes).unwrap();
    let (broker, acks) = poisoning(bytes.to_vec());
    let report = lamp_on(&broker);
    let d = &report.devices;
    assert_eq!(d.drops_by_reason.get("protocol_error"), Some(&1), "{d:?}");
    assert_eq!((d.unplanned_drops, d.poison_dropped), (1, 1), "{d:?}");
    assert_eq!(*acks.lock().unwrap(), [(11, 0x80)]);
    assert_eq!(report.responders.received, 0, "never delivered");
}

#[test]
fn a_puback_for_an_unknown_packet_id_is_a_protocol_error_counted_by_reason() {
    use mqtt5_protocol::packet::puback::PubAckPacket;
    let broker = serving(|conn| {
        conn.write(&Packet::PubAck(PubAckPacket::new(999)));
        conn.idle();
    });
    let report = lamp_on(&broker);
    let d = &report.devices;
    assert_eq!(d.drops_by_reason.get("protocol_error"), Some(&1), "{d:?}");
    assert_eq!(
        (d.unplanned_drops, d.reconnects, d.offline_at_end),
        (1, 1, 0),
        "{d:?}"
    );
    assert!(!report.ok);
}
