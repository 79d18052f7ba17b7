//! Device actors: one actix actor per simulated device, each owning its own MQTT 5 connection.
//!
//! - `mod.rs` (here): the actor, how it is built, and the runner's control messages.
//! - `link`: the connection lifecycle every device shares: connect, subscribe, keepalive,
//!   reconnect with backoff, packets in and out.
//! - `fault`: connection faults injected on purpose (kill, stall, disconnect, flap).
//! - `network`: network faults, as toxics on an in-process proxy to the broker.
//! - `protocol`: protocol faults: acks held back, malformed and oversize packets.
//! - `will`: the Will registered per connection, acks learned on reconnect, Will consumers.
//! - `phone`, `light`, `sensor`: what a device does; `respond`: answering a request, shared by
//!   lights and sensors (misbehaving on purpose, when a fault says so); `observer`: the
//!   supervisor's connection.
//!
//! The MQTT rules themselves are in the sans-IO [`crate::mqtt::Session`]; the actor only moves
//! packets and keeps timers.

mod backoff;
mod fault;
mod light;
mod link;
mod network;
mod observer;
mod phone;
mod protocol;
mod respond;
mod sensor;
mod will;

use std::sync::Arc;

use actix::prelude::*;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::{PropertyId, PropertyValue, QoS};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::events::{DeviceEvent, DeviceIndex, Event, Refused, ResponseInfo};
use crate::fleet::{self, FaultClass, FaultKind, FaultParams, Qos, Role};
use crate::mqtt::{Session, SessionConfig};
use crate::supervisor::{Seen, WillFact};
use crate::transport::Endpoint;

pub use backoff::{Backoff, Downtime, reconnect_window};
pub use fault::Inject;
pub use light::{LightState, UnknownCommand};
pub use phone::{RequestTracker, Verdict};
pub use sensor::SignalGen;

/// Everything a device needs to start: its spec, where the broker is, whom to tell.
pub struct DeviceSetup {
    pub index: DeviceIndex,
    pub spec: Arc<fleet::Device>,
    pub endpoint: Endpoint,
    pub seed: u64,
    pub events: Recipient<DeviceEvent>,
    /// Where outage facts go (the supervisor), when the run has one.
    pub facts: Option<Recipient<WillFact>>,
    /// Request or responder faults applied to each request or answer with a probability.
    pub chances: Vec<Chance>,
    /// Connect through a network-fault proxy (a network fault targets this device).
    pub proxied: bool,
    /// How long after a broker blip the fleet's reconnects are spread over
    /// ([`reconnect_window`]).
    pub reconnect_window: std::time::Duration,
}

/// A fault applied to each request or answer with probability `p`.
#[derive(Debug, Clone, Copy)]
pub struct Chance {
    pub kind: FaultKind,
    pub p: f64,
    pub params: FaultParams,
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

/// A fault in progress: the device stays away until `down_for` has passed.
#[derive(Debug, Clone, Copy)]
struct Away {
    kind: FaultKind,
}

pub struct DeviceActor {
    index: DeviceIndex,
    id: String,
    qos: QoS,
    will: Option<fleet::Will>,
    consumer: Option<fleet::WillConsumer>,
    /// Asked for Response Information in CONNECT; what `{response_info}` is when none comes.
    request_response_info: bool,
    response_info_fallback: String,
    endpoint: Endpoint,
    events: Recipient<DeviceEvent>,
    facts: Option<Recipient<WillFact>>,
    session: Session,
    link: Link,
    /// Incremented for every connection attempt, so events of a dead connection are ignored.
    generation: u64,
    /// CONNECTs sent: names the connection whose Will is registered (`{id}#{incarnation}`).
    incarnation: u32,
    reader: Option<SpawnHandle>,
    writer: Option<link::Writer>,
    tick: Option<SpawnHandle>,
    ever_connected: bool,
    ever_ready: bool,
    backoff: Backoff,
    downtime: Downtime,
    /// The SUBSCRIBE awaiting its SUBACK: packet id and the filters it asked for.
    pending_subscribe: Option<(u16, Vec<(String, QoS)>)>,
    /// The broker acknowledged this device's subscriptions in the current session.
    subscribed: bool,
    /// Set by `Begin`: the run is on, so the role's schedules may run.
    running: bool,
    /// Set by `Shutdown`: nothing is reconnected any more.
    stopping: bool,
    away: Option<Away>,
    /// Request or responder faults fired by the schedule, waiting for the next request or answer.
    armed: Vec<(FaultKind, FaultParams)>,
    chances: Vec<Chance>,
    /// Network faults: connect through a proxy; its control for the current connection; the
    /// toxics in force; the fault whose effect on the connection is being watched.
    proxied: bool,
    toxics: Option<crate::transport::toxic::ToxicControl>,
    active_toxics: Vec<network::ActiveToxic>,
    watched_fault: Option<(bytes::Bytes, std::time::Instant)>,
    /// Faults applied to the connection so far, to key their report entries.
    connection_faults: u32,
    /// DUP redeliveries seen since a withhold_acks fault resumed the session.
    redelivered: Option<u32>,
    /// The fingerprint of the message that closed the last connection, if one did.
    poison: Option<u64>,
    rng: SmallRng,
    role: RoleState,
    next_tag: u64,
}

enum RoleState {
    Phone(phone::PhoneState),
    Light(light::LightRole),
    Sensor(sensor::SensorState),
    Observer(observer::Observer),
}

impl DeviceActor {
    pub fn new(setup: DeviceSetup) -> Self {
        let spec = setup.spec;
        let role = match &spec.role {
            Role::Phone(p) => RoleState::Phone(phone::PhoneState::new(&spec.id, p)),
            Role::Light(l) => RoleState::Light(light::LightRole::new(l)),
            Role::Sensor(s) => RoleState::Sensor(sensor::SensorState::new(s)),
        };
        let mut actor = Self::with_role(
            setup.index,
            spec.id.clone(),
            &spec.connection,
            setup.endpoint,
            setup.seed,
            setup.events,
            role,
        );
        actor.will = spec.will.clone();
        actor.consumer = spec.consume_wills.clone();
        actor.facts = setup.facts;
        actor.chances = setup.chances;
        actor.proxied = setup.proxied;
        actor.backoff = Backoff::new(setup.reconnect_window, spec.connection.keepalive);
        actor
    }

