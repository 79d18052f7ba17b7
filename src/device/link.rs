//! The connection's lifecycle, every device alike: dial, CONNECT/CONNACK, SUBSCRIBE, keepalive,
//! drops counted by reason, poison messages, reconnects with backoff.

use std::time::{Duration, Instant};

use mqtt5_protocol::packet::suback::SubAckReasonCode;
use mqtt5_protocol::{Packet, QoS, ReasonCode};

use super::core::{Action, CONNECT_TIMEOUT, Device, Link, Out, Role};
use crate::events::DropReason;
use crate::mqtt::{BadFrame, ProtocolError};
use crate::narrate::ConnackFacts;
use crate::report::{Refusal, ResponseInfoUse};
use crate::supervisor::WillFact;

/// How many times a device tries to get ready (connected and subscribed) before the run gives
/// up on the broker. Later drops are retried for as long as the run lasts.
pub(super) const FIRST_CONNECT_ATTEMPTS: u32 = 5;

/// A message from the broker the device will not take: a frame that did not decode, or a
/// PUBLISH MQTT does not allow here.
struct Rejected {
    reason: DropReason,
    detail: String,
    fingerprint: u64,
    ack: Option<(QoS, u16)>,
}

impl Device {
    /// Dials connection number `generation + 1`; its CONNACK must come within twice the
    /// connect timeout, or the attempt counts as failed.
    pub(super) fn connect(&mut self, now: Instant, out: &mut Out<'_>) {
        self.link = Link::Connecting;
        self.generation += 1;
        let proxied = self.faults.as_ref().is_some_and(|f| f.proxied);
        let seed = if proxied {
            rand::Rng::random(&mut self.rng.faults)
        } else {
            0
        };
        out.actions.push(Action::Dial {
            generation: self.generation,
            proxied,
            seed,
        });
        self.connack_by = now
            .checked_add(CONNECT_TIMEOUT * 2)
            .map(|by| (self.generation, by));
    }

    /// The socket is open: register this connection's Will and send CONNECT.
    pub(super) fn attached(&mut self, now: Instant, out: &mut Out<'_>) {
        self.incarnation += 1;
        let will = self.will_message();
        self.session.set_will(will);
        let connect = self.session.connect(now);
        if out.shared.narration.tells_setup() {
            self.tell_connect(out);
        }
        self.write(connect, out);
        self.reapply_toxics(out);
    }

    /// A connection attempt failed before CONNACK.
    pub(super) fn connect_failed(&mut self, reason: String, now: Instant, out: &mut Out<'_>) {
        self.link = Link::Down;
        let wait = self.backoff.failed(&mut self.rng.backoff);
        self.retry_after(wait, reason, now, out);
    }

    /// Dials again after `wait`, unless the device has used up the tries of its first
    /// connection: then the run stops, naming `reason`, the last thing that went wrong.
    fn retry_after(&mut self, wait: Duration, reason: String, now: Instant, out: &mut Out<'_>) {
        if !self.ever_ready && self.backoff.attempts() >= FIRST_CONNECT_ATTEMPTS {
            return self.give_up(reason, out);
        }
        tracing::debug!(device = %self.id(), %reason, attempt = self.backoff.attempts(), ?wait, "dialling again");
        self.dial_at = now.checked_add(wait);
    }

    /// The first connection cannot be made: tell the runner, which stops the run (exit 3).
    fn give_up(&mut self, reason: String, out: &mut Out<'_>) {
        tracing::error!(device = %self.id(), %reason, "giving up connecting");
        out.shared.progress.failed(self.id(), reason);
        self.stopping = true;
        out.actions.push(Action::Stop);
    }

    /// Closes the socket at once, without a DISCONNECT, and forgets the connection.
    pub(super) fn drop_link(&mut self, out: &mut Out<'_>) {
        out.actions.push(Action::Drop);
        self.forget_link();
    }

    /// Flushes what was written (a DISCONNECT), then closes the socket.
    pub(super) fn close_link(&mut self, out: &mut Out<'_>) {
        out.actions.push(Action::Close);
        self.forget_link();
    }

