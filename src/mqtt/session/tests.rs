//! Unit tests for `Session`: packets in, packets and events out, time passed by hand.

use super::*;
use mqtt5_protocol::packet::suback::SubAckPacket;

const KEEPALIVE: Duration = Duration::from_secs(10);

fn config() -> SessionConfig {
    SessionConfig {
        keepalive: KEEPALIVE,
        ..SessionConfig::new("dev-1")
    }
}

fn connack(session_present: bool, receive_maximum: Option<u16>) -> Packet {
    let mut connack = ConnAckPacket::new(session_present, ReasonCode::Success);
    if let Some(max) = receive_maximum {
        connack = connack.with_receive_maximum(max);
    }
    Packet::ConnAck(connack)
}

/// A session that has sent CONNECT at `now` and got a successful CONNACK.
fn connected(receive_maximum: Option<u16>, now: Instant) -> Session {
    let mut session = Session::new(config());
    session.connect(now);
    let mut out = Vec::new();
    let event = session
        .handle(connack(false, receive_maximum), now, &mut out)
        .unwrap();
    assert!(matches!(event, Some(Event::Connected { .. })));
    assert!(out.is_empty());
    session
}

fn message(tag: u64, qos: QoS) -> Outgoing {
    Outgoing {
        topic: format!("fleet/dev-1/{tag}"),
        payload: Bytes::from(format!("payload {tag}")),
        qos,
        retain: false,
        properties: PublishProperties::default(),
        tag,
    }
}

fn as_publish(packet: &Packet) -> &PublishPacket {
    match packet {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

fn publish_id(packet: &Packet) -> u16 {
    as_publish(packet)
        .packet_id
        .expect("QoS>0 PUBLISH has an id")
}

/// Publishes and expects it to go out right away; returns its packet id.
fn send(session: &mut Session, tag: u64, qos: QoS, now: Instant) -> u16 {
    let packet = session
        .publish(message(tag, qos), now)
        .unwrap()
        .expect("sent now");
    publish_id(&packet)
}

fn handle(session: &mut Session, packet: Packet, now: Instant) -> (Option<Event>, Vec<Packet>) {
    let mut out = Vec::new();
    let event = session.handle(packet, now, &mut out).unwrap();
    (event, out)
}

fn puback(id: u16, reason: ReasonCode) -> Packet {
    Packet::PubAck(PubAckPacket::new_with_reason(id, reason))
}

fn incoming(qos: QoS, id: Option<u16>, dup: bool) -> Packet {
    let mut publish = PublishPacket::new("cmd/dev-1", &b"reboot"[..], qos);
    publish.packet_id = id;
    publish.dup = dup;
    Packet::Publish(publish)
}

#[test]
fn qos1_puback_success_delivers_the_tag() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let id = send(&mut session, 7, QoS::AtLeastOnce, now);
    assert_eq!(session.in_flight(), 1);

    let (event, out) = handle(&mut session, puback(id, ReasonCode::Success), now);
    assert!(matches!(event, Some(Event::Delivered { tag: 7 })));
    assert!(out.is_empty());
    assert_eq!(session.in_flight(), 0);
}

#[test]
fn qos1_puback_not_authorized_is_refused_with_the_reason_string() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let id = send(&mut session, 7, QoS::AtLeastOnce, now);
    let ack = PubAckPacket::new_with_reason(id, ReasonCode::NotAuthorized)
        .with_reason_string("acl".to_owned());

    let (event, _) = handle(&mut session, Packet::PubAck(ack), now);
    match event {
        Some(Event::Refused {
            tag: 7,
            topic,
            reason: ReasonCode::NotAuthorized,
            reason_string,
        }) => {
            assert_eq!(reason_string.as_deref(), Some("acl"));
            assert_eq!(topic, "fleet/dev-1/7");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(session.in_flight(), 0);
}

#[test]
fn qos2_pubrec_sends_pubrel_and_pubcomp_delivers() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let id = send(&mut session, 9, QoS::ExactlyOnce, now);

    let (event, out) = handle(&mut session, Packet::PubRec(PubRecPacket::new(id)), now);
    assert!(event.is_none());
    assert!(matches!(&out[..], [Packet::PubRel(rel)] if rel.packet_id == id));
    assert_eq!(
        session.in_flight(),
        1,
        "QoS 2 stays in flight until PUBCOMP"
    );

    let (event, out) = handle(&mut session, Packet::PubComp(PubCompPacket::new(id)), now);
    assert!(matches!(event, Some(Event::Delivered { tag: 9 })));
    assert!(out.is_empty());
    assert_eq!(session.in_flight(), 0);
}

#[test]
fn qos2_pubrec_error_is_refused_without_pubrel() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let id = send(&mut session, 9, QoS::ExactlyOnce, now);

    let rec = PubRecPacket::new_with_reason(id, ReasonCode::QuotaExceeded);
    let (event, out) = handle(&mut session, Packet::PubRec(rec), now);
    assert!(matches!(
        event,
        Some(Event::Refused {
            tag: 9,
            reason: ReasonCode::QuotaExceeded,
            ..
        })
    ));
    assert!(out.is_empty(), "no PUBREL after a refused PUBREC: {out:?}");
    assert_eq!(session.in_flight(), 0);
}

