//! Framing: turns a byte stream into `mqtt5_protocol::Packet`s and back (MQTT 5 only).
//!
//! `mqtt5_protocol` decodes a packet body once it has all of it; this module adds what a stream
//! needs around that: waiting for a complete frame, refusing oversize frames before buffering
//! them, and rejecting frames whose body has bytes the packet decoder did not consume.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mqtt5_protocol::packet::MqttPacket;
use mqtt5_protocol::{FixedHeader, MqttError, Packet, PacketType};
use tokio_util::codec::{Decoder, Encoder};

/// The only protocol version this codec speaks.
const PROTOCOL_VERSION: u8 = 5;

/// Default cap on an incoming packet. MQTT allows 256 MiB; a simulated device never needs that,
/// and a cap this size still fits any realistic payload while bounding what one bad frame costs.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 16 * 1024 * 1024;

/// A remaining length is at most 4 bytes of variable byte integer (MQTT 5 section 1.5.5).
const MAX_REMAINING_LENGTH_BYTES: usize = 4;

/// tokio-util codec: bytes <-> mqtt5_protocol::Packet (MQTT 5 only).
///
/// `max_packet_size` bounds the whole incoming packet (fixed header included, the way MQTT's
/// Maximum Packet Size counts). It does not apply to what we encode: what the server accepts is
/// its own Maximum Packet Size, which is the session's business, not the framing's.
#[derive(Debug, Clone)]
pub struct MqttCodec {
    max_packet_size: usize,
}

impl MqttCodec {
    pub fn new(max_packet_size: usize) -> Self {
        Self { max_packet_size }
    }

    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }
}

impl Default for MqttCodec {
    /// Uses [`DEFAULT_MAX_PACKET_SIZE`] (16 MiB).
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PACKET_SIZE)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    TooLarge { size: usize, max: usize },
}

impl From<MqttError> for CodecError {
    fn from(err: MqttError) -> Self {
        Self::Malformed(err.to_string())
    }
}

/// What the fixed header says, parsed without consuming anything.
pub(super) struct Frame {
    pub packet_type: PacketType,
    pub flags: u8,
    pub header_len: usize,
    pub remaining_length: usize,
}

impl Frame {
    pub fn total_len(&self) -> usize {
        self.header_len + self.remaining_length
    }
}

/// Parses the fixed header at the start of `src`. `Ok(None)` means more bytes are needed.
///
/// Done by hand rather than with `FixedHeader::decode` because that one cannot tell "not enough
/// bytes yet" from "malformed", and a stream decoder must know the difference.
pub(super) fn peek_fixed_header(src: &[u8]) -> Result<Option<Frame>, CodecError> {
    let Some(&first) = src.first() else {
        return Ok(None);
    };
    let type_bits = first >> 4;
    let packet_type = PacketType::from_u8(type_bits)
        .ok_or_else(|| CodecError::Malformed(format!("invalid packet type {type_bits}")))?;

    let mut remaining_length = 0usize;
    for i in 0..MAX_REMAINING_LENGTH_BYTES {
        let Some(&byte) = src.get(1 + i) else {
            return Ok(None);
        };
        remaining_length |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(Frame {
                packet_type,
                flags: first & 0x0F,
                header_len: 2 + i,
                remaining_length,
            }));
        }
    }
    Err(CodecError::Malformed(
        "remaining length is longer than 4 bytes".to_owned(),
    ))
}

impl Decoder for MqttCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        let Some(frame) = peek_fixed_header(src)? else {
            return Ok(None);
        };
        let total = frame.total_len();
        if total > self.max_packet_size {
            return Err(CodecError::TooLarge {
                size: total,
                max: self.max_packet_size,
            });
        }
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }

        // Freezing the frame lets the PUBLISH payload be a slice of it instead of a copy.
        decode_frame(&frame, src.split_to(total).freeze()).map(Some)
    }
}

