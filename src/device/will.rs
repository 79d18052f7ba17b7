//! Wills, from both ends. A device registers a Will with every CONNECT, its Correlation Data
//! naming that connection (`{id}#{incarnation}`), and stays subscribed to the Will's Response
//! Topic, so an ack published while it was away reaches it when it is back. A Will consumer
//! acks every Will that carries a Response Topic.

use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::{QoS, WillMessage, WillProperties, topic_matches_filter};
use rand::Rng;

use super::{DeviceActor, correlation_of, response_topic_of, user_property};
use crate::fleet::Qos;
use crate::mqtt::{Outgoing, PublishProperties};
use crate::supervisor::{WillFact, parse_will_correlation, will_correlation};

/// The user property a consumer names itself in on every ack.
pub const CONSUMED_BY: &str = "consumed-by";

impl DeviceActor {
    /// The Will for the connection being opened (`self.incarnation`).
    pub(super) fn will_message(&self) -> Option<WillMessage> {
        let will = self.will.as_ref()?;
        let seconds = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let properties = WillProperties {
            will_delay_interval: (!will.delay.is_zero()).then(|| seconds(will.delay)),
            message_expiry_interval: will.message_expiry.map(seconds),
            response_topic: Some(will.response_topic.clone()),
            correlation_data: Some(will_correlation(&self.id, self.incarnation).to_vec()),
            user_properties: will.user_properties.clone(),
            ..WillProperties::default()
        };
        Some(WillMessage {
            topic: will.topic.clone(),
            payload: will.payload.clone().into_bytes(),
            qos: match will.qos {
                Qos::AtMostOnce => QoS::AtMostOnce,
                Qos::AtLeastOnce => QoS::AtLeastOnce,
                Qos::ExactlyOnce => QoS::ExactlyOnce,
            },
            retain: will.retain,
            properties,
        })
    }

    pub(super) fn is_own_will_ack(&self, topic: &str) -> bool {
        self.will
            .as_ref()
            .is_some_and(|w| w.response_topic == topic)
    }

    /// An ack of one of this device's Wills arrived: the device learns its outage was noticed.
    pub(super) fn learn_will_ack(&mut self, publish: &PublishPacket) {
        let correlation = correlation_of(publish);
        let named = correlation.as_deref().and_then(parse_will_correlation);
        let Some((id, incarnation)) = named.filter(|(id, _)| *id == self.id) else {
            tracing::warn!(device = %self.id, topic = %publish.topic_name, "message on the Will Response Topic names none of this device's Wills");
            return;
        };
        let by = user_property(publish, CONSUMED_BY).unwrap_or("someone");
        tracing::info!(
            device = id,
            incarnation,
            by,
            "learned that its Will was consumed"
        );
        self.tell_supervisor(WillFact::Learned {
            device: self.index,
            incarnation,
            at: Instant::now(),
        });
    }

    pub(super) fn consumes(&self, topic: &str) -> bool {
        self.consumer
            .as_ref()
            .is_some_and(|c| c.filters.iter().any(|f| topic_matches_filter(topic, f)))
    }

    /// Acks a Will (after the configured delay, unless this one is dropped on purpose): same
    /// Correlation Data, on its Response Topic, naming this device.
    pub(super) fn consume_will(&mut self, publish: PublishPacket, ctx: &mut Context<Self>) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let Some(response_topic) = response_topic_of(&publish) else {
            tracing::debug!(device = %self.id, topic = %publish.topic_name, "Will without Response Topic: nothing to ack");
            return;
        };
        if consumer.ack_drop > 0.0 && self.rng.random_bool(consumer.ack_drop.clamp(0.0, 1.0)) {
            tracing::info!(device = %self.id, topic = %publish.topic_name, "dropping a Will ack on purpose");
            return;
        }
        let payload = serde_json::json!({
            "consumed_by": self.id,
            "will_topic": publish.topic_name,
        });
        let ack = Outgoing {
            topic: response_topic,
            payload: Bytes::from(payload.to_string()),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: PublishProperties {
                correlation_data: correlation_of(&publish),
                user_properties: vec![(CONSUMED_BY.to_owned(), self.id.clone())],
                content_type: Some("application/json".into()),
                ..PublishProperties::default()
            },
            tag: 0,
        };
        tracing::info!(device = %self.id, will = %publish.topic_name, "acking a Will");
        if consumer.ack_delay.is_zero() {
            self.publish_counted(ack);
        } else {
            ctx.run_later(consumer.ack_delay, move |act, _| {
                act.publish_counted(ack);
            });
        }
    }
}
