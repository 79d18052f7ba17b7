//! The observer role: the supervisor's own connection, which forwards every message it gets.

use std::time::Instant;

use actix::prelude::*;
use mqtt5_protocol::packet::publish::PublishPacket;

use super::will::CONSUMED_BY;
use super::{DeviceActor, RoleState, correlation_of, user_property};
use crate::supervisor::Seen;

/// The embedded `mqtt5` broker stamps every PUBLISH with its publisher's client id.
const BROKER_CLIENT_ID: &str = "x-mqtt-client-id";

pub(super) struct Observer {
    pub filters: Vec<String>,
    pub seen: Recipient<Seen>,
}

impl DeviceActor {
    pub(super) fn observe(&mut self, publish: PublishPacket) {
        let RoleState::Observer(observer) = &self.role else {
            return;
        };
        let publisher = user_property(&publish, CONSUMED_BY)
            .or_else(|| user_property(&publish, BROKER_CLIENT_ID))
            .map(str::to_owned);
        observer.seen.do_send(Seen {
            correlation: correlation_of(&publish),
            topic: publish.topic_name,
            publisher,
            at: Instant::now(),
        });
    }
}