/// Decodes one whole frame (`bytes`, fixed header included) that `frame` describes.
pub(super) fn decode_frame(frame: &Frame, bytes: Bytes) -> Result<Packet, CodecError> {
    let mut body = bytes;
    body.advance(frame.header_len);
    let remaining_length = u32::try_from(frame.remaining_length)
        .map_err(|_| CodecError::Malformed("remaining length overflows u32".to_owned()))?;
    let header = FixedHeader::new(frame.packet_type, frame.flags, remaining_length);
    let packet = Packet::decode_from_body_with_version(
        frame.packet_type,
        &header,
        &mut body,
        PROTOCOL_VERSION,
    )?;
    // The body decoders stop once they have what they need (PINGREQ reads nothing at all),
    // so leftover bytes mean the remaining length disagrees with the content.
    if body.has_remaining() {
        return Err(CodecError::Malformed(format!(
            "{} has {} unexpected trailing bytes",
            packet.packet_type_name(),
            body.remaining()
        )));
    }
    Ok(packet)
}

impl Encoder<Packet> for MqttCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode(&packet, dst)
    }
}

/// What a client writes: a packet, or raw bytes, for faults that must put on the wire what no
/// well-formed packet would (a malformed packet, to see the broker close the connection).
#[derive(Debug, Clone)]
pub enum Outbound {
    Packet(Packet),
    Raw(Bytes),
}