#[test]
fn qos0_publish_goes_out_at_once_and_produces_no_event() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let packet = session
        .publish(message(1, QoS::AtMostOnce), now)
        .unwrap()
        .expect("sent");
    let publish = as_publish(&packet);
    assert_eq!(publish.packet_id, None);
    assert_eq!(&publish.payload[..], b"payload 1");
    assert_eq!(session.in_flight(), 0);
    assert_eq!(session.queued(), 0);
}

#[test]
fn outgoing_properties_reach_the_publish() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let properties = PublishProperties {
        response_topic: Some("replies/dev-1".to_owned()),
        correlation_data: Some(Bytes::from_static(&[0x00, 0xFF])),
        user_properties: vec![("k".to_owned(), "v".to_owned())],
        message_expiry: Some(5),
        content_type: Some("text/plain".to_owned()),
        payload_format_utf8: true,
    };
    let msg = Outgoing {
        retain: true,
        properties: properties.clone(),
        ..message(1, QoS::AtLeastOnce)
    };
    let packet = session.publish(msg, now).unwrap().expect("sent");
    let publish = as_publish(&packet);
    assert!(publish.retain);
    assert_eq!(PublishProperties::from(&publish.properties), properties);
}

#[test]
fn incoming_qos1_is_delivered_and_acked_with_the_same_id() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let (event, out) = handle(
        &mut session,
        incoming(QoS::AtLeastOnce, Some(321), false),
        now,
    );
    match event {
        Some(Event::Message(p)) => assert_eq!(&p.payload[..], b"reboot"),
        other => panic!("expected Message, got {other:?}"),
    }
    assert!(matches!(
        &out[..],
        [Packet::PubAck(ack)] if ack.packet_id == 321 && ack.reason_code == ReasonCode::Success
    ));
}

#[test]
fn incoming_qos0_is_delivered_without_reply() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let (event, out) = handle(&mut session, incoming(QoS::AtMostOnce, None, false), now);
    assert!(matches!(event, Some(Event::Message(_))));
    assert!(out.is_empty());
}

#[test]
fn incoming_qos2_is_delivered_once_and_completed_on_pubrel() {
    let now = Instant::now();
    let mut session = connected(None, now);

    let (event, out) = handle(
        &mut session,
        incoming(QoS::ExactlyOnce, Some(5), false),
        now,
    );
    assert!(matches!(event, Some(Event::Message(_))));
    assert!(matches!(&out[..], [Packet::PubRec(rec)] if rec.packet_id == 5));

    // The server did not see our PUBREC and sends the PUBLISH again.
    let (event, out) = handle(&mut session, incoming(QoS::ExactlyOnce, Some(5), true), now);
    assert!(event.is_none(), "delivered twice: {event:?}");
    assert!(matches!(&out[..], [Packet::PubRec(rec)] if rec.packet_id == 5));

    let (event, out) = handle(&mut session, Packet::PubRel(PubRelPacket::new(5)), now);
    assert!(event.is_none());
    assert!(matches!(
        &out[..],
        [Packet::PubComp(comp)] if comp.packet_id == 5 && comp.reason_code == ReasonCode::Success
    ));

    // The flow is over: the id may be reused for a new message, which is delivered.
    let (event, _) = handle(
        &mut session,
        incoming(QoS::ExactlyOnce, Some(5), false),
        now,
    );
    assert!(matches!(event, Some(Event::Message(_))));
}

#[test]
fn pubrel_for_an_unknown_id_gets_pubcomp_packet_identifier_not_found() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let (event, out) = handle(&mut session, Packet::PubRel(PubRelPacket::new(77)), now);
    assert!(event.is_none());
    assert!(matches!(
        &out[..],
        [Packet::PubComp(comp)]
            if comp.packet_id == 77 && comp.reason_code == ReasonCode::PacketIdentifierNotFound
    ));
}

