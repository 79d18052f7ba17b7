//! The connection lifecycle every device shares: TCP connect, CONNECT/CONNACK, SUBSCRIBE,
//! keepalive, reconnect with backoff, and packets in and out through the session.

use std::time::{Duration, Instant};

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use futures_util::StreamExt;
use mqtt5_protocol::packet::suback::SubAckReasonCode;
use mqtt5_protocol::{Packet, QoS, ReasonCode};
use rand::Rng;
use tokio_util::codec::FramedRead;

use super::{DeviceActor, Link, RoleState};
use crate::events::{DropReason, Event, Refused, Skip};
use crate::mqtt::{
    CodecError, Inbound, InboundCodec, Outbound, Outgoing, ProtocolError, PublishError,
};
use crate::supervisor::WillFact;
use crate::transport::{BoxRead, BoxWrite};

/// How many times a device tries its *first* connection before the run gives up on the broker.
/// Later drops are retried for as long as the run lasts.
pub(super) const FIRST_CONNECT_ATTEMPTS: u32 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer to start with; it grows for larger packets. Small, because fleets are large.
const READ_BUFFER: usize = 512;
/// The largest packet a device reads, announced in CONNECT as its Maximum Packet Size.
pub(super) const MAX_PACKET: usize = 1024 * 1024;

pub(super) type Writer = FramedWrite<Outbound, BoxWrite, InboundCodec>;

/// A decoded packet (or a frame stepped over), tagged with the connection it came from.
pub(super) struct Frame {
    generation: u64,
    frame: Result<Inbound, CodecError>,
}

/// A message from the broker the device will not take: a frame that did not decode, or a
/// PUBLISH MQTT does not allow here.
struct Rejected {
    reason: DropReason,
    detail: String,
    fingerprint: u64,
    ack: Option<(QoS, u16)>,
}

impl DeviceActor {
    pub(super) fn write(&mut self, packet: Packet) {
        self.write_out(Outbound::Packet(packet));
    }

    /// Writes a packet or raw bytes, unless the device is away.
    pub(super) fn write_out(&mut self, item: Outbound) {
        if self.away.is_some() {
            // Away (a stall keeps its socket): nothing goes out, PINGREQ and acks included.
            return;
        }
        if let Some(writer) = &mut self.writer {
            writer.write(item);
        }
    }

    /// Hands a publish to the session (which may queue it under Receive Maximum) and writes
    /// whatever it releases. Returns the tag that `Delivered`/`Refused` will name, or why the
    /// session would not take it.
    pub(super) fn publish(&mut self, mut msg: Outgoing) -> Result<u64, PublishError> {
        self.next_tag += 1;
        msg.tag = self.next_tag;
        if let Some(packet) = self.session.publish(msg, Instant::now())? {
            self.write(packet);
        }
        Ok(self.next_tag)
    }

    /// Publishes what no request waits on (an answer, a Will ack): a refusal is counted.
    pub(super) fn publish_counted(&mut self, msg: Outgoing) {
        if let Err(e) = self.publish(msg) {
            tracing::debug!(device = %self.id, error = %e, "not published");
            let skip = match e {
                PublishError::QueueFull => Skip::QueueOverflow,
                PublishError::TooLarge { .. } => Skip::TooLarge,
            };
            self.emit(Event::Skipped(skip));
        }
    }

    /// Connected, and not kept away by a fault: what the device publishes goes out now.
    pub(super) fn online(&self) -> bool {
        self.session.is_connected() && self.away.is_none()
    }

    pub(super) fn connect(&mut self, ctx: &mut Context<Self>) {
        self.link = Link::Connecting;
        self.generation += 1;
        let generation = self.generation;
        let endpoint = self.endpoint.clone();
        let proxied = self.proxied;
        let seed = self.rng.random::<u64>();
        // TCP (TCP_NODELAY set: without it a small answer can wait ~40 ms for a delayed ACK),
        // then the TLS handshake for mqtts://; through a network-fault proxy when one may act.
        let attempt = async move {
            if proxied {
                let (read, write, control) =
                    endpoint.connect_proxied(CONNECT_TIMEOUT, seed).await?;
                Ok((read, write, Some(control)))
            } else {
                let (read, write) = endpoint.connect(CONNECT_TIMEOUT).await?;
                Ok::<_, crate::transport::ConnectError>((read, write, None))
            }
        };
        ctx.spawn(attempt.into_actor(self).map(move |result, act, ctx| {
            if act.generation != generation || act.stopping {
                return;
            }
            match result {
                Ok((read, write, control)) => {
                    if let Some(control) = control {
                        act.attach_toxics(control);
                    }
                    act.attach(read, write, ctx);
                }
                Err(e) => act.connect_failed(e.to_string(), ctx),
            }
        }));
        // The CONNACK must follow within the same bound, or the attempt counts as failed.
        let limit = CONNECT_TIMEOUT * 2;
        ctx.run_later(limit, move |act, ctx| {
            if act.generation == generation && act.link == Link::Connecting {
                act.drop_link(ctx);
                let reason = format!("no CONNACK from {} within {limit:?}", act.endpoint.addr());
                act.connect_failed(reason, ctx);
            }
        });
    }

