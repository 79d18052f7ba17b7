//! The device's codec: [`MqttCodec`]'s framing, except that a frame which does not decode (an
//! invalid UTF-8 topic, a packet over our Maximum Packet Size) is stepped over and handed up as
//! a [`BadFrame`] instead of ending the stream. The device decides what it means: close the
//! connection the first time; let the message go when the very same one comes back after the
//! reconnect, since a broker redelivering it would otherwise close every connection forever
//! (a poison message).
//!
//! Only framing it cannot find its way through (an unknown packet type, a length longer than
//! four bytes) still ends the stream with an error.

use std::hash::{Hash, Hasher};

use bytes::{Buf, BytesMut};
use mqtt5_protocol::{Packet, PacketType, QoS};
use tokio_util::codec::{Decoder, Encoder};

use super::codec::{CodecError, Frame, MqttCodec, Outbound, decode_frame, peek_fixed_header};

/// How much of an oversize frame is read to tell it apart from others (its topic, its packet
/// id, the start of its payload) before the rest is skipped unbuffered.
const OVERSIZE_PEEK: usize = 256;

/// What a device reads off its connection.
#[derive(Debug)]
pub enum Inbound {
    Packet(Packet),
    Bad(BadFrame),
}

/// A frame that did not decode, stepped over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    /// What is wrong with it.
    pub reason: String,
    /// It exceeds our Maximum Packet Size (else it is malformed).
    pub too_large: bool,
    /// Tells a redelivery of the same message from another (the DUP flag left out).
    pub fingerprint: u64,
    /// For a QoS 1/2 PUBLISH whose packet id could be read: what acknowledging it takes.
    pub publish: Option<(QoS, u16)>,
}

impl BadFrame {
    /// `bytes`: the frame from its first byte, whole or (oversize) its first part.
    fn of(frame: &Frame, bytes: &[u8], reason: String, too_large: bool) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        // A redelivery differs only in its DUP flag (bit 3 of a PUBLISH's first byte).
        let first = bytes.first().copied().unwrap_or_default();
        let dup_free = if frame.packet_type == PacketType::Publish {
            first & !0x08
        } else {
            first
        };
        dup_free.hash(&mut hasher);
        bytes.get(1..).unwrap_or_default().hash(&mut hasher);
        Self {
            reason,
            too_large,
            fingerprint: hasher.finish(),
            publish: publish_id(frame, bytes),
        }
    }
}