    /// Forgets the connection, socket and session state alike. In-flight publishes stay in the
    /// session, to be resumed or resent on the next connection.
    fn forget_link(&mut self) {
        self.session.connection_lost();
        self.pending_subscribe = None;
        self.link = Link::Down;
        // Whatever the socket still says is about a connection that is gone.
        self.generation += 1;
        self.connack_by = None;
    }

    /// An established connection died under us: count it, clean up, come back (unless a fault
    /// keeps the device away; it comes back when the fault ends). A drop on a connection a
    /// network or protocol fault acts on is that fault's doing (planned); any other is not.
    pub(super) fn connection_lost(
        &mut self,
        reason: DropReason,
        detail: String,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        // A message closes two connections in a row only if nothing else closed one between.
        self.poison = None;
        if self.stopping || self.link == Link::Down {
            return;
        }
        let was = self.link;
        self.drop_link(out);
        if let Some(kind) = self.away {
            tracing::debug!(device = %self.id(), fault = kind.as_str(), %detail, "connection closed during a fault");
            return;
        }
        if was == Link::Connecting {
            return self.connect_failed(detail, now, out);
        }
        let planned = self.fault_watched();
        self.fault_effect_on_link(now, out, |after| {
            format!(
                "connection lost {:.1}s later: {detail}",
                after.as_secs_f64()
            )
        });
        self.tell_dropped(now, out);
        self.went_down(now, planned, out);
        let links = &mut out.tally.links;
        if planned {
            links.planned_drops += 1;
            tracing::info!(device = %self.id(), %detail, "connection lost to a fault, reconnecting");
        } else {
            links.unplanned_drops += 1;
            *links.drops_by_reason.entry(reason.key()).or_insert(0) += 1;
            tracing::warn!(device = %self.id(), %detail, "connection lost, reconnecting");
        }
        let wait = self.backoff.dropped(now, &mut self.rng.backoff);
        self.retry_after(wait, detail, now, out);
    }

    /// A device with a Will tells the supervisor its connection dropped unplanned: the broker
    /// may publish that connection's Will, and that is no surprise.
    pub(super) fn tell_dropped(&self, at: Instant, out: &mut Out<'_>) {
        if self.spec().will.is_some() {
            out.actions.push(Action::Tell(WillFact::Dropped {
                device: self.index,
                incarnation: self.incarnation,
                at,
            }));
        }
    }

    /// PINGREQ when the connection has been quiet for the keepalive; a PINGREQ left unanswered
    /// as long ends the connection.
    pub(super) fn keepalive(&mut self, now: Instant, out: &mut Out<'_>) {
        if self.away.is_some() {
            return;
        }
        match self.session.tick(now) {
            Ok(Some(ping)) => self.write(ping, out),
            Ok(None) => {}
            Err(e) => self.connection_lost(DropReason::KeepaliveTimeout, e.to_string(), now, out),
        }
    }

    pub(super) fn on_packet(&mut self, packet: Packet, now: Instant, out: &mut Out<'_>) {
        let mut released = Vec::new();
        let event = self.session.handle(packet, now, &mut released);
        // The event's reactions go on the wire before what the session released: after a
        // reconnect, the re-SUBSCRIBE to a response topic must precede the requests that were
        // queued while the link was down, or their answers could arrive before the subscription.
        let result = event.map(|event| {
            if let Some(event) = event {
                self.on_session_event(event, now, out);
            }
        });
        for packet in released {
            self.write(packet, out);
        }
        let Err(e) = result else {
            return;
        };
        if let ProtocolError::BadPublish {
            fingerprint, ack, ..
        } = e
        {
            let (reason, detail) = (DropReason::ProtocolError, e.to_string());
            self.reject(
                Rejected {
                    reason,
                    detail,
                    fingerprint,
                    ack,
                },
                now,
                out,
            );
        } else {
            tracing::warn!(device = %self.id(), error = %e, "protocol error, dropping connection");
            self.connection_lost(DropReason::ProtocolError, e.to_string(), now, out);
        }
    }

