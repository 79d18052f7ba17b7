//! Device actors: one actix actor per simulated device, each owning its own MQTT 5 connection.
//!
//! This file is the connection lifecycle every device shares (connect, subscribe, keepalive,
//! reconnect with backoff, goodbye). What a device *does* lives beside it: `phone` (requester),
//! `light` (responder) and `sensor` (telemetry plus `get` requests). The MQTT rules themselves
//! are in the sans-IO [`crate::mqtt::Session`]; the actor only moves packets and keeps timers.

mod light;
mod phone;
mod sensor;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use futures_util::StreamExt;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::packet::suback::SubAckReasonCode;
use mqtt5_protocol::{Packet, PropertyId, PropertyValue, QoS, ReasonCode};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

use crate::collector::Collector;
use crate::events::{DeviceEvent, DeviceIndex, Event};
use crate::fleet::{self, Qos, Role};
use crate::mqtt::{CodecError, MqttCodec, Outgoing, Session, SessionConfig};

pub use light::LightState;
pub use phone::{RequestTracker, Verdict};
pub use sensor::SignalGen;

/// How many times a device tries its *first* connection before the run gives up on the broker.
/// Later drops are retried for as long as the run lasts.
const FIRST_CONNECT_ATTEMPTS: u32 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Read buffer to start with; it grows for larger packets. Small, because fleets are large.
const READ_BUFFER: usize = 512;
const MAX_PACKET: usize = 1024 * 1024;

type Writer = FramedWrite<Packet, OwnedWriteHalf, MqttCodec>;

/// Everything a device needs to start: its spec, where the broker is, whom to tell.
pub struct DeviceSetup {
    pub index: DeviceIndex,
    pub spec: Arc<fleet::Device>,
    pub broker: SocketAddr,
    pub seed: u64,
    pub collector: Addr<Collector>,
}

/// Where the device's link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    Connecting,
    /// CONNACK received, SUBACK awaited.
    Subscribing,
    Up,
}

pub struct DeviceActor {
    index: DeviceIndex,
    spec: Arc<fleet::Device>,
    broker: SocketAddr,
    collector: Addr<Collector>,
    session: Session,
    link: Link,
    /// Incremented for every connection, so events of a dead connection are recognised and ignored.
    generation: u64,
    reader: Option<SpawnHandle>,
    writer: Option<Writer>,
    tick: Option<SpawnHandle>,
    ever_connected: bool,
    ever_ready: bool,
    failed_attempts: u32,
    subscribe_id: Option<u16>,
    /// Set by `Begin`: the run is on, so the role's schedules may run.
    running: bool,
    /// Set by `Shutdown`: nothing is reconnected any more.
    stopping: bool,
    rng: SmallRng,
    role: RoleState,
    next_tag: u64,
}

enum RoleState {
    Phone(phone::PhoneState),
    Light(light::LightState),
    Sensor(sensor::SensorState),
}