impl Encoder<Outbound> for MqttCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Outbound, dst: &mut BytesMut) -> Result<(), CodecError> {
        match item {
            Outbound::Packet(packet) => encode(&packet, dst),
            Outbound::Raw(bytes) => {
                dst.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }
}

/// How many bytes this PUBLISH takes on the wire, fixed header included: what MQTT's Maximum
/// Packet Size limits.
pub fn publish_size(publish: &mqtt5_protocol::packet::publish::PublishPacket) -> usize {
    let body = publish.body_encoded_size();
    let remaining = u32::try_from(body).unwrap_or(u32::MAX);
    FixedHeader::new(PacketType::Publish, publish.flags(), remaining).encoded_len() + body
}

/// Appends the wire form of `packet` to `dst`. PINGREQ/PINGRESP are 2 bytes.
pub fn encode(packet: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
    match packet {
        Packet::Connect(p) => p.encode(dst)?,
        Packet::ConnAck(p) => p.encode(dst)?,
        Packet::Publish(p) => {
            // The generic `MqttPacket::encode` builds the body in a Vec and copies it; publishes
            // are the bulk of the traffic, so size them up front and write once.
            let body_len = p.body_encoded_size();
            let remaining = u32::try_from(body_len).map_err(|_| CodecError::TooLarge {
                size: body_len,
                max: u32::MAX as usize,
            })?;
            let header = FixedHeader::new(PacketType::Publish, p.flags(), remaining);
            dst.reserve(header.encoded_len() + body_len);
            header.encode(dst)?;
            p.encode_body_direct(dst)?;
        }
        Packet::PubAck(p) => p.encode(dst)?,
        Packet::PubRec(p) => p.encode(dst)?,
        Packet::PubRel(p) => p.encode(dst)?,
        Packet::PubComp(p) => p.encode(dst)?,
        Packet::Subscribe(p) => p.encode(dst)?,
        Packet::SubAck(p) => p.encode(dst)?,
        Packet::Unsubscribe(p) => p.encode(dst)?,
        Packet::UnsubAck(p) => p.encode(dst)?,
        Packet::PingReq => dst.put_slice(&[u8::from(PacketType::PingReq) << 4, 0]),
        Packet::PingResp => dst.put_slice(&[u8::from(PacketType::PingResp) << 4, 0]),
        Packet::Disconnect(p) => p.encode(dst)?,
        Packet::Auth(p) => p.encode(dst)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::session::PublishProperties;
    use bytes::Bytes;
    use mqtt5_protocol::packet::connack::ConnAckPacket;
    use mqtt5_protocol::packet::connect::ConnectPacket;
    use mqtt5_protocol::packet::disconnect::DisconnectPacket;
    use mqtt5_protocol::packet::puback::PubAckPacket;
    use mqtt5_protocol::packet::pubcomp::PubCompPacket;
    use mqtt5_protocol::packet::publish::PublishPacket;
    use mqtt5_protocol::packet::pubrec::PubRecPacket;
    use mqtt5_protocol::packet::pubrel::PubRelPacket;
    use mqtt5_protocol::packet::suback::{SubAckPacket, SubAckReasonCode};
    use mqtt5_protocol::packet::subscribe::{
        RetainHandling, SubscribePacket, SubscriptionOptions, TopicFilter,
    };
    use mqtt5_protocol::{
        ConnectOptions, Properties, PropertyId, PropertyValue, QoS, ReasonCode, WillMessage,
    };
    use std::time::Duration;

    fn to_bytes(packet: &Packet) -> BytesMut {
        let mut buf = BytesMut::new();
        encode(packet, &mut buf).unwrap();
        buf
    }

    /// Encodes, decodes, and checks the decoder consumed exactly the frame.
    fn round_trip(packet: Packet) -> Packet {
        let mut buf = to_bytes(&packet);
        let decoded = MqttCodec::default().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty(), "decoder left {} bytes", buf.len());
        decoded
    }

    fn string_prop(props: &Properties, id: PropertyId) -> Option<&str> {
        match props.get(id) {
            Some(PropertyValue::Utf8String(s)) => Some(s),
            _ => None,
        }
    }

    fn user_props(props: &Properties) -> Vec<(String, String)> {
        PublishProperties::from(props).user_properties
    }

    #[test]
    fn connect_round_trips_with_will_and_credentials() {
        let mut will = WillMessage::new("fleet/dev-1/status", b"offline".to_vec())
            .with_qos(QoS::AtLeastOnce)
            .with_retain(true);
        will.properties.will_delay_interval = Some(5);
        will.properties.message_expiry_interval = Some(60);
        will.properties.response_topic = Some("fleet/dev-1/will-reply".to_owned());
        will.properties.correlation_data = Some(vec![0x00, 0xFF, 0x10]);
        will.properties.user_properties = vec![("k".to_owned(), "v".to_owned())];

        let mut options = ConnectOptions::new("dev-1")
            .with_keep_alive(Duration::from_secs(30))
            .with_clean_start(true)
            .with_session_expiry_interval(3600)
            .with_receive_maximum(20)
            .with_credentials("user", b"p\x00ss")
            .with_will(will);
        options.properties.request_response_information = Some(true);
        options.properties.user_properties = vec![("fleet".to_owned(), "a".to_owned())];

        let Packet::Connect(c) = round_trip(Packet::Connect(Box::new(ConnectPacket::new(options))))
        else {
            panic!("not a CONNECT");
        };
        assert_eq!(c.protocol_version, 5);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 30);
        assert_eq!(c.client_id, "dev-1");
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some(&b"p\x00ss"[..]));
        assert_eq!(c.properties.get_session_expiry_interval(), Some(3600));
        assert_eq!(c.properties.get_receive_maximum(), Some(20));
        assert_eq!(c.properties.get_request_response_information(), Some(true));
        assert_eq!(
            user_props(&c.properties),
            [("fleet".to_owned(), "a".to_owned())]
        );