#[test]
fn incoming_qos2_beyond_our_receive_maximum_is_an_error() {
    let now = Instant::now();
    let mut session = Session::new(SessionConfig {
        receive_maximum: 1,
        ..config()
    });
    session.connect(now);
    handle(&mut session, connack(false, None), now);
    handle(
        &mut session,
        incoming(QoS::ExactlyOnce, Some(1), false),
        now,
    );
    let err = session
        .handle(
            incoming(QoS::ExactlyOnce, Some(2), false),
            now,
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(matches!(err, ProtocolError::ReceiveMaximumExceeded(1)));
}

#[test]
fn incoming_publish_with_a_topic_alias_is_refused_with_what_letting_it_go_takes() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let mut publish = PublishPacket::new("t", &b"x"[..], QoS::AtLeastOnce).with_topic_alias(1);
    publish.packet_id = Some(5);
    let err = session
        .handle(Packet::Publish(publish.clone()), now, &mut Vec::new())
        .unwrap_err();
    let ProtocolError::BadPublish {
        fingerprint, ack, ..
    } = err
    else {
        panic!("expected BadPublish, got {err:?}");
    };
    assert_eq!(ack, Some((QoS::AtLeastOnce, 5)));
    // The redelivery (DUP) is the same message.
    publish.dup = true;
    let again = session.handle(Packet::Publish(publish), now, &mut Vec::new());
    assert!(
        matches!(again, Err(ProtocolError::BadPublish { fingerprint: f, .. }) if f == fingerprint)
    );
    let Some(Packet::PubAck(ack)) = session.discard(QoS::AtLeastOnce, 5) else {
        panic!("a PUBACK lets it go");
    };
    assert_eq!(
        (ack.packet_id, ack.reason_code),
        (5, ReasonCode::UnspecifiedError)
    );
}

#[test]
fn puback_frees_a_slot_and_releases_the_next_queued_publish() {
    let now = Instant::now();
    let mut session = connected(Some(2), now);
    let first = send(&mut session, 1, QoS::AtLeastOnce, now);
    send(&mut session, 2, QoS::ExactlyOnce, now);
    assert!(
        session
            .publish(message(3, QoS::AtLeastOnce), now)
            .unwrap()
            .is_none()
    );
    // Nothing overtakes the queue, not even QoS 0.
    assert!(
        session
            .publish(message(4, QoS::AtMostOnce), now)
            .unwrap()
            .is_none()
    );
    assert_eq!((session.in_flight(), session.queued()), (2, 2));

    let (event, out) = handle(&mut session, puback(first, ReasonCode::Success), now);
    assert!(matches!(event, Some(Event::Delivered { tag: 1 })));
    let topics: Vec<&str> = out
        .iter()
        .map(|p| as_publish(p).topic_name.as_str())
        .collect();
    assert_eq!(topics, ["fleet/dev-1/3", "fleet/dev-1/4"]);
    assert_eq!((session.in_flight(), session.queued()), (2, 0));
}

#[test]
fn packet_ids_skip_ids_still_in_use_and_wrap_to_1_never_0() {
    let now = Instant::now();
    let mut session = connected(None, now);
    assert_eq!(send(&mut session, 1, QoS::AtLeastOnce, now), 1);
    let (sub_id, _) = session.subscribe(&[("a".to_owned(), QoS::AtLeastOnce)], now);
    assert_eq!(sub_id, 2);

    // Jump near the end of the id space; ids 1 and 2 are still in use.
    session.next_packet_id = 65534;
    assert_eq!(send(&mut session, 2, QoS::AtLeastOnce, now), 65534);
    assert_eq!(send(&mut session, 3, QoS::AtLeastOnce, now), 65535);
    assert_eq!(send(&mut session, 4, QoS::AtLeastOnce, now), 3);

    // Once acknowledged, an id is free again at the next wrap.
    handle(&mut session, puback(1, ReasonCode::Success), now);
    session.next_packet_id = 65535;
    assert_eq!(send(&mut session, 5, QoS::ExactlyOnce, now), 1);
}