impl DeviceActor {
    pub fn new(setup: DeviceSetup) -> Self {
        let spec = setup.spec;
        let session = Session::new(SessionConfig {
            client_id: spec.id.clone(),
            keepalive: spec.connection.keepalive,
            clean_start: spec.connection.clean_start,
            session_expiry: spec.connection.session_expiry,
            receive_maximum: spec.connection.receive_maximum,
            request_response_information: false,
            username: None,
            password: None,
            will: None,
        });
        // Each device draws from its own stream, derived from the fleet seed and its position,
        // so a run reproduces whatever the arbiters' interleaving.
        let rng = SmallRng::seed_from_u64(
            setup.seed ^ (u64::from(setup.index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let role = match &spec.role {
            Role::Phone(p) => RoleState::Phone(phone::PhoneState::new(&spec.id, p)),
            Role::Light(l) => RoleState::Light(light::LightState::new(l.initially_on)),
            Role::Sensor(s) => RoleState::Sensor(sensor::SensorState::new(&s.signal)),
        };
        Self {
            index: setup.index,
            spec,
            broker: setup.broker,
            collector: setup.collector,
            session,
            link: Link::Down,
            generation: 0,
            reader: None,
            writer: None,
            tick: None,
            ever_connected: false,
            ever_ready: false,
            failed_attempts: 0,
            subscribe_id: None,
            running: false,
            stopping: false,
            rng,
            role,
            next_tag: 0,
        }
    }

    fn emit(&self, event: Event) {
        self.collector.do_send(DeviceEvent {
            device: self.index,
            event,
        });
    }

    fn qos(&self) -> QoS {
        match self.spec.connection.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        }
    }

    fn write(&mut self, packet: Packet) {
        if let Some(writer) = &mut self.writer {
            writer.write(packet);
        }
    }

    /// Hands a publish to the session (which may queue it under Receive Maximum) and writes
    /// whatever it releases. Returns the tag that `Delivered`/`Refused` will name.
    fn publish(&mut self, mut msg: Outgoing) -> u64 {
        self.next_tag += 1;
        msg.tag = self.next_tag;
        if let Some(packet) = self.session.publish(msg, Instant::now()) {
            self.write(packet);
        }
        self.next_tag
    }

    // ----- connection lifecycle -------------------------------------------------------------

    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.link = Link::Connecting;
        self.generation += 1;
        let generation = self.generation;
        let addr = self.broker;
        let attempt = async move {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| format!("no answer from {addr} within {CONNECT_TIMEOUT:?}"))?
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            // Without NODELAY a small answer can wait ~40 ms for a delayed ACK.
            stream
                .set_nodelay(true)
                .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
            Ok::<_, String>(stream)
        };
        ctx.spawn(attempt.into_actor(self).map(move |result, act, ctx| {
            if act.generation != generation || act.stopping {
                return;
            }
            match result {
                Ok(stream) => act.attach(stream, ctx),
                Err(reason) => act.connect_failed(reason, ctx),
            }
        }));
        // The CONNACK must follow within the same bound, or the attempt counts as failed.
        ctx.run_later(CONNECT_TIMEOUT * 2, move |act, ctx| {
            if act.generation == generation && act.link == Link::Connecting {
                act.drop_link(ctx);
                act.connect_failed(
                    format!(
                        "no CONNACK from {} within {:?}",
                        act.broker,
                        CONNECT_TIMEOUT * 2
                    ),
                    ctx,
                );
            }
        });
    }

    fn attach(&mut self, stream: TcpStream, ctx: &mut Context<Self>) {
        let (read, write): (OwnedReadHalf, OwnedWriteHalf) = stream.into_split();
        let generation = self.generation;
        let frames = FramedRead::with_capacity(read, MqttCodec::new(MAX_PACKET), READ_BUFFER)
            .map(move |frame| Frame { generation, frame });
        self.reader = Some(ctx.add_stream(frames));
        self.writer = Some(FramedWrite::new(write, MqttCodec::new(MAX_PACKET), ctx));
        let connect = self.session.connect(Instant::now());
        self.write(connect);
    }

