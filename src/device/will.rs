//! Wills, from both ends. A device registers a Will with every CONNECT, its Correlation Data
//! naming that connection (`{id}#{incarnation}`), and stays subscribed to the Will's Response
//! Topic, so an ack published while it was away reaches it when it is back. A Will consumer
//! acks every Will that carries a Response Topic.
//!
//! The Correlation Data format is the device's: it makes it, and the supervisor reads it back
//! with [`parse_will_correlation`].

use std::time::Instant;

use bytes::Bytes;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::{QoS, WillMessage, WillProperties, topic_matches_filter};
use rand::Rng;

use super::core::{Device, Out, Timed};
use super::{correlation_of, response_topic_of, user_property};
use crate::mqtt::{Outgoing, PublishProperties};
use crate::supervisor::WillFact;

/// The user property a consumer names itself in on every ack.
pub const CONSUMED_BY: &str = "consumed-by";

/// The Correlation Data of a device's Will for its `incarnation`-th connection: `{id}#{n}`.
/// Each connection registers its own Will, so an ack names the outage it answers.
pub fn will_correlation(id: &str, incarnation: u32) -> Bytes {
    Bytes::from(format!("{id}#{incarnation}"))
}

/// The device id and incarnation a Will's Correlation Data names, if it is one of ours.
pub fn parse_will_correlation(data: &[u8]) -> Option<(&str, u32)> {
    let text = std::str::from_utf8(data).ok()?;
    let (id, n) = text.rsplit_once('#')?;
    Some((id, n.parse().ok()?))
}

impl Device {
    /// The Will for the connection being opened (`self.incarnation`).
    pub(super) fn will_message(&self) -> Option<Box<WillMessage>> {
        let will = self.spec().will.as_ref()?;
        let seconds = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let properties = WillProperties {
            will_delay_interval: (!will.delay.is_zero()).then(|| seconds(will.delay)),
            message_expiry_interval: will.message_expiry.map(seconds),
            response_topic: Some(will.response_topic.clone()),
            correlation_data: Some(will_correlation(self.id(), self.incarnation).to_vec()),
            user_properties: will.user_properties.clone(),
            ..WillProperties::default()
        };
        Some(Box::new(WillMessage {
            topic: will.topic.clone(),
            payload: will.payload.clone().into_bytes(),
            qos: super::core::qos(will.qos),
            retain: will.retain,
            properties,
        }))
    }

    pub(super) fn is_own_will_ack(&self, topic: &str) -> bool {
        self.spec()
            .will
            .as_ref()
            .is_some_and(|w| w.response_topic == topic)
    }

    /// An ack of one of this device's Wills arrived: the device learns its outage was noticed.
    pub(super) fn learn_will_ack(
        &mut self,
        publish: &PublishPacket,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        let correlation = correlation_of(publish);
        let named = correlation.as_deref().and_then(parse_will_correlation);
        let Some((id, incarnation)) = named.filter(|(id, _)| *id == self.id()) else {
            tracing::warn!(device = %self.id(), topic = %publish.topic_name, "message on the Will Response Topic names none of this device's Wills");
            return;
        };
        let by = user_property(publish, CONSUMED_BY).unwrap_or("someone");
        if out.shared.narration.tells_setup() {
            let data = correlation.as_deref().unwrap_or_default();
            out.shared
                .narration
                .tell(|n| n.will_learned(self.id(), &publish.topic_name, data, incarnation, by));
        }
        tracing::info!(
            device = id,
            incarnation,
            by,
            "learned that its Will was consumed"
        );
        out.actions.push(super::Action::Tell(WillFact::Learned {
            device: self.index,
            incarnation,
            at: now,
        }));
    }

    pub(super) fn consumes(&self, topic: &str) -> bool {
        self.spec()
            .consume_wills
            .as_ref()
            .is_some_and(|c| c.filters.iter().any(|f| topic_matches_filter(topic, f)))
    }

    /// Acks a Will (after the configured delay, unless this one is dropped on purpose): same
    /// Correlation Data, on its Response Topic, naming this device.
    pub(super) fn consume_will(&mut self, publish: PublishPacket, now: Instant, out: &mut Out<'_>) {
        let Some(consumer) = self.spec().consume_wills.clone() else {
            return;
        };
        let Some(response_topic) = response_topic_of(&publish) else {
            tracing::debug!(device = %self.id(), topic = %publish.topic_name, "Will without Response Topic: nothing to ack");
            return;
        };
        if consumer.ack_drop > 0.0
            && self
                .rng
                .faults
                .random_bool(consumer.ack_drop.clamp(0.0, 1.0))
        {
            tracing::info!(device = %self.id(), topic = %publish.topic_name, "dropping a Will ack on purpose");
            return;
        }
        let payload = serde_json::json!({
            "consumed_by": self.id(),
            "will_topic": publish.topic_name,
        });
        let ack = Outgoing {
            topic: response_topic,
            payload: Bytes::from(payload.to_string()),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: PublishProperties {
                correlation_data: correlation_of(&publish),
                user_properties: vec![(CONSUMED_BY.to_owned(), self.id().to_owned())],
                content_type: Some("application/json".into()),
                ..PublishProperties::default()
            },
            tag: 0,
        };
        tracing::info!(device = %self.id(), will = %publish.topic_name, "acking a Will");
        if out.shared.narration.tells_setup() {
            self.tell_will_consumed(&publish, &ack, out);
        }
        match now
            .checked_add(consumer.ack_delay)
            .filter(|_| !consumer.ack_delay.is_zero())
        {
            Some(at) => self.timers.add(at, Timed::Ack(Box::new(ack))),
            None => self.publish_counted(ack, now, out),
        }
    }
}

impl Device {
    /// Narrates a Will this device got and the ack it sends back.
    fn tell_will_consumed(&self, will: &PublishPacket, ack: &Outgoing, out: &mut Out<'_>) {
        let data = correlation_of(will).unwrap_or_default();
        out.shared.narration.tell(|n| {
            n.will_consumed(
                self.id(),
                (&will.topic_name, &will.payload),
                (&ack.topic, &ack.payload),
                &data,
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn will_correlation_round_trips_and_names_the_incarnation() {
        let data = will_correlation("light-in-bedroom", 3);
        assert_eq!(&data[..], b"light-in-bedroom#3");
        assert_eq!(parse_will_correlation(&data), Some(("light-in-bedroom", 3)));
        // Ids may not contain '#' (client id rules), but the last one wins anyway.
        assert_eq!(parse_will_correlation(b"a#b#7"), Some(("a#b", 7)));
        assert_eq!(parse_will_correlation(b"phone:1"), None);
        assert_eq!(parse_will_correlation(b"x#"), None);
        assert_eq!(parse_will_correlation(&[0xff, b'#', b'1']), None);
    }
}