#[test]
fn pingreq_after_idle_keepalive() {
    let start = Instant::now();
    let mut session = connected(None, start);
    assert_eq!(session.next_tick(), Some(start + KEEPALIVE));
    assert!(session.tick(start + KEEPALIVE / 2).unwrap().is_none());

    let at = start + KEEPALIVE;
    assert!(matches!(session.tick(at).unwrap(), Some(Packet::PingReq)));
    // Only one PINGREQ outstanding.
    assert!(session.tick(at + Duration::from_secs(1)).unwrap().is_none());

    let (event, _) = handle(&mut session, Packet::PingResp, at + Duration::from_secs(1));
    assert!(matches!(event, Some(Event::PingResponse)));
    assert_eq!(session.next_tick(), Some(at + KEEPALIVE));
    assert!(matches!(
        session.tick(at + KEEPALIVE).unwrap(),
        Some(Packet::PingReq)
    ));
}

#[test]
fn no_pingreq_while_busy() {
    let start = Instant::now();
    let mut session = connected(None, start);
    for second in 1..=30 {
        let now = start + Duration::from_secs(second);
        session
            .publish(message(second, QoS::AtMostOnce), now)
            .unwrap();
        assert!(session.tick(now).unwrap().is_none(), "ping at {second}s");
    }
    // Acks we send count too.
    let now = start + Duration::from_secs(38);
    handle(
        &mut session,
        incoming(QoS::AtLeastOnce, Some(1), false),
        now,
    );
    assert!(
        session
            .tick(start + Duration::from_secs(45))
            .unwrap()
            .is_none()
    );
    assert!(session.tick(now + KEEPALIVE).unwrap().is_some());
}

#[test]
fn keepalive_timeout_when_no_pingresp() {
    let start = Instant::now();
    let mut session = connected(None, start);
    let pinged = start + KEEPALIVE;
    assert!(session.tick(pinged).unwrap().is_some());
    assert_eq!(session.next_tick(), Some(pinged + KEEPALIVE));
    assert!(session.tick(pinged + KEEPALIVE / 2).unwrap().is_none());
    let err = session.tick(pinged + KEEPALIVE).unwrap_err();
    assert!(matches!(err, ProtocolError::KeepaliveTimeout(d) if d == KEEPALIVE));
}

#[test]
fn server_keepalive_overrides_ours_and_zero_disables_it() {
    let now = Instant::now();
    let mut session = Session::new(config());
    session.connect(now);
    let ack = ConnAckPacket::new(false, ReasonCode::Success).with_server_keep_alive(3);
    let (event, _) = handle(&mut session, Packet::ConnAck(ack), now);
    assert!(matches!(
        event,
        Some(Event::Connected {
            server_keepalive: Some(3),
            ..
        })
    ));
    assert_eq!(session.next_tick(), Some(now + Duration::from_secs(3)));

    let mut session = Session::new(SessionConfig {
        keepalive: Duration::ZERO,
        ..config()
    });
    session.connect(now);
    handle(&mut session, connack(false, None), now);
    assert_eq!(session.next_tick(), None);
    assert!(
        session
            .tick(now + Duration::from_secs(3600))
            .unwrap()
            .is_none()
    );
}

#[test]
fn no_tick_before_connack() {
    let now = Instant::now();
    let mut session = Session::new(config());
    assert_eq!(session.next_tick(), None);
    session.connect(now);
    assert_eq!(session.next_tick(), None);
    assert!(session.tick(now + KEEPALIVE * 5).unwrap().is_none());
}

#[test]
fn connect_carries_the_config() {
    let now = Instant::now();
    let will = WillMessage::new("fleet/dev-1/status", b"gone".to_vec());
    let mut session = Session::new(SessionConfig {
        keepalive: Duration::from_millis(1500),
        session_expiry: 300,
        receive_maximum: 8,
        request_response_information: true,
        username: Some("u".to_owned()),
        password: Some(b"p".to_vec()),
        will: Some(Box::new(will)),
        ..config()
    });
    let Packet::Connect(connect) = session.connect(now) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.client_id, "dev-1");
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 2, "1.5 s rounds up to 2 s");
    assert_eq!(connect.properties.get_session_expiry_interval(), Some(300));
    assert_eq!(connect.properties.get_receive_maximum(), Some(8));
    assert_eq!(
        connect.properties.get_request_response_information(),
        Some(true)
    );
    assert_eq!(connect.username.as_deref(), Some("u"));
    assert_eq!(connect.password.as_deref(), Some(&b"p"[..]));
    assert_eq!(
        connect.will.map(|w| w.topic).as_deref(),
        Some("fleet/dev-1/status")
    );
}