    fn attach(&mut self, read: BoxRead, write: BoxWrite, ctx: &mut Context<Self>) {
        let generation = self.generation;
        let frames = FramedRead::with_capacity(read, InboundCodec::new(MAX_PACKET), READ_BUFFER)
            .map(move |frame| Frame { generation, frame });
        self.reader = Some(ctx.add_stream(frames));
        self.writer = Some(FramedWrite::new(write, InboundCodec::new(MAX_PACKET), ctx));
        self.incarnation += 1;
        let will = self.will_message();
        self.session.set_will(will);
        let connect = self.session.connect(Instant::now());
        self.write(connect);
    }

    /// A connection attempt failed before CONNACK. Until the device has been ready once, it
    /// gets a bounded number of tries (the run cannot start without it); later ones retry
    /// until the run ends.
    pub(super) fn connect_failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.link = Link::Down;
        let wait = self.backoff.failed(&mut self.rng);
        self.retry_after(wait, reason, ctx);
    }

    /// Dials again after `wait`, unless the device has used up the tries of its first
    /// connection: then the run stops, naming `reason`, the last thing that went wrong.
    fn retry_after(&mut self, wait: Duration, reason: String, ctx: &mut Context<Self>) {
        if !self.ever_ready && self.backoff.attempts() >= FIRST_CONNECT_ATTEMPTS {
            return self.give_up(reason, ctx);
        }
        tracing::debug!(device = %self.id, %reason, attempt = self.backoff.attempts(), ?wait, "dialling again");
        ctx.run_later(wait, |act, ctx| {
            if !act.stopping && act.away.is_none() && act.link == Link::Down {
                act.connect(ctx);
            }
        });
    }

    /// The first connection cannot be made: tell the runner, which stops the run (exit 3).
    fn give_up(&mut self, reason: String, ctx: &mut Context<Self>) {
        tracing::error!(device = %self.id, %reason, "giving up connecting");
        self.emit(Event::ConnectFailed { reason });
        ctx.stop();
    }

    /// Closes the socket at once, without a DISCONNECT, and forgets the connection.
    pub(super) fn drop_link(&mut self, ctx: &mut Context<Self>) {
        if let Some(writer) = self.writer.take() {
            ctx.cancel_future(writer.handle());
        }
        self.forget_link(ctx);
    }

    /// Flushes what was written (a DISCONNECT) and then closes the socket.
    pub(super) fn close_link(&mut self, ctx: &mut Context<Self>) {
        if let Some(mut writer) = self.writer.take() {
            // The writer's task flushes, shuts the socket down and calls `finished`; dropping
            // our handle to it does not cancel it.
            writer.close();
        }
        self.forget_link(ctx);
    }

    /// Forgets the connection, socket and session state alike. In-flight publishes stay in the
    /// session, to be resumed or resent on the next connection.
    fn forget_link(&mut self, ctx: &mut Context<Self>) {
        self.session.connection_lost();
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
        }
        if let Some(tick) = self.tick.take() {
            ctx.cancel_future(tick);
        }
        self.toxics = None;
        self.pending_subscribe = None;
        self.link = Link::Down;
        self.generation += 1;
    }

    /// An established connection died under us: tell, clean up, come back (unless a fault
    /// keeps the device away; it comes back when the fault ends). A drop on a connection a
    /// network or protocol fault acts on is that fault's doing (planned); any other is not.
    pub(super) fn connection_lost(
        &mut self,
        reason: DropReason,
        detail: String,
        ctx: &mut Context<Self>,
    ) {
        // A message closes two connections in a row only if nothing else closed one between.
        self.poison = None;
        // Already handled: a dead socket is reported by its reader and its writer, the writer
        // once per queued write.
        let already_down =
            self.link == Link::Down && self.reader.is_none() && self.writer.is_none();
        if self.stopping || already_down {
            return;
        }
        let was = self.link;
        self.drop_link(ctx);
        if let Some(away) = self.away {
            tracing::debug!(device = %self.id, fault = away.kind.as_str(), %detail, "connection closed during a fault");
            return;
        }
        if was == Link::Connecting {
            self.connect_failed(detail, ctx);
            return;
        }
        let planned = self.watched_fault.is_some();
        self.network_effect(|after| {
            format!(
                "connection lost {:.1}s later: {detail}",
                after.as_secs_f64()
            )
        });
        self.tell_dropped();
        let now = Instant::now();
        self.downtime.down(now, planned);
        self.emit(Event::Dropped { reason, planned });
        if planned {
            tracing::info!(device = %self.id, %detail, "connection lost to a fault, reconnecting");
        } else {
            tracing::warn!(device = %self.id, %detail, "connection lost, reconnecting");
        }
        let wait = self.backoff.dropped(now, &mut self.rng);
        self.retry_after(wait, detail, ctx);
    }

    /// A device with a Will tells the supervisor its connection dropped unplanned: the broker
    /// may publish that connection's Will, and that is no surprise.
    pub(super) fn tell_dropped(&self) {
        if self.will.is_some() {
            self.tell_supervisor(WillFact::Dropped {
                device: self.index,
                incarnation: self.incarnation,
                at: Instant::now(),
            });
        }
    }

    pub(super) fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(tick) = self.tick.take() {
            ctx.cancel_future(tick);
        }
        if self.away.is_some() {
            return;
        }
        if let Some(at) = self.session.next_tick() {
            let wait = at.saturating_duration_since(Instant::now());
            self.tick = Some(ctx.run_later(wait, |act, ctx| {
                act.tick = None;
                match act.session.tick(Instant::now()) {
                    Ok(Some(ping)) => act.write(ping),
                    Ok(None) => {}
                    Err(e) => {
                        return act.connection_lost(
                            DropReason::KeepaliveTimeout,
                            e.to_string(),
                            ctx,
                        );
                    }
                }
                act.schedule_tick(ctx);
            }));
        }
    }

    fn on_packet(&mut self, packet: Packet, ctx: &mut Context<Self>) {
        let mut out = Vec::new();
        let event = self.session.handle(packet, Instant::now(), &mut out);
        // The event's reactions go on the wire before what the session released: after a
        // reconnect, the re-SUBSCRIBE to a response topic must precede the requests that were
        // queued while the link was down, or their answers could arrive before the subscription.
        let result = event.map(|event| {
            if let Some(event) = event {
                self.on_session_event(event, ctx);
            }
        });
        for packet in out {
            self.write(packet);
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
                ctx,
            );
        } else {
            tracing::warn!(device = %self.id, error = %e, "protocol error, dropping connection");
            self.connection_lost(DropReason::ProtocolError, e.to_string(), ctx);
        }
    }

    /// A message the device will not take. The first time, the connection is dropped (what
    /// MQTT asks of a client). When the very same message closed the previous connection too,
    /// the broker will redeliver it on every connection, so it is acknowledged, let go and
    /// counted instead: a poison message must not make a device loop.
    fn reject(&mut self, rejected: Rejected, ctx: &mut Context<Self>) {
        let Rejected {
            reason,
            detail,
            fingerprint,
            ack,
        } = rejected;
        if self.poison == Some(fingerprint) {
            tracing::warn!(device = %self.id, %detail, "the message that closed the last connection came again: letting it go");
            if let Some(ack) = ack.and_then(|(qos, id)| self.session.discard(qos, id)) {
                self.write(ack);
            }
            self.emit(Event::PoisonDropped);
            return;
        }
        tracing::warn!(device = %self.id, %detail, "bad message from the broker, dropping connection");
        self.connection_lost(reason, format!("bad data from the broker: {detail}"), ctx);
        // Remembered after `connection_lost`, which forgets the previous one.
        self.poison = Some(fingerprint);
    }

    fn on_session_event(&mut self, event: crate::mqtt::Event, ctx: &mut Context<Self>) {
        use crate::mqtt::Event as S;
        match event {
            S::Connected {
                session_present,
                response_information,
                ..
            } => self.on_connected(session_present, response_information),
            S::ConnectRefused {
                reason,
                reason_string,
            } => {
                let why = describe(reason, reason_string.as_deref());
                self.emit(Event::Refusal {
                    what: Refused::Connect,
                    topic: None,
                    reason: why.clone(),
                });
                self.drop_link(ctx);
                if self.ever_ready {
                    self.connect_failed(format!("CONNACK refused: {why}"), ctx);
                } else {
                    // Credentials or bans do not fix themselves: fail fast on the first connect.
                    let addr = self.endpoint.addr();
                    self.give_up(format!("{addr} refused the connection: {why}"), ctx);
                }
            }
            S::Subscribed { packet_id, reasons } => match self.pending_subscribe.take() {
                Some((id, filters)) if id == packet_id => self.on_subscribed(filters, &reasons),
                other => self.pending_subscribe = other,
            },
            S::Message(publish) => self.on_message(publish, ctx),
            S::Delivered { .. } | S::PingResponse => {}
            S::Refused {
                tag,
                topic,
                reason,
                reason_string,
            } => self.on_refused(tag, topic, describe(reason, reason_string.as_deref())),
            S::ServerDisconnect {
                reason,
                reason_string,
            } => {
                let why = describe(reason, reason_string.as_deref());
                let code = DropReason::ServerDisconnect(reason as u8);
                self.connection_lost(code, format!("server sent DISCONNECT: {why}"), ctx);
            }
        }
        self.schedule_tick(ctx);
    }

    fn on_connected(&mut self, session_present: bool, response_information: Option<String>) {
        let reconnect = self.ever_connected;
        self.apply_response_info(response_information, !reconnect);
        self.ever_connected = true;
        let now = Instant::now();
        self.backoff.connected(now);
        let back = self.downtime.up(now);
        self.emit(Event::Connected {
            session_present,
            back,
        });
        if reconnect {
            self.tell_supervisor(WillFact::Back {
                device: self.index,
                at: Instant::now(),
            });
            self.network_effect(|after| format!("reconnected {:.1}s later", after.as_secs_f64()));
            // The fault's effect on the connection is told; later drops are not its doing.
            self.watched_fault = None;
        }
        if !session_present {
            self.subscribed = false;
        }
        let filters = self.subscriptions();
        // A resumed session keeps its subscriptions, but only those the broker acknowledged:
        // a link lost before the first SUBACK leaves the session without them.
        if filters.is_empty() || (session_present && self.subscribed) {
            self.link = Link::Up;
            self.now_ready();
        } else {
            self.link = Link::Subscribing;
            let (id, packet) = self.session.subscribe(&filters, Instant::now());
            self.pending_subscribe = Some((id, filters));
            self.write(packet);
        }
    }

    /// The SUBACK for `filters`, one reason code each, in order.
    fn on_subscribed(&mut self, filters: Vec<(String, QoS)>, reasons: &[SubAckReasonCode]) {
        self.subscribed = true;
        self.link = Link::Up;
        for ((filter, _), reason) in filters.into_iter().zip(reasons) {
            if reason.is_success() {
                continue;
            }
            let why = format!("{reason:?} (0x{:02X})", *reason as u8);
            tracing::warn!(device = %self.id, filter, reason = %why, "subscription refused");
            if let RoleState::Phone(phone) = &mut self.role {
                phone.refuse_response_topic(&filter, &why);
            }
            self.emit(Event::Refusal {
                what: Refused::Subscribe,
                topic: Some(filter),
                reason: why,
            });
        }
        self.now_ready();
    }

    fn now_ready(&mut self) {
        if !self.ever_ready {
            self.ever_ready = true;
            self.emit(Event::Ready);
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

impl StreamHandler<Frame> for DeviceActor {
    fn handle(&mut self, item: Frame, ctx: &mut Context<Self>) {
        if item.generation != self.generation {
            return;
        }
        if self.away.is_some() {
            // A stalled device is frozen: it reads nothing, so it acks nothing.
            return;
        }
        match item.frame {
            Ok(Inbound::Packet(packet)) => self.on_packet(packet, ctx),
            Ok(Inbound::Bad(bad)) => {
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
                self.reject(rejected, ctx);
            }
            // Before CONNACK this is often the broker turning us away at the TLS level (e.g. a
            // missing client certificate shows only on the first read, after the handshake).
            Err(e) => {
                let reason = match e {
                    CodecError::Io(_) => DropReason::Io,
                    CodecError::Malformed(_) => DropReason::Malformed,
                    CodecError::TooLarge { .. } => DropReason::TooLarge,
                };
                self.connection_lost(reason, format!("bad data from the broker: {e}"), ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The default would stop the actor; a closed socket is a reconnect, not an end. Only the
        // current connection's end matters: `forget_link` has already moved past older ones.
        if self.reader.is_some() {
            self.reader = None;
            let detail = "the broker closed the connection".to_owned();
            self.connection_lost(DropReason::Closed, detail, ctx);
        }
    }
}

impl WriteHandler<CodecError> for DeviceActor {
    fn error(&mut self, err: CodecError, ctx: &mut Context<Self>) -> Running {
        if self.away.is_some() || self.stopping {
            // A writer closed on purpose (a disconnect fault, the goodbye) failing to flush:
            // that connection is already given up.
            return Running::Stop;
        }
        // This runs inside the writer's own poll: touching (or dropping) the writer here would
        // borrow it twice. Handle the loss on the next turn instead.
        let generation = self.generation;
        let reason = format!("write failed: {err}");
        ctx.run_later(Duration::ZERO, move |act, ctx| {
            if act.generation == generation {
                act.connection_lost(DropReason::Io, reason, ctx);
            }
        });
        // Stop this writer: the connection is gone, and a new one gets a new writer.
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            // The goodbye DISCONNECT is flushed.
            ctx.stop();
        }
    }
}
