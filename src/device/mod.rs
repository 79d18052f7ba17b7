//! Devices. Each simulated device is a sans-IO [`Device`]: told what arrived and what time it
//! is, it decides what to send, counts into its shard's tally and returns actions; a thin
//! [`DeviceActor`] owns its socket and its one timer and carries the actions out.
//!
//! - `core`: the device's state and entry points; `link`: the connection's lifecycle (dial,
//!   CONNECT, SUBSCRIBE, keepalive, drops, poison messages, reconnects); `backoff`: when to
//!   dial again and how long it was away.
//! - `phone` (requests, pacing, matching answers), `respond` (lights and sensors answering;
//!   readings), `light` and `sensor` (their pure state), `will` (Wills and their acks).
//! - `faults`: faults acting on the device, on purpose.
//! - `timers`, `rng`: its timed steps and its seeded random streams.
//! - `told`: its connection set-up, as the narration tells it.
//! - `actor`: the socket and the timer.
//!
//! The MQTT rules themselves are in the sans-IO [`crate::mqtt::Session`].

mod actor;
mod backoff;
mod core;
mod faults;
mod light;
mod link;
mod phone;
mod respond;
mod rng;
mod sensor;
mod timers;
mod told;
mod will;

use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::{PropertyId, PropertyValue};

pub use actor::{Begin, DeviceActor, Inject, Shutdown, Wind};
pub use backoff::{Backoff, Downtime, reconnect_window};
pub use core::{Action, Device, DeviceSetup, Out};
pub use faults::Chance;
pub use light::{LightState, UnknownCommand};
pub use phone::{REMEMBERED, RequestTracker, Verdict};
pub use sensor::SignalGen;
pub use will::{CONSUMED_BY, parse_will_correlation, will_correlation};

/// The largest packet a device reads, announced in CONNECT as its Maximum Packet Size.
pub const MAX_PACKET: usize = 1024 * 1024;

/// The Correlation Data of a received PUBLISH, if any.
pub fn correlation_of(publish: &PublishPacket) -> Option<bytes::Bytes> {
    match publish.properties.get(PropertyId::CorrelationData) {
        Some(PropertyValue::BinaryData(data)) => Some(data.clone()),
        _ => None,
    }
}

/// The Response Topic of a received PUBLISH, if any.
pub fn response_topic_of(publish: &PublishPacket) -> Option<String> {
    match publish.properties.get(PropertyId::ResponseTopic) {
        Some(PropertyValue::Utf8String(topic)) => Some(topic.clone()),
        _ => None,
    }
}

/// The value of a user property of a received PUBLISH, if present.
/// The User Property a phone without Correlation Data (`correlation_data: false`) names its
/// request in, and fleetsim's responders copy onto their answer. The phone never matches by it
/// (that would be Correlation Data by another name): it only tells the report, afterwards,
/// which answers the phone took for the wrong request.
pub const REQUEST_TAG: &str = "fleetsim-request";

pub fn user_property<'a>(publish: &'a PublishPacket, key: &str) -> Option<&'a str> {
    publish.properties.get_user_property_value(key)
}

#[cfg(test)]
mod tests;