/// The QoS and packet id of a PUBLISH frame, read from its first bytes: topic length, topic,
/// packet id.
fn publish_id(frame: &Frame, bytes: &[u8]) -> Option<(QoS, u16)> {
    if frame.packet_type != PacketType::Publish {
        return None;
    }
    let qos = match (frame.flags >> 1) & 0x03 {
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return None,
    };
    let body = bytes.get(frame.header_len..)?;
    let topic_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let id = body.get(2 + topic_len..4 + topic_len)?;
    let id = u16::from_be_bytes([id[0], id[1]]);
    (id != 0).then_some((qos, id))
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct InboundCodec {
    inner: MqttCodec,
    /// Bytes of an oversize frame still to be skipped as they arrive.
    skip: usize,
}

impl InboundCodec {
    /// `max_packet_size`: as [`MqttCodec::new`], the Maximum Packet Size the device announced.
    pub fn new(max_packet_size: usize) -> Self {
        Self {
            inner: MqttCodec::new(max_packet_size),
            skip: 0,
        }
    }

    fn skip_buffered(&mut self, src: &mut BytesMut) {
        let n = self.skip.min(src.len());
        src.advance(n);
        self.skip -= n;
    }
}

/// How many bytes of an oversize frame to read before skipping the rest; None while even the
/// topic length of a PUBLISH has not arrived.
fn oversize_peek(frame: &Frame, src: &[u8]) -> Option<usize> {
    if frame.packet_type != PacketType::Publish {
        return Some(frame.header_len + OVERSIZE_PEEK);
    }
    let at = frame.header_len;
    let topic_len = usize::from(u16::from_be_bytes([*src.get(at)?, *src.get(at + 1)?]));
    Some(at + 2 + topic_len + 2 + OVERSIZE_PEEK)
}

impl Decoder for InboundCodec {
    type Item = Inbound;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, CodecError> {
        self.skip_buffered(src);
        if self.skip > 0 {
            return Ok(None);
        }
        let Some(frame) = peek_fixed_header(src)? else {
            return Ok(None);
        };
        let total = frame.total_len();
        let max = self.inner.max_packet_size();
        if total > max {
            // Read enough to know it again (and, for a PUBLISH, its packet id past the topic),
            // then let the rest go by without buffering it.
            let Some(peek) = oversize_peek(&frame, src) else {
                return Ok(None);
            };
            let peek = total.min(peek);
            if src.len() < peek {
                src.reserve(peek - src.len());
                return Ok(None);
            }
            let reason = format!("packet of {total} bytes exceeds the maximum of {max}");
            let bad = BadFrame::of(&frame, &src[..peek], reason, true);
            self.skip = total;
            self.skip_buffered(src);
            return Ok(Some(Inbound::Bad(bad)));
        }
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let bytes = src.split_to(total).freeze();
        Ok(Some(match decode_frame(&frame, bytes.clone()) {
            Ok(packet) => Inbound::Packet(packet),
            Err(e) => Inbound::Bad(BadFrame::of(&frame, &bytes, e.to_string(), false)),
        }))
    }
}

impl Encoder<Outbound> for InboundCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Outbound, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.inner.encode(item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt5_protocol::packet::publish::PublishPacket;

    /// A QoS 1 PUBLISH, packet id 7, whose topic is not UTF-8; `dup` sets the DUP flag.
    fn bad_topic(dup: bool) -> Vec<u8> {
        let first = if dup { 0x3A } else { 0x32 };
        // topic length 2, topic C3 28 (invalid UTF-8), packet id 7, no properties, payload "x"
        vec![first, 8, 0, 2, 0xC3, 0x28, 0, 7, 0, b'x']
    }

    fn decode_all(codec: &mut InboundCodec, bytes: &[u8]) -> Vec<Inbound> {
        let mut src = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(item) = codec.decode(&mut src).expect("no framing error") {
            out.push(item);
        }
        out
    }

    fn good_publish() -> Vec<u8> {
        let packet = Packet::Publish(PublishPacket::new(
            "ok",
            Bytes::from_static(b"hi"),
            QoS::AtMostOnce,
        ));
        let mut out = BytesMut::new();
        crate::mqtt::codec::encode(&packet, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn a_malformed_publish_is_stepped_over_with_its_packet_id_and_the_stream_goes_on() {
        let mut codec = InboundCodec::new(1024);
        let mut bytes = bad_topic(false);
        bytes.extend(good_publish());
        let items = decode_all(&mut codec, &bytes);
        assert_eq!(items.len(), 2);
        let Inbound::Bad(bad) = &items[0] else {
            panic!("expected a bad frame, got {:?}", items[0]);
        };
        assert_eq!(bad.publish, Some((QoS::AtLeastOnce, 7)));
        assert!(!bad.too_large);
        assert!(matches!(&items[1], Inbound::Packet(Packet::Publish(p)) if p.topic_name == "ok"));
    }

    #[test]
    fn a_redelivery_has_the_same_fingerprint_and_another_message_does_not() {
        let mut codec = InboundCodec::new(1024);
        let fingerprint =
            |bytes: &[u8], codec: &mut InboundCodec| match decode_all(codec, bytes).pop() {
                Some(Inbound::Bad(bad)) => bad.fingerprint,
                other => panic!("{other:?}"),
            };
        let first = fingerprint(&bad_topic(false), &mut codec);
        assert_eq!(
            fingerprint(&bad_topic(true), &mut codec),
            first,
            "DUP is left out"
        );
        let mut other = bad_topic(false);
        other[9] = b'y';
        assert_ne!(fingerprint(&other, &mut codec), first);
    }

    #[test]
    fn an_oversize_frame_is_skipped_unbuffered_and_what_follows_decodes() {
        let mut codec = InboundCodec::new(64);
        let big = PublishPacket::new("t", Bytes::from(vec![b'x'; 1000]), QoS::AtLeastOnce);
        let mut big = big;
        big.packet_id = Some(9);
        let mut bytes = BytesMut::new();
        crate::mqtt::codec::encode(&Packet::Publish(big), &mut bytes).unwrap();
        bytes.extend(good_publish());
        // Fed in small chunks, as a socket would: the skip carries over between reads.
        let mut src = BytesMut::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(100) {
            src.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut src).unwrap() {
                out.push(item);
            }
            assert!(
                src.len() <= 400,
                "an oversize frame is never buffered whole"
            );
        }
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            matches!(&out[0], Inbound::Bad(b) if b.too_large && b.publish == Some((QoS::AtLeastOnce, 9)))
        );
        assert!(matches!(&out[1], Inbound::Packet(Packet::Publish(_))));
    }

    #[test]
    fn an_unknown_packet_type_still_ends_the_stream() {
        let mut codec = InboundCodec::new(1024);
        let mut src = BytesMut::from(&[0x00u8, 0x00][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(CodecError::Malformed(_))
        ));
    }
}