#[test]
fn first_connect_uses_clean_start_and_reconnects_resume() {
    let now = Instant::now();
    let mut session = Session::new(config());
    let clean_start = |packet: Packet| match packet {
        Packet::Connect(c) => c.clean_start,
        other => panic!("not a CONNECT: {other:?}"),
    };
    assert!(clean_start(session.connect(now)));
    // Refused: nothing to resume yet, so the next attempt still starts clean.
    let refused = ConnAckPacket::new(false, ReasonCode::ServerBusy);
    handle(&mut session, Packet::ConnAck(refused), now);
    assert!(clean_start(session.connect(now)));

    handle(&mut session, connack(false, None), now);
    session.connection_lost();
    assert!(!clean_start(session.connect(now)));
}

#[test]
fn assigned_client_id_is_used_for_reconnects() {
    let now = Instant::now();
    let mut session = Session::new(SessionConfig::new(""));
    session.connect(now);
    let ack = ConnAckPacket::new(false, ReasonCode::Success)
        .with_assigned_client_id("auto-42".to_owned())
        .with_response_information("replies/auto-42/".to_owned());
    let (event, _) = handle(&mut session, Packet::ConnAck(ack), now);
    match event {
        Some(Event::Connected {
            assigned_client_id,
            response_information,
            server_receive_maximum,
            ..
        }) => {
            assert_eq!(assigned_client_id.as_deref(), Some("auto-42"));
            assert_eq!(response_information.as_deref(), Some("replies/auto-42/"));
            assert_eq!(server_receive_maximum, 65535);
        }
        other => panic!("expected Connected, got {other:?}"),
    }
    assert_eq!(session.client_id(), "auto-42");
    session.connection_lost();
    let Packet::Connect(connect) = session.connect(now) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.client_id, "auto-42");
}

/// Leaves: tag 1 QoS 1 awaiting PUBACK, tag 2 QoS 2 awaiting PUBCOMP, tag 3 QoS 2 awaiting
/// PUBREC; then the connection drops.
fn session_with_three_flows(now: Instant) -> (Session, [u16; 3]) {
    let mut session = connected(None, now);
    let a = send(&mut session, 1, QoS::AtLeastOnce, now);
    let b = send(&mut session, 2, QoS::ExactlyOnce, now);
    let c = send(&mut session, 3, QoS::ExactlyOnce, now);
    handle(&mut session, Packet::PubRec(PubRecPacket::new(b)), now);
    session.connection_lost();
    assert!(!session.is_connected());
    assert_eq!(session.in_flight(), 3);
    (session, [a, b, c])
}

#[test]
fn reconnect_with_session_present_resends_in_flight_with_dup_and_same_ids() {
    let now = Instant::now();
    let (mut session, [a, b, c]) = session_with_three_flows(now);
    session.connect(now);
    let (event, out) = handle(&mut session, connack(true, None), now);
    assert!(matches!(
        event,
        Some(Event::Connected {
            session_present: true,
            ..
        })
    ));
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(as_publish(&out[0]).dup);
    assert_eq!(publish_id(&out[0]), a);
    assert!(matches!(&out[1], Packet::PubRel(rel) if rel.packet_id == b));
    assert!(as_publish(&out[2]).dup);
    assert_eq!(publish_id(&out[2]), c);

    // The resumed flows complete normally.
    let (event, _) = handle(&mut session, Packet::PubComp(PubCompPacket::new(b)), now);
    assert!(matches!(event, Some(Event::Delivered { tag: 2 })));
}

#[test]
fn reconnect_without_session_resends_in_flight_fresh() {
    let now = Instant::now();
    let (mut session, _) = session_with_three_flows(now);
    // A publish made while offline waits behind the old flows.
    assert!(
        session
            .publish(message(4, QoS::AtLeastOnce), now)
            .unwrap()
            .is_none()
    );
    session.connect(now);
    let (_, out) = handle(&mut session, connack(false, Some(3)), now);

    let tags: Vec<&str> = out
        .iter()
        .map(|p| as_publish(p).topic_name.as_str())
        .collect();
    assert_eq!(tags, ["fleet/dev-1/1", "fleet/dev-1/2", "fleet/dev-1/3"]);
    assert!(out.iter().all(|p| !as_publish(p).dup));
    assert_eq!((session.in_flight(), session.queued()), (3, 1));

    // The QoS 2 flow that had reached PUBREC starts again from PUBLISH.
    let id = publish_id(&out[1]);
    let (_, replies) = handle(&mut session, Packet::PubRec(PubRecPacket::new(id)), now);
    assert!(matches!(&replies[..], [Packet::PubRel(_)]));
}