    pub(super) fn on_bad_frame(&mut self, bad: BadFrame, now: Instant, out: &mut Out<'_>) {
        let reason = if bad.too_large {
            DropReason::TooLarge
        } else {
            DropReason::Malformed
        };
        let rejected = Rejected {
            reason,
            detail: bad.reason,
            fingerprint: bad.fingerprint,
            ack: bad.publish,
        };
        self.reject(rejected, now, out);
    }

    /// A message the device will not take. The first time, the connection is dropped (what
    /// MQTT asks of a client). When the very same message closed the previous connection too,
    /// the broker will redeliver it on every connection, so it is acknowledged, let go and
    /// counted instead: a poison message must not make a device loop.
    fn reject(&mut self, rejected: Rejected, now: Instant, out: &mut Out<'_>) {
        let Rejected {
            reason,
            detail,
            fingerprint,
            ack,
        } = rejected;
        if self.poison == Some(fingerprint) {
            tracing::warn!(device = %self.id(), %detail, "the message that closed the last connection came again: letting it go");
            if let Some(ack) = ack.and_then(|(qos, id)| self.session.discard(qos, id)) {
                self.write(ack, out);
            }
            out.tally.links.poison_dropped += 1;
            return;
        }
        tracing::warn!(device = %self.id(), %detail, "bad message from the broker, dropping connection");
        self.connection_lost(
            reason,
            format!("bad data from the broker: {detail}"),
            now,
            out,
        );
        // Remembered after `connection_lost`, which forgets the previous one.
        self.poison = Some(fingerprint);
    }

    fn on_session_event(&mut self, event: crate::mqtt::Event, now: Instant, out: &mut Out<'_>) {
        use crate::mqtt::Event as S;
        match event {
            S::Connected {
                session_present,
                response_information,
                server_receive_maximum,
                ..
            } => {
                if out.shared.narration.tells_setup() {
                    let facts = ConnackFacts {
                        session_present,
                        response_information: response_information.clone(),
                        receive_maximum: server_receive_maximum,
                        refused: None,
                    };
                    self.tell_connack(facts, out);
                }
                self.on_connected(session_present, response_information, now, out);
            }
            S::ConnectRefused {
                reason,
                reason_string,
            } => {
                let why = describe(reason, reason_string.as_deref());
                if out.shared.narration.tells_setup() {
                    let facts = ConnackFacts {
                        refused: Some(why.clone()),
                        ..ConnackFacts::default()
                    };
                    self.tell_connack(facts, out);
                }
                out.tally.refusal(Refusal {
                    device: self.id().to_owned(),
                    what: "connect".into(),
                    topic: None,
                    reason: why.clone(),
                });
                self.drop_link(out);
                if self.ever_ready {
                    self.connect_failed(format!("CONNACK refused: {why}"), now, out);
                } else {
                    // Credentials or bans do not fix themselves: fail fast on the first connect.
                    self.give_up(format!("the broker refused the connection: {why}"), out);
                }
            }
            S::Subscribed { packet_id, reasons } => match self.pending_subscribe.take() {
                Some((id, filters)) if id == packet_id => {
                    self.on_subscribed(filters, &reasons, now, out);
                }
                other => self.pending_subscribe = other,
            },
            S::Message(publish) => self.on_message(publish, now, out),
            S::Delivered { .. } | S::PingResponse => {}
            S::Refused {
                tag,
                topic,
                reason,
                reason_string,
            } => {
                let why = describe(reason, reason_string.as_deref());
                tracing::debug!(device = %self.id(), %topic, reason = %why, "publish refused by the broker");
                out.tally.refusal(Refusal {
                    device: self.id().to_owned(),
                    what: "publish".into(),
                    topic: Some(topic),
                    reason: why.clone(),
                });
                if let Role::Phone(_) = self.role {
                    let why = crate::events::Failure::PublishRefused(why);
                    self.request_failed(tag, why, now, out);
                }
            }
            S::ServerDisconnect {
                reason,
                reason_string,
            } => {
                let why = describe(reason, reason_string.as_deref());
                let code = DropReason::ServerDisconnect(reason as u8);
                self.connection_lost(code, format!("server sent DISCONNECT: {why}"), now, out);
            }
        }
    }