    /// The supervisor's connection: subscribes to `filters` and forwards what arrives as
    /// [`Seen`]. Its lifecycle events go to `events`. `login`: user name and password, for a
    /// broker that wants them.
    pub fn observer(
        id: String,
        endpoint: Endpoint,
        login: Option<(String, fleet::Secret)>,
        filters: Vec<String>,
        events: Recipient<DeviceEvent>,
        seen: Recipient<Seen>,
    ) -> Self {
        let connection = fleet::Connection {
            keepalive: std::time::Duration::from_secs(30),
            clean_start: true,
            session_expiry: 0,
            qos: Qos::AtLeastOnce,
            receive_maximum: 1000,
            username: login.as_ref().map(|l| l.0.clone()),
            password: login.map(|l| l.1),
            request_response_info: false,
            response_info_fallback: String::new(),
        };
        let role = RoleState::Observer(observer::Observer { filters, seen });
        Self::with_role(DeviceIndex::MAX, id, &connection, endpoint, 0, events, role)
    }

    fn with_role(
        index: DeviceIndex,
        id: String,
        connection: &fleet::Connection,
        endpoint: Endpoint,
        seed: u64,
        events: Recipient<DeviceEvent>,
        role: RoleState,
    ) -> Self {
        let session = Session::new(SessionConfig {
            keepalive: connection.keepalive,
            clean_start: connection.clean_start,
            session_expiry: connection.session_expiry,
            receive_maximum: connection.receive_maximum,
            request_response_information: connection.request_response_info,
            username: connection.username.clone(),
            password: connection
                .password
                .as_ref()
                .map(|p| p.expose().as_bytes().to_vec()),
            maximum_packet_size: link::MAX_PACKET as u32,
            ..SessionConfig::new(id.clone())
        });
        let qos = match connection.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        // Each device draws from its own stream, derived from the fleet seed and its position,
        // so a run reproduces whatever the arbiters' interleaving.
        let stream = (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            index,
            id,
            qos,
            will: None,
            consumer: None,
            request_response_info: connection.request_response_info,
            response_info_fallback: connection.response_info_fallback.clone(),
            endpoint,
            events,
            facts: None,
            session,
            link: Link::Down,
            generation: 0,
            incarnation: 0,
            reader: None,
            writer: None,
            tick: None,
            ever_connected: false,
            ever_ready: false,
            backoff: Backoff::new(reconnect_window(1), connection.keepalive),
            downtime: Downtime::default(),
            pending_subscribe: None,
            subscribed: false,
            running: false,
            stopping: false,
            away: None,
            armed: Vec::new(),
            chances: Vec::new(),
            proxied: false,
            toxics: None,
            active_toxics: Vec::new(),
            watched_fault: None,
            connection_faults: 0,
            redelivered: None,
            poison: None,
            rng: SmallRng::seed_from_u64(seed ^ stream),
            role,
            next_tag: 0,
        }
    }

    fn emit(&self, event: Event) {
        self.events.do_send(DeviceEvent {
            device: self.index,
            event,
        });
    }

    fn tell_supervisor(&self, fact: WillFact) {
        if let Some(facts) = &self.facts {
            facts.do_send(fact);
        }
    }