#[test]
fn session_loss_forgets_incoming_qos2_awaiting_pubrel() {
    let now = Instant::now();
    let mut session = connected(None, now);
    handle(
        &mut session,
        incoming(QoS::ExactlyOnce, Some(5), false),
        now,
    );
    session.connection_lost();
    session.connect(now);
    handle(&mut session, connack(false, None), now);
    let (event, _) = handle(
        &mut session,
        incoming(QoS::ExactlyOnce, Some(5), false),
        now,
    );
    assert!(matches!(event, Some(Event::Message(_))));
}

#[test]
fn publishes_while_disconnected_are_queued_until_connack() {
    let now = Instant::now();
    let mut session = Session::new(config());
    assert!(
        session
            .publish(message(1, QoS::AtMostOnce), now)
            .unwrap()
            .is_none()
    );
    assert!(
        session
            .publish(message(2, QoS::AtLeastOnce), now)
            .unwrap()
            .is_none()
    );
    session.connect(now);
    assert!(
        session
            .publish(message(3, QoS::AtLeastOnce), now)
            .unwrap()
            .is_none()
    );
    assert_eq!(session.queued(), 3);

    let (_, out) = handle(&mut session, connack(false, None), now);
    let topics: Vec<&str> = out
        .iter()
        .map(|p| as_publish(p).topic_name.as_str())
        .collect();
    assert_eq!(topics, ["fleet/dev-1/1", "fleet/dev-1/2", "fleet/dev-1/3"]);
    assert_eq!((session.in_flight(), session.queued()), (2, 0));
}

#[test]
fn connack_refusal_is_connect_refused() {
    let now = Instant::now();
    let mut session = Session::new(config());
    session.connect(now);
    let ack = ConnAckPacket::new(false, ReasonCode::BadUsernameOrPassword)
        .with_reason_string("who are you".to_owned());
    let (event, _) = handle(&mut session, Packet::ConnAck(ack), now);
    match event {
        Some(Event::ConnectRefused {
            reason: ReasonCode::BadUsernameOrPassword,
            reason_string,
        }) => assert_eq!(reason_string.as_deref(), Some("who are you")),
        other => panic!("expected ConnectRefused, got {other:?}"),
    }
    assert!(!session.is_connected());
}

#[test]
fn anything_before_connack_is_unexpected() {
    let now = Instant::now();
    for packet in [
        incoming(QoS::AtMostOnce, None, false),
        Packet::PingResp,
        Packet::Disconnect(DisconnectPacket::normal()),
    ] {
        let mut session = Session::new(config());
        session.connect(now);
        let mut out = Vec::new();
        let err = session.handle(packet, now, &mut out).unwrap_err();
        assert!(matches!(err, ProtocolError::Unexpected(_)), "{err}");
        assert!(out.is_empty());
    }
    // Before CONNECT, even CONNACK is out of place.
    let mut session = Session::new(config());
    let err = session
        .handle(connack(false, None), now, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Unexpected("CONNACK")));
}

#[test]
fn client_only_packets_and_a_second_connack_are_unexpected() {
    let now = Instant::now();
    for packet in [
        connack(false, None),
        Packet::PingReq,
        Packet::Subscribe(SubscribePacket::new(1).add_filter("a", QoS::AtMostOnce)),
    ] {
        let mut session = connected(None, now);
        let err = session.handle(packet, now, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, ProtocolError::Unexpected(_)), "{err}");
    }
}

#[test]
fn acks_for_unknown_flows_are_errors() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let qos2 = send(&mut session, 1, QoS::ExactlyOnce, now);
    for packet in [
        puback(999, ReasonCode::Success),
        puback(qos2, ReasonCode::Success), // PUBACK for a QoS 2 flow
        Packet::PubComp(PubCompPacket::new(qos2)), // PUBCOMP before PUBREC
        Packet::SubAck(SubAckPacket::new(5).add_granted_qos(QoS::AtMostOnce)),
    ] {
        let err = session.handle(packet, now, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, ProtocolError::UnknownPacketId { .. }),
            "{err}"
        );
    }
    assert_eq!(session.in_flight(), 1, "errors leave the flow alone");
}