    fn on_connected(
        &mut self,
        session_present: bool,
        response_information: Option<String>,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        let first = !self.ever_connected;
        self.connack_by = None;
        self.apply_response_info(response_information, first, out);
        self.ever_connected = true;
        self.backoff.connected(now);
        out.second(now).connected += 1;
        let links = &mut out.tally.links;
        if first {
            links.connected += 1;
            out.shared.progress.accepted();
        }
        if let Some(back) = self.downtime.up(now) {
            links.reconnects += 1;
            links.disconnected_s += back.unplanned.as_secs_f64();
            out.actions.push(Action::Tell(WillFact::Back {
                device: self.index,
                at: now,
            }));
            self.fault_effect_on_link(now, out, |after| {
                format!("reconnected {:.1}s later", after.as_secs_f64())
            });
            // The fault's effect on the connection is told; later drops are not its doing.
            self.unwatch_fault();
        }
        if !session_present {
            self.subscribed = false;
        }
        let filters = self.subscriptions();
        // A resumed session keeps its subscriptions, but only those the broker acknowledged:
        // a link lost before the first SUBACK leaves the session without them.
        if filters.is_empty() || (session_present && self.subscribed) {
            self.link_up(now, out);
        } else {
            self.link = Link::Subscribing;
            let (id, packet) = self.session.subscribe(&filters, now);
            if out.shared.narration.tells_setup() {
                self.tell_subscribe(&filters, out);
            }
            self.pending_subscribe = Some((id, filters));
            self.write(packet, out);
        }
    }

    /// The SUBACK for `filters`, one reason code each, in order.
    fn on_subscribed(
        &mut self,
        filters: Vec<(String, QoS)>,
        reasons: &[SubAckReasonCode],
        now: Instant,
        out: &mut Out<'_>,
    ) {
        self.subscribed = true;
        if out.shared.narration.tells_setup() {
            self.tell_suback(&filters, reasons, out);
        }
        for ((filter, _), reason) in filters.into_iter().zip(reasons) {
            if reason.is_success() {
                continue;
            }
            let why = format!("{reason:?} (0x{:02X})", *reason as u8);
            tracing::warn!(device = %self.id(), filter, reason = %why, "subscription refused");
            if let Role::Phone(phone) = &mut self.role {
                phone.refuse_response_topic(&filter, &why);
            }
            out.tally.refusal(Refusal {
                device: self.id().to_owned(),
                what: "subscribe".into(),
                topic: Some(filter),
                reason: why,
            });
        }
        self.link_up(now, out);
    }

    /// Connected and subscribed: ready for the run (the first time), and a closed-loop phone
    /// fills the slots it could not use while down.
    fn link_up(&mut self, now: Instant, out: &mut Out<'_>) {
        self.link = Link::Up;
        if !self.ever_ready {
            self.ever_ready = true;
            out.shared.progress.ready();
        }
        self.phone_online(now, out);
    }

    /// Once connected: what `{response_info}` stands for in this device's topics, from the
    /// CONNACK or, failing that, the fallback (Mosquitto never sends one).
    fn apply_response_info(&mut self, received: Option<String>, first: bool, out: &mut Out<'_>) {
        let connection = &self.fleet.devices[self.index as usize].connection;
        if !connection.request_response_info {
            return;
        }
        let fallback = received.is_none();
        if fallback {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::warn!(
                    fallback = %connection.response_info_fallback,
                    "the broker returned no Response Information (Mosquitto never does): using the fallback prefix"
                );
            });
        }
        let value = received
            .clone()
            .unwrap_or_else(|| connection.response_info_fallback.clone());
        let fleet = self.fleet.clone();
        let spec = &fleet.devices[self.index as usize];
        let topics = match &mut self.role {
            Role::Phone(phone) => phone.resolve_response_info(&value, spec),
            _ => Vec::new(),
        };
        if first {
            out.tally.response_info(ResponseInfoUse {
                device: spec.id.clone(),
                received,
                fallback,
                topics,
            });
        }
    }
}

fn describe(reason: ReasonCode, text: Option<&str>) -> String {
    let code = reason as u8;
    match text {
        Some(text) => format!("{reason:?} (0x{code:02X}): {text}"),
        None => format!("{reason:?} (0x{code:02X})"),
    }
}