    /// A connection attempt failed before CONNACK. The first connection gets a bounded number
    /// of tries (the run cannot start without it); later ones retry until the run ends.
    fn connect_failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.link = Link::Down;
        self.failed_attempts += 1;
        if !self.ever_connected && self.failed_attempts >= FIRST_CONNECT_ATTEMPTS {
            tracing::error!(device = %self.spec.id, %reason, "giving up connecting");
            self.emit(Event::ConnectFailed { reason });
            ctx.stop();
            return;
        }
        tracing::debug!(device = %self.spec.id, %reason, attempt = self.failed_attempts, "connect failed, retrying");
        self.reconnect_later(ctx);
    }

    /// Exponential backoff with seeded full jitter, capped.
    fn reconnect_later(&mut self, ctx: &mut Context<Self>) {
        use rand::Rng;
        let exp = self.failed_attempts.min(16);
        let cap = BACKOFF_START.saturating_mul(1 << exp).min(BACKOFF_MAX);
        let delay = cap.mul_f64(self.rng.random_range(0.5..=1.0));
        ctx.run_later(delay, |act, ctx| {
            if !act.stopping && act.link == Link::Down {
                act.connect(ctx);
            }
        });
    }

    /// Closes the socket without a DISCONNECT and forgets the connection.
    fn drop_link(&mut self, ctx: &mut Context<Self>) {
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
        }
        if let Some(writer) = self.writer.take() {
            ctx.cancel_future(writer.handle());
        }
        if let Some(tick) = self.tick.take() {
            ctx.cancel_future(tick);
        }
        self.subscribe_id = None;
        self.link = Link::Down;
        self.generation += 1;
    }

    /// An established connection died under us: tell, clean up, come back.
    fn connection_lost(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let was = self.link;
        self.drop_link(ctx);
        self.session.connection_lost();
        if was == Link::Connecting {
            self.connect_failed(reason, ctx);
            return;
        }
        tracing::info!(device = %self.spec.id, %reason, "connection lost, reconnecting");
        self.emit(Event::ConnectionLost { reason });
        self.failed_attempts = 0;
        self.reconnect_later(ctx);
    }

    fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(tick) = self.tick.take() {
            ctx.cancel_future(tick);
        }
        if let Some(at) = self.session.next_tick() {
            let wait = at.saturating_duration_since(Instant::now());
            self.tick = Some(ctx.run_later(wait, |act, ctx| {
                act.tick = None;
                match act.session.tick(Instant::now()) {
                    Ok(Some(ping)) => act.write(ping),
                    Ok(None) => {}
                    Err(e) => return act.connection_lost(e.to_string(), ctx),
                }
                act.schedule_tick(ctx);
            }));
        }
    }

    // ----- packets from the broker ----------------------------------------------------------

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
        if let Err(e) = result {
            tracing::warn!(device = %self.spec.id, error = %e, "protocol error, dropping connection");
            self.connection_lost(e.to_string(), ctx);
        }
    }

    fn on_session_event(&mut self, event: crate::mqtt::Event, ctx: &mut Context<Self>) {
        use crate::mqtt::Event as S;
        match event {
            S::Connected {
                session_present, ..
            } => self.on_connected(session_present, ctx),
            S::ConnectRefused {
                reason,
                reason_string,
            } => {
                let why = describe(reason, reason_string.as_deref());
                self.drop_link(ctx);
                if self.ever_connected {
                    self.connect_failed(format!("CONNACK refused: {why}"), ctx);
                } else {
                    // Credentials or bans do not fix themselves: fail fast on the first connect.
                    self.failed_attempts = FIRST_CONNECT_ATTEMPTS;
                    self.connect_failed(
                        format!("{} refused the connection: {why}", self.broker),
                        ctx,
                    );
                }
            }
            S::Subscribed { packet_id, reasons } => {
                if Some(packet_id) == self.subscribe_id {
                    self.on_subscribed(&reasons);
                }
            }
            S::Message(publish) => self.on_message(publish, ctx),
            S::Delivered { .. } => {}
            S::Refused {
                tag,
                reason,
                reason_string,
            } => self.on_refused(tag, describe(reason, reason_string.as_deref())),
            S::ServerDisconnect {
                reason,
                reason_string,
            } => self.connection_lost(
                format!(
                    "server sent DISCONNECT: {}",
                    describe(reason, reason_string.as_deref())
                ),
                ctx,
            ),
            S::PingResponse => {}
        }
        self.schedule_tick(ctx);
    }

    fn on_connected(&mut self, session_present: bool, ctx: &mut Context<Self>) {
        let reconnect = self.ever_connected;
        self.ever_connected = true;
        self.failed_attempts = 0;
        self.emit(Event::Connected {
            reconnect,
            session_present,
        });
        let filters = self.subscriptions();
        if filters.is_empty() || (reconnect && session_present) {
            self.link = Link::Up;
            self.on_ready(ctx);
        } else {
            self.link = Link::Subscribing;
            let (id, packet) = self.session.subscribe(&filters, Instant::now());
            self.subscribe_id = Some(id);
            self.write(packet);
        }
    }

    fn on_subscribed(&mut self, reasons: &[SubAckReasonCode]) {
        self.subscribe_id = None;
        self.link = Link::Up;
        let filters = self.subscriptions();
        for ((filter, _), reason) in filters.iter().zip(reasons) {
            if !reason.is_success() {
                tracing::warn!(device = %self.spec.id, filter, ?reason, "subscription refused");
            }
        }
        if !self.ever_ready {
            self.ever_ready = true;
            self.emit(Event::Ready);
        }
    }

    /// The link is fully up again after a reconnect with the session kept.
    fn on_ready(&mut self, _ctx: &mut Context<Self>) {
        if !self.ever_ready {
            self.ever_ready = true;
            self.emit(Event::Ready);
        }
    }

    fn subscriptions(&self) -> Vec<(String, QoS)> {
        let qos = self.qos();
        let topics: Vec<String> = match &self.spec.role {
            Role::Phone(p) => {
                let mut topics: Vec<String> =
                    p.targets.iter().map(|t| t.response_topic.clone()).collect();
                topics.sort();
                topics.dedup();
                topics
            }
            Role::Light(l) => vec![l.command_topic.clone()],
            Role::Sensor(s) => vec![s.request_topic.clone()],
        };
        topics.into_iter().map(|t| (t, qos)).collect()
    }

    fn on_message(&mut self, publish: PublishPacket, ctx: &mut Context<Self>) {
        match self.role {
            RoleState::Phone(_) => self.phone_response(publish),
            RoleState::Light(_) => self.light_command(publish, ctx),
            RoleState::Sensor(_) => self.sensor_request(publish),
        }
    }

    fn on_refused(&mut self, tag: u64, reason: String) {
        if let RoleState::Phone(_) = self.role {
            self.phone_refused(tag, reason);
        } else {
            tracing::warn!(device = %self.spec.id, %reason, "publish refused by the broker");
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

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
    }
}