#[test]
fn suback_reports_the_codes_in_order() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let filters = [
        ("cmd/dev-1/#".to_owned(), QoS::AtLeastOnce),
        ("secret/#".to_owned(), QoS::AtLeastOnce),
    ];
    let (id, packet) = session.subscribe(&filters, now);
    let Packet::Subscribe(subscribe) = &packet else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(subscribe.packet_id, id);
    assert_eq!(subscribe.filters.len(), 2);
    assert_eq!(subscribe.filters[1].filter, "secret/#");
    assert_eq!(subscribe.filters[1].options.qos, QoS::AtLeastOnce);
    assert!(!subscribe.filters[1].options.no_local);

    let suback = SubAckPacket::new(id)
        .add_reason_code(SubAckReasonCode::GrantedQoS1)
        .add_reason_code(SubAckReasonCode::NotAuthorized);
    let (event, _) = handle(&mut session, Packet::SubAck(suback), now);
    match event {
        Some(Event::Subscribed { packet_id, reasons }) => {
            assert_eq!(packet_id, id);
            assert_eq!(
                reasons,
                [
                    SubAckReasonCode::GrantedQoS1,
                    SubAckReasonCode::NotAuthorized
                ]
            );
        }
        other => panic!("expected Subscribed, got {other:?}"),
    }
}

#[test]
fn suback_with_the_wrong_number_of_codes_is_unexpected() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let (id, _) = session.subscribe(&[("a".to_owned(), QoS::AtMostOnce)], now);
    let suback = SubAckPacket::new(id)
        .add_granted_qos(QoS::AtMostOnce)
        .add_granted_qos(QoS::AtMostOnce);
    let err = session
        .handle(Packet::SubAck(suback), now, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Unexpected(_)));
}

#[test]
fn server_disconnect_is_reported_and_ends_the_connection() {
    let now = Instant::now();
    let mut session = connected(None, now);
    send(&mut session, 1, QoS::AtLeastOnce, now);
    let disconnect = DisconnectPacket::new(ReasonCode::ServerShuttingDown)
        .with_reason_string("maintenance".to_owned());
    let (event, _) = handle(&mut session, Packet::Disconnect(disconnect), now);
    match event {
        Some(Event::ServerDisconnect {
            reason: ReasonCode::ServerShuttingDown,
            reason_string,
        }) => assert_eq!(reason_string.as_deref(), Some("maintenance")),
        other => panic!("expected ServerDisconnect, got {other:?}"),
    }
    assert!(!session.is_connected());
    assert_eq!(session.in_flight(), 1, "kept for the next connection");
    assert!(
        session
            .publish(message(2, QoS::AtMostOnce), now)
            .unwrap()
            .is_none()
    );
}

#[test]
fn our_disconnect_carries_the_reason_and_ends_the_connection() {
    let now = Instant::now();
    let mut session = connected(None, now);
    let packet = session.disconnect(ReasonCode::DisconnectWithWillMessage);
    assert!(matches!(
        packet,
        Packet::Disconnect(d) if d.reason_code == ReasonCode::DisconnectWithWillMessage
    ));
    assert!(!session.is_connected());
    assert_eq!(session.next_tick(), None);
}

#[test]
fn connack_with_receive_maximum_zero_is_unexpected() {
    let now = Instant::now();
    let mut session = Session::new(config());
    session.connect(now);
    let err = session
        .handle(connack(false, Some(0)), now, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Unexpected(_)));
}

#[test]
fn goodbye_ends_a_persistent_session_and_leaves_a_volatile_one_alone() {
    let mut config = SessionConfig::new("dev");
    config.session_expiry = 300;
    let mut session = Session::new(config);
    let Packet::Disconnect(goodbye) = session.disconnect_ending_session() else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(goodbye.reason_code, ReasonCode::Success);
    assert_eq!(goodbye.properties.get_session_expiry_interval(), Some(0));

    let mut volatile = Session::new(SessionConfig::new("dev"));
    let Packet::Disconnect(goodbye) = volatile.disconnect_ending_session() else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(goodbye.properties.get_session_expiry_interval(), None);
}