    /// Every filter this device subscribes to, with its QoS: its role's topics, the Wills it
    /// consumes and its own Will's Response Topic. Will traffic is QoS 1 whatever the device's
    /// QoS, so an ack published while the device is away waits for it in its session.
    fn subscriptions(&self) -> Vec<(String, QoS)> {
        let mut filters: Vec<(String, QoS)> = match &self.role {
            RoleState::Phone(p) => p.response_topics().map(|t| (t, self.qos)).collect(),
            RoleState::Light(l) => vec![(l.spec.command_topic.clone(), self.qos)],
            RoleState::Sensor(s) => vec![(s.spec.request_topic.clone(), self.qos)],
            RoleState::Observer(o) => o
                .filters
                .iter()
                .map(|f| (f.clone(), QoS::AtLeastOnce))
                .collect(),
        };
        if let Some(consumer) = &self.consumer {
            filters.extend(
                consumer
                    .filters
                    .iter()
                    .map(|f| (f.clone(), QoS::AtLeastOnce)),
            );
        }
        if let Some(will) = &self.will {
            filters.push((will.response_topic.clone(), QoS::AtLeastOnce));
        }
        filters
    }

    fn on_message(&mut self, publish: PublishPacket, ctx: &mut Context<Self>) {
        self.note_redelivery(&publish);
        if self.is_own_will_ack(&publish.topic_name) {
            return self.learn_will_ack(&publish);
        }
        if self.consumes(&publish.topic_name) {
            return self.consume_will(publish, ctx);
        }
        match self.role {
            RoleState::Phone(_) => self.phone_response(publish),
            RoleState::Light(_) => self.light_command(publish, ctx),
            RoleState::Sensor(_) => self.sensor_request(publish, ctx),
            RoleState::Observer(_) => self.observe(publish),
        }
    }

    /// The fault to apply to this request or answer, if any: one the schedule armed first,
    /// else one drawn by its probability (seeded).
    /// Whether a fault acting on the connection can act now: connected, subscribed, not away.
    fn can_inject(&self) -> bool {
        self.link == Link::Up && self.away.is_none()
    }

    fn next_fault(&mut self, class: FaultClass) -> Option<(FaultKind, FaultParams)> {
        if let Some(i) = self.armed.iter().position(|(k, _)| k.class() == class) {
            return Some(self.armed.remove(i));
        }
        for chance in &self.chances {
            if chance.kind.class() == class && self.rng.random_bool(chance.p.clamp(0.0, 1.0)) {
                return Some((chance.kind, chance.params));
            }
        }
        None
    }

    fn on_refused(&mut self, tag: u64, topic: String, reason: String) {
        tracing::warn!(device = %self.id, %topic, %reason, "publish refused by the broker");
        self.emit(Event::Refusal {
            what: Refused::Publish,
            topic: Some(topic),
            reason: reason.clone(),
        });
        if let RoleState::Phone(_) = self.role {
            self.phone_refused(tag, reason);
        }
    }

    /// Once connected: what `{response_info}` stands for in this device's topics, from the
    /// CONNACK or, failing that, the fallback (Mosquitto never sends one).
    fn apply_response_info(&mut self, received: Option<String>, first: bool) {
        if !self.request_response_info {
            return;
        }
        let fallback = received.is_none();
        if fallback {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::warn!(
                    fallback = %self.response_info_fallback,
                    "the broker returned no Response Information (Mosquitto never does): using the fallback prefix"
                );
            });
        }
        let value = received
            .clone()
            .unwrap_or_else(|| self.response_info_fallback.clone());
        let topics = match &mut self.role {
            RoleState::Phone(phone) => phone.resolve_response_info(&value),
            _ => Vec::new(),
        };
        if first {
            self.emit(Event::ResponseInfo(Arc::new(ResponseInfo {
                received,
                fallback,
                topics,
            })));
        }
    }
}

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
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
        self.downtime.begin(std::time::Instant::now());
        match self.role {
            RoleState::Phone(_) => self.schedule_request(ctx, true),
            RoleState::Sensor(_) => self.schedule_telemetry(ctx),
            RoleState::Light(_) | RoleState::Observer(_) => {}
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

/// The run is over: say goodbye with DISCONNECT 0x00, ending the session, and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.running = false;
        self.stopping = true;
        if let Some(outage) = self.downtime.outage(std::time::Instant::now()) {
            self.emit(Event::OfflineAtEnd(outage));
        }
        if self.link != Link::Up || self.away.is_some() {
            ctx.stop();
            return;
        }
        let goodbye = self.session.disconnect_ending_session();
        self.write(goodbye);
        self.close_link(ctx);
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

/// The value of a user property of a received PUBLISH, if present.
fn user_property<'a>(publish: &'a PublishPacket, key: &str) -> Option<&'a str> {
    publish.properties.get_user_property_value(key)
}