/// A decoded packet, tagged with the connection it came from.
struct Frame {
    generation: u64,
    frame: Result<Packet, CodecError>,
}

impl StreamHandler<Frame> for DeviceActor {
    fn handle(&mut self, item: Frame, ctx: &mut Context<Self>) {
        if item.generation != self.generation {
            return;
        }
        match item.frame {
            Ok(packet) => self.on_packet(packet, ctx),
            Err(e) => self.connection_lost(format!("bad data from the broker: {e}"), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The default would stop the actor; a closed socket is a reconnect, not an end. Only the
        // current connection's end matters: `drop_link` has already moved past older ones.
        if self.reader.is_some() {
            self.reader = None;
            self.connection_lost("the broker closed the connection".into(), ctx);
        }
    }
}

impl WriteHandler<CodecError> for DeviceActor {
    fn error(&mut self, err: CodecError, ctx: &mut Context<Self>) -> Running {
        self.connection_lost(format!("write failed: {err}"), ctx);
        Running::Continue
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        if self.stopping {
            // The goodbye DISCONNECT is flushed.
            _ctx.stop();
        }
    }
}

// ----- control messages from the runner ----------------------------------------------------

/// The run starts: every device is connected and subscribed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Begin;

impl Handler<Begin> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Begin, ctx: &mut Context<Self>) {
        self.running = true;
        match self.role {
            RoleState::Phone(_) => self.schedule_request(ctx, true),
            RoleState::Sensor(_) => self.schedule_telemetry(ctx),
            RoleState::Light(_) => {}
        }
    }
}

/// The run's duration is over: send no new requests or readings, but keep answering and
/// waiting for answers to requests in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wind;

impl Handler<Wind> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Wind, _: &mut Context<Self>) {
        self.running = false;
    }
}

/// The run is over: say goodbye with DISCONNECT 0x00 and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.running = false;
        self.stopping = true;
        if self.link == Link::Down || self.writer.is_none() {
            ctx.stop();
            return;
        }
        let goodbye = self.session.disconnect(ReasonCode::Success);
        self.write(goodbye);
        if let Some(writer) = &mut self.writer {
            writer.close();
        }
    }
}

/// The Correlation Data of a received PUBLISH, if any.
fn correlation_of(publish: &PublishPacket) -> Option<bytes::Bytes> {
    match publish.properties.get(PropertyId::CorrelationData) {
        Some(PropertyValue::BinaryData(data)) => Some(data.clone()),
        _ => None,
    }
}

/// The Response Topic of a received PUBLISH, if any.
fn response_topic_of(publish: &PublishPacket) -> Option<String> {
    match publish.properties.get(PropertyId::ResponseTopic) {
        Some(PropertyValue::Utf8String(topic)) => Some(topic.clone()),
        _ => None,
    }
}