        let will = c.will.expect("will");
        assert_eq!(will.topic, "fleet/dev-1/status");
        assert_eq!(will.payload, b"offline");
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(will.retain);
        assert_eq!(will.properties.will_delay_interval, Some(5));
        assert_eq!(will.properties.message_expiry_interval, Some(60));
        assert_eq!(
            will.properties.response_topic.as_deref(),
            Some("fleet/dev-1/will-reply")
        );
        assert_eq!(
            will.properties.correlation_data.as_deref(),
            Some(&[0x00, 0xFF, 0x10][..])
        );
        assert_eq!(
            will.properties.user_properties,
            [("k".to_owned(), "v".to_owned())]
        );
    }

    #[test]
    fn connack_round_trips_with_properties() {
        let connack = ConnAckPacket::new(true, ReasonCode::Success)
            .with_receive_maximum(2)
            .with_response_information("replies/dev-1/".to_owned())
            .with_server_keep_alive(15)
            .with_reason_string("welcome".to_owned());
        let Packet::ConnAck(c) = round_trip(Packet::ConnAck(connack)) else {
            panic!("not a CONNACK");
        };
        assert!(c.session_present);
        assert_eq!(c.reason_code, ReasonCode::Success);
        assert_eq!(c.receive_maximum(), Some(2));
        assert_eq!(c.properties.get_server_keep_alive(), Some(15));
        assert_eq!(
            string_prop(&c.properties, PropertyId::ResponseInformation),
            Some("replies/dev-1/")
        );
        assert_eq!(
            string_prop(&c.properties, PropertyId::ReasonString),
            Some("welcome")
        );

        let refused = ConnAckPacket::new(false, ReasonCode::NotAuthorized);
        let Packet::ConnAck(c) = round_trip(Packet::ConnAck(refused)) else {
            panic!("not a CONNACK");
        };
        assert!(!c.session_present);
        assert_eq!(c.reason_code, ReasonCode::NotAuthorized);
    }

    fn request_properties() -> PublishProperties {
        PublishProperties {
            response_topic: Some("replies/dev-1".to_owned()),
            correlation_data: Some(Bytes::from_static(&[0x00, 0xFF, 0x7F, 0x00, 0xFF])),
            user_properties: vec![
                ("trace".to_owned(), "1".to_owned()),
                ("trace".to_owned(), "2".to_owned()),
            ],
            message_expiry: Some(30),
            content_type: Some("application/json".to_owned()),
            payload_format_utf8: true,
        }
    }

    #[test]
    fn publish_round_trips_at_every_qos_with_request_properties() {
        for (qos, id) in [
            (QoS::AtMostOnce, None),
            (QoS::AtLeastOnce, Some(7)),
            (QoS::ExactlyOnce, Some(65535)),
        ] {
            let mut publish = PublishPacket::new("cmd/dev-1", &b"{\"on\":true}"[..], qos);
            publish.packet_id = id;
            publish.retain = true;
            publish.dup = qos != QoS::AtMostOnce;
            publish.properties = request_properties().into();

            let Packet::Publish(p) = round_trip(Packet::Publish(publish)) else {
                panic!("not a PUBLISH");
            };
            assert_eq!(p.topic_name, "cmd/dev-1");
            assert_eq!(&p.payload[..], b"{\"on\":true}");
            assert_eq!(p.qos, qos);
            assert_eq!(p.packet_id, id);
            assert!(p.retain);
            assert_eq!(p.dup, qos != QoS::AtMostOnce);
            assert_eq!(PublishProperties::from(&p.properties), request_properties());
        }
    }

    #[test]
    fn publish_acks_round_trip_with_error_reasons() {
        let puback = PubAckPacket::new_with_reason(1, ReasonCode::NotAuthorized)
            .with_reason_string("no".to_owned());
        let Packet::PubAck(p) = round_trip(Packet::PubAck(puback)) else {
            panic!("not a PUBACK");
        };
        assert_eq!((p.packet_id, p.reason_code), (1, ReasonCode::NotAuthorized));
        assert_eq!(
            string_prop(&p.properties, PropertyId::ReasonString),
            Some("no")
        );

        let pubrec = PubRecPacket::new_with_reason(2, ReasonCode::QuotaExceeded);
        let Packet::PubRec(p) = round_trip(Packet::PubRec(pubrec)) else {
            panic!("not a PUBREC");
        };
        assert_eq!((p.packet_id, p.reason_code), (2, ReasonCode::QuotaExceeded));

        let pubrel = PubRelPacket::new_with_reason(3, ReasonCode::PacketIdentifierNotFound);
        let Packet::PubRel(p) = round_trip(Packet::PubRel(pubrel)) else {
            panic!("not a PUBREL");
        };
        assert_eq!(
            (p.packet_id, p.reason_code),
            (3, ReasonCode::PacketIdentifierNotFound)
        );

        let pubcomp = PubCompPacket::new_with_reason(4, ReasonCode::PacketIdentifierNotFound);
        let Packet::PubComp(p) = round_trip(Packet::PubComp(pubcomp)) else {
            panic!("not a PUBCOMP");
        };
        assert_eq!(
            (p.packet_id, p.reason_code),
            (4, ReasonCode::PacketIdentifierNotFound)
        );
    }

    #[test]
    fn subscribe_round_trips_several_filters_with_options() {
        let options = SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        };
        let subscribe = SubscribePacket::new(10)
            .add_filter("cmd/dev-1/#", QoS::AtLeastOnce)
            .add_filter("fleet/+/status", QoS::AtMostOnce)
            .add_filter_with_options(TopicFilter::with_options("$share/g/jobs", options));
        let Packet::Subscribe(s) = round_trip(Packet::Subscribe(subscribe)) else {
            panic!("not a SUBSCRIBE");
        };
        assert_eq!(s.packet_id, 10);
        assert_eq!(
            s.filters,
            [
                TopicFilter::new("cmd/dev-1/#", QoS::AtLeastOnce),
                TopicFilter::new("fleet/+/status", QoS::AtMostOnce),
                TopicFilter::with_options("$share/g/jobs", options),
            ]
        );
    }

    #[test]
    fn suback_round_trips_mixed_reason_codes() {
        let suback = SubAckPacket::new(10)
            .add_reason_code(SubAckReasonCode::GrantedQoS1)
            .add_reason_code(SubAckReasonCode::NotAuthorized)
            .add_reason_code(SubAckReasonCode::GrantedQoS0);
        let Packet::SubAck(s) = round_trip(Packet::SubAck(suback)) else {
            panic!("not a SUBACK");
        };
        assert_eq!(s.packet_id, 10);
        assert_eq!(
            s.reason_codes,
            [
                SubAckReasonCode::GrantedQoS1,
                SubAckReasonCode::NotAuthorized,
                SubAckReasonCode::GrantedQoS0
            ]
        );
    }

    #[test]
    fn pings_are_two_bytes_and_round_trip() {
        assert_eq!(&to_bytes(&Packet::PingReq)[..], [0xC0, 0x00]);
        assert_eq!(&to_bytes(&Packet::PingResp)[..], [0xD0, 0x00]);
        assert!(matches!(round_trip(Packet::PingReq), Packet::PingReq));
        assert!(matches!(round_trip(Packet::PingResp), Packet::PingResp));
    }

    #[test]
    fn disconnect_round_trips_normal_and_with_will_and_reason_string() {
        let normal = Packet::Disconnect(DisconnectPacket::normal());
        assert_eq!(&to_bytes(&normal)[..], [0xE0, 0x00]);
        let Packet::Disconnect(d) = round_trip(normal) else {
            panic!("not a DISCONNECT");
        };
        assert_eq!(d.reason_code, ReasonCode::Success);

        let with_will =
            Packet::Disconnect(DisconnectPacket::new(ReasonCode::DisconnectWithWillMessage));
        assert_eq!(&to_bytes(&with_will)[..], [0xE0, 0x01, 0x04]);

        let with_reason = DisconnectPacket::new(ReasonCode::DisconnectWithWillMessage)
            .with_reason_string("fault: crash".to_owned());
        let Packet::Disconnect(d) = round_trip(Packet::Disconnect(with_reason)) else {
            panic!("not a DISCONNECT");
        };
        assert_eq!(d.reason_code, ReasonCode::DisconnectWithWillMessage);
        assert_eq!(
            string_prop(&d.properties, PropertyId::ReasonString),
            Some("fault: crash")
        );
    }

    #[test]
    fn small_qos0_publish_has_exact_bytes() {
        let publish = PublishPacket::new("a/b", &b"hi"[..], QoS::AtMostOnce);
        assert_eq!(
            &to_bytes(&Packet::Publish(publish))[..],
            [0x30, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, b'h', b'i']
        );
    }

    fn sample_publish() -> Packet {
        let mut publish = PublishPacket::new("t/1", &b"payload"[..], QoS::AtLeastOnce);
        publish.packet_id = Some(42);
        publish.properties = request_properties().into();
        Packet::Publish(publish)
    }

    #[test]
    fn frame_split_byte_by_byte_decodes_to_the_same_packet() {
        let wire = to_bytes(&sample_publish());
        let mut codec = MqttCodec::default();
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.put_u8(*byte);
            let decoded = codec.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert!(decoded.is_none(), "decoded early at byte {i}");
            } else {
                let Some(Packet::Publish(p)) = decoded else {
                    panic!("expected the PUBLISH at the last byte");
                };
                assert_eq!(p.packet_id, Some(42));
                assert_eq!(&p.payload[..], b"payload");
                assert_eq!(PublishProperties::from(&p.properties), request_properties());
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn two_packets_in_one_buffer_decode_in_order() {
        let mut buf = to_bytes(&sample_publish());
        buf.extend_from_slice(&to_bytes(&Packet::PingResp));
        let mut codec = MqttCodec::default();
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Packet::Publish(_))
        ));
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Packet::PingResp)
        ));
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn oversize_remaining_length_is_too_large_before_the_body_arrives() {
        let mut codec = MqttCodec::new(1024);
        // PUBLISH announcing 16384 bytes of body; only the header is here.
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x01][..]);
        match codec.decode(&mut buf) {
            Err(CodecError::TooLarge { size, max }) => assert_eq!((size, max), (16388, 1024)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Exactly at the limit is fine (header 3 + body 1021 = 1024), but waits for the body.
        let mut buf = BytesMut::from(&[0x30, 0xFD, 0x07][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let mut buf = BytesMut::from(&[0x30, 0xFE, 0x07][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooLarge { size: 1025, .. })
        ));
    }

    fn assert_malformed(bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        match MqttCodec::default().decode(&mut buf) {
            Err(CodecError::Malformed(_)) => {}
            other => panic!("{bytes:02X?}: expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_malformed() {
        assert_malformed(&[0x00, 0x00]); // packet type 0
        assert_malformed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]); // 5-byte remaining length
        assert_malformed(&[0x60, 0x02, 0x00, 0x01]); // PUBREL with flags 0
        assert_malformed(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]); // PUBLISH QoS 3
        assert_malformed(&[0x38, 0x04, 0x00, 0x01, b'a', 0x00]); // QoS 0 with DUP
        assert_malformed(&[0xC0, 0x01, 0x00]); // PINGREQ with a body
        assert_malformed(&[0x40, 0x03, 0x00, 0x01, 0x42]); // PUBACK with unknown reason
        assert_malformed(&[0x90, 0x03, 0x00, 0x01, 0x00]); // SUBACK without reason codes
        assert_malformed(&[0x20, 0x03, 0x00, 0x00, 0x05]); // CONNACK properties overrun
        assert_malformed(&[0x30, 0x03, 0x00, 0x05, b'a']); // topic longer than the body
    }

    /// Feeds random and mutated frames to the decoder; any result is fine except a panic.
    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let templates: Vec<BytesMut> = [
            sample_publish(),
            Packet::ConnAck(ConnAckPacket::new(true, ReasonCode::Success).with_receive_maximum(5)),
            Packet::SubAck(SubAckPacket::new(1).add_reason_code(SubAckReasonCode::GrantedQoS1)),
            Packet::Disconnect(
                DisconnectPacket::new(ReasonCode::ServerBusy).with_reason_string("x".to_owned()),
            ),
        ]
        .iter()
        .map(to_bytes)
        .collect();
        let mut codec = MqttCodec::new(4096);
        for round in 0..20_000u64 {
            let mut buf = if round % 2 == 0 {
                let len = (next() % 40) as usize;
                (0..len)
                    .map(|_| next() as u8)
                    .collect::<Vec<u8>>()
                    .as_slice()
                    .into()
            } else {
                let mut frame = templates[(next() % 4) as usize].clone();
                let at = (next() as usize) % frame.len();
                frame[at] = next() as u8;
                frame
            };
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }
}