#[test]
fn each_connect_carries_the_will_set_for_it() {
    let mut session = Session::new(SessionConfig::new("dev"));
    let will = |correlation: &'static [u8]| {
        let mut will = WillMessage::new("status/dev", b"offline".to_vec());
        will.properties.correlation_data = Some(correlation.to_vec());
        will.properties.response_topic = Some("will-ack/dev".into());
        will
    };
    session.set_will(Some(Box::new(will(b"dev#1"))));
    let Packet::Connect(first) = session.connect(Instant::now()) else {
        panic!("not a CONNECT");
    };
    session.set_will(Some(Box::new(will(b"dev#2"))));
    let Packet::Connect(second) = session.connect(Instant::now()) else {
        panic!("not a CONNECT");
    };
    let correlation = |c: &ConnectPacket| match c.will_properties.get(PropertyId::CorrelationData) {
        Some(PropertyValue::BinaryData(data)) => data.clone(),
        other => panic!("no correlation data: {other:?}"),
    };
    assert_eq!(&correlation(&first)[..], b"dev#1");
    assert_eq!(&correlation(&second)[..], b"dev#2");
}

#[test]
fn withheld_acks_deliver_the_message_but_acknowledge_nothing() {
    let now = Instant::now();
    let mut session = connected(None, now);
    assert_eq!(session.withhold_acks(true), 0);
    let mut publish = PublishPacket::new("cmd", Bytes::from_static(b"on"), QoS::AtLeastOnce);
    publish.packet_id = Some(5);
    let (event, out) = handle(&mut session, Packet::Publish(publish.clone()), now);
    assert!(matches!(event, Some(Event::Message(_))));
    assert!(out.is_empty(), "no PUBACK: {out:?}");
    let mut qos2 = PublishPacket::new("cmd", Bytes::from_static(b"on"), QoS::ExactlyOnce);
    qos2.packet_id = Some(6);
    let (event, out) = handle(&mut session, Packet::Publish(qos2), now);
    assert!(matches!(event, Some(Event::Message(_))));
    assert!(out.is_empty(), "no PUBREC: {out:?}");
    assert_eq!(session.withhold_acks(false), 2);
    let (_, out) = handle(&mut session, Packet::Publish(publish), now);
    assert!(matches!(&out[..], [Packet::PubAck(ack)] if ack.packet_id == 5));
}

#[test]
fn the_queue_of_unsent_publishes_is_bounded_and_drains_on_connack() {
    let now = Instant::now();
    let mut session = Session::new(config());
    for tag in 0..MAX_QUEUED as u64 {
        let queued = session.publish(message(tag, QoS::AtLeastOnce), now);
        assert!(matches!(queued, Ok(None)), "{queued:?}");
    }
    assert!(session.queue_full());
    let refused = session.publish(message(9999, QoS::AtLeastOnce), now);
    assert!(
        matches!(refused, Err(PublishError::QueueFull)),
        "{refused:?}"
    );
    assert_eq!(session.queued(), MAX_QUEUED);
    session.connect(now);
    // Mosquitto's in-flight limit: 20 go out at CONNACK, the rest wait, in order.
    let (_, out) = handle(&mut session, connack(false, Some(20)), now);
    assert_eq!(out.len(), 20);
    assert_eq!(as_publish(&out[0]).topic_name, "fleet/dev-1/0");
    assert_eq!(session.queued(), MAX_QUEUED - 20);
    assert!(!session.queue_full());
}

#[test]
fn a_publish_over_the_servers_maximum_packet_size_is_refused_here_and_never_sent() {
    let now = Instant::now();
    let mut session = Session::new(SessionConfig {
        maximum_packet_size: 4096,
        ..config()
    });
    let Packet::Connect(connect) = session.connect(now) else {
        panic!("CONNECT expected");
    };
    assert_eq!(
        connect.properties.get_maximum_packet_size(),
        Some(4096),
        "ours, announced"
    );
    let mut connack = ConnAckPacket::new(false, ReasonCode::Success);
    connack.properties.set_maximum_packet_size(100);
    let (_, _) = handle(&mut session, Packet::ConnAck(connack), now);
    let mut big = message(1, QoS::AtLeastOnce);
    big.payload = Bytes::from(vec![b'x'; 100]);
    let refused = session.publish(big, now);
    assert!(
        matches!(refused, Err(PublishError::TooLarge { size, max: 100 }) if size > 100),
        "{refused:?}"
    );
    assert_eq!(
        (session.in_flight(), session.queued()),
        (0, 0),
        "nothing kept to resend"
    );
    // Exactly at the limit goes out.
    let mut fits = message(2, QoS::AtLeastOnce);
    let overhead = crate::mqtt::codec::publish_size(&PublishPacket::new(
        fits.topic.clone(),
        Bytes::new(),
        QoS::AtLeastOnce,
    ));
    fits.payload = Bytes::from(vec![b'x'; 100 - overhead]);
    assert!(session.publish(fits, now).unwrap().is_some());
}
