//! The device itself, sans-IO: told what arrived (a packet, a closed socket, a fault, a phase
//! of the run) and what time it is, it changes state, counts into its shard's [`Tally`] and
//! returns [`Action`]s (write this, dial, close) for its actor to carry out. Like
//! [`crate::mqtt::Session`] under it, it never touches a socket or a clock, so every behaviour
//! (pacing, answers, faults, reconnects) is tested without a broker.
//!
//! This file holds the state and the entry points; the behaviours are split by job:
//! `link` (the connection's lifecycle), `phone`, `respond` (lights and sensors), `will`, and
//! `faults`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt5_protocol::QoS;
use mqtt5_protocol::packet::publish::PublishPacket;

use super::LightState;
use super::backoff::{Backoff, Downtime};
use super::faults::FaultState;
use super::phone::NOT_A_REQUEST;
use super::phone::Phone;
use super::respond::PendingAnswer;
use super::rng::Streams;
use super::sensor::SignalGen;
use super::timers::Timers;
use crate::events::DeviceIndex;
use crate::fleet::{self, Fleet, Qos, Role as Spec};
use crate::mqtt::{CodecError, Inbound, Outbound, Outgoing, PublishError, Session, SessionConfig};
use crate::shared::Shared;
use crate::supervisor::WillFact;
use crate::tally::Tally;
use crate::timeline::Slot;
use crate::transport::toxic::{Direction, Toxic};

/// What the device asks its actor to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Open connection number `generation` (TCP, then TLS for `mqtts://`), through a
    /// network-fault proxy when `proxied` (`seed` drives its jitter). The outcome comes back
    /// as [`Device::dialed`].
    Dial {
        generation: u64,
        proxied: bool,
        seed: u64,
    },
    /// Write to the current connection.
    Write(Outbound),
    /// Flush what was written (a DISCONNECT), then close the connection.
    Close,
    /// Close the connection at once, without flushing: the socket just goes.
    Drop,
    /// The run is over and a DISCONNECT is written: let the broker close the connection (it
    /// must, on DISCONNECT), then stop. Whoever closes first keeps the connection's port in
    /// TIME_WAIT for a minute; on the broker's side that is its one listening port, on ours
    /// one ephemeral port per device, which a second large run on the same broker within the
    /// minute would then lack.
    Leave,
    /// Change what the proxy does to this connection's bytes, one way.
    Toxic(Direction, Option<Toxic>),
    /// Tell the supervisor a fact about an outage.
    Tell(WillFact),
    /// The device is done: it gave up its first connection, or the run is over and there is
    /// no connection to say goodbye on.
    Stop,
}

/// Where an event's consequences go: the actions, and the counts.
pub struct Out<'a> {
    pub actions: &'a mut Vec<Action>,
    pub tally: &'a mut Tally,
    pub shared: &'a Shared,
}

impl Out<'_> {
    /// The timeline's slot for `now` (what happens before the run starts counts in the first).
    pub fn second(&mut self, now: Instant) -> &mut Slot {
        let since = self
            .shared
            .started()
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        self.tally.timeline.at(since)
    }
}

/// Where the device's link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    Down,
    Connecting,
    /// CONNACK received, SUBACK awaited.
    Subscribing,
    Up,
}

/// The device's occasional timed steps (see [`Timers`]). Dialling and the CONNACK deadline,
/// which every device has, are fields of their own: a queue kept by every device of a large
/// fleet costs memory.
#[derive(Debug)]
pub(super) enum Timed {
    /// A connection fault's `down_for` is over.
    ComeBack,
    /// A responder's answer, held for its `delay` (or a `slow` fault's).
    Answer(Box<PendingAnswer>),
    /// A Will consumer's ack, held for its `ack_delay`.
    Ack(Box<Outgoing>),
    /// A network fault that lasts `lasts` is over.
    LiftToxic(Bytes),
    /// A `withhold_acks` fault is over: resume the session to see redeliveries.
    ResumeAcks(Bytes),
    /// Stop counting DUP redeliveries after a `withhold_acks` fault.
    RedeliveryEnd(Bytes),
}

/// What a device does, with the state it keeps for it.
pub(super) enum Role {
    Phone(Box<Phone>),
    Light(LightState),
    Sensor(Box<Sensor>),
}

pub(super) struct Sensor {
    pub signal: SignalGen,
    pub next_reading: Option<Instant>,
}

/// Everything a device needs to start.
pub struct DeviceSetup {
    pub fleet: Arc<Fleet>,
    pub index: DeviceIndex,
    /// Faults it draws by probability; whether a network fault may act on it (then it
    /// connects through a proxy).
    pub faults: crate::faults::DeviceFaults,
    /// See [`super::reconnect_window`].
    pub reconnect_window: Duration,
}

pub struct Device {
    pub(super) fleet: Arc<Fleet>,
    pub(super) index: DeviceIndex,
    pub(super) qos: QoS,
    pub(super) session: Session,
    pub(super) link: Link,
    /// Connection attempts so far: names the socket the actor reports about, so a late word
    /// about an old one is ignored.
    pub(super) generation: u64,
    /// CONNECTs sent: names the connection whose Will is registered (`{id}#{incarnation}`).
    pub(super) incarnation: u32,
    pub(super) ever_connected: bool,
    pub(super) ever_ready: bool,
    /// The broker acknowledged the subscriptions in the current session.
    pub(super) subscribed: bool,
    /// The SUBSCRIBE awaiting its SUBACK: its packet id and filters.
    pub(super) pending_subscribe: Option<(u16, Vec<(String, QoS)>)>,
    /// The run is on: phones send, sensors read.
    pub(super) running: bool,
    /// The run is over: nothing is reconnected any more.
    pub(super) stopping: bool,
    /// A connection fault keeps the device away (until `Timed::ComeBack`).
    pub(super) away: Option<fleet::FaultKind>,
    pub(super) backoff: Backoff,
    pub(super) downtime: Downtime,
    /// The fingerprint of the message that closed the last connection, if one did.
    pub(super) poison: Option<u64>,
    pub(super) rng: Streams,
    pub(super) timers: Timers<Timed>,
    /// When to dial again after a backoff.
    pub(super) dial_at: Option<Instant>,
    /// The connection attempt that must have its CONNACK by then.
    pub(super) connack_by: Option<(u64, Instant)>,
    /// Only devices a fault may hit keep fault state.
    pub(super) faults: Option<Box<FaultState>>,
    pub(super) role: Role,
    /// Publishes sent so far, to tag the next one (a refusal names its tag).
    pub(super) next_tag: u64,
}

/// How long a device waits for TCP (and TLS); the CONNACK must follow within as long again.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Device {
    /// The connection went (`planned`: a fault did it): the outage starts, and a device that
    /// was connected leaves the timeline's count.
    pub(super) fn went_down(&mut self, now: Instant, planned: bool, out: &mut Out<'_>) {
        if self.downtime.down(now, planned) {
            out.second(now).connected -= 1;
        }
    }

    pub fn new(setup: DeviceSetup) -> Self {
        let DeviceSetup {
            fleet,
            index,
            faults,
            reconnect_window,
        } = setup;
        let spec = &fleet.devices[index as usize];
        let role = match &spec.role {
            Spec::Phone(p) => Role::Phone(Box::new(Phone::new(&spec.id, p))),
            Spec::Light(l) => Role::Light(LightState::new(l.initially_on)),
            Spec::Sensor(s) => Role::Sensor(Box::new(Sensor {
                signal: SignalGen::new(&s.signal),
                next_reading: None,
            })),
        };
        let connection = &spec.connection;
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
            maximum_packet_size: super::MAX_PACKET as u32,
            ..SessionConfig::new(spec.id.clone())
        });
        let faults = (faults.proxied || !faults.chances.is_empty())
            .then(|| Box::new(FaultState::new(faults)));
        Self {
            qos: qos(connection.qos),
            session,
            link: Link::Down,
            generation: 0,
            incarnation: 0,
            ever_connected: false,
            ever_ready: false,
            subscribed: false,
            pending_subscribe: None,
            running: false,
            stopping: false,
            away: None,
            backoff: Backoff::new(reconnect_window, connection.keepalive),
            downtime: Downtime::default(),
            poison: None,
            rng: Streams::new(fleet.seed, index),
            timers: Timers::default(),
            dial_at: None,
            connack_by: None,
            faults,
            role,
            next_tag: 0,
            index,
            fleet,
        }
    }

    pub(super) fn spec(&self) -> &fleet::Device {
        &self.fleet.devices[self.index as usize]
    }

    pub fn id(&self) -> &str {
        &self.spec().id
    }

    /// The device starts: its first connection.
    pub fn start(&mut self, now: Instant, out: &mut Out<'_>) {
        self.connect(now, out);
    }

    /// The run starts: every device is connected and subscribed.
    pub fn begin(&mut self, now: Instant, out: &mut Out<'_>) {
        self.running = true;
        self.downtime.begin(now);
        match &mut self.role {
            Role::Phone(_) => self.phone_begin(now, out),
            Role::Sensor(sensor) => {
                if let Spec::Sensor(spec) = &self.fleet.devices[self.index as usize].role {
                    sensor.next_reading = now.checked_add(spec.every);
                }
            }
            Role::Light(_) => {}
        }
    }

    /// The run's duration is over: no new requests or readings; answers and requests in
    /// flight go on.
    pub fn wind(&mut self, out: &mut Out<'_>) {
        self.running = false;
        if let Role::Phone(phone) = &mut self.role {
            phone.wind(out);
        }
    }

    /// The run is over: say goodbye with DISCONNECT 0x00, ending the session, or stop at once
    /// when there is no connection to say it on.
    pub fn shutdown(&mut self, now: Instant, out: &mut Out<'_>) {
        self.running = false;
        self.stopping = true;
        if let Some(outage) = self.downtime.outage(now) {
            out.tally.links.offline_at_end += 1;
            out.tally.links.disconnected_s += outage.unplanned.as_secs_f64();
        }
        if self.link != Link::Up || self.away.is_some() {
            out.actions.push(Action::Stop);
            return;
        }
        let goodbye = self.session.disconnect_ending_session();
        self.write(goodbye, out);
        out.actions.push(Action::Leave);
        self.link = Link::Down;
    }

    /// Whether the device still waits for connection attempt `generation`.
    pub fn expects(&self, generation: u64) -> bool {
        generation == self.generation && !self.stopping && self.link == Link::Connecting
    }

    /// The actor's connection attempt `generation` ended: connected, or why not.
    pub fn dialed(
        &mut self,
        generation: u64,
        result: Result<(), String>,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        if !self.expects(generation) {
            return;
        }
        match result {
            Ok(()) => self.attached(now, out),
            Err(reason) => self.connect_failed(reason, now, out),
        }
    }

    /// What the reader of connection `generation` decoded.
    pub fn frame(&mut self, generation: u64, frame: Inbound, now: Instant, out: &mut Out<'_>) {
        if generation != self.generation || self.away.is_some() {
            // A stalled device is frozen: it reads nothing, so it acks nothing.
            return;
        }
        match frame {
            Inbound::Packet(packet) => self.on_packet(packet, now, out),
            Inbound::Bad(bad) => self.on_bad_frame(bad, now, out),
        }
    }

    /// Connection `generation` ended under the device: its reader met the end of the stream
    /// (`None`) or an error, or a write failed.
    pub fn closed(
        &mut self,
        generation: u64,
        error: Option<CodecError>,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        if generation != self.generation {
            return;
        }
        use crate::events::DropReason;
        let (reason, detail) = match error {
            None => (
                DropReason::Closed,
                "the broker closed the connection".to_owned(),
            ),
            Some(e) => {
                let reason = match e {
                    CodecError::Io(_) => DropReason::Io,
                    CodecError::Malformed(_) => DropReason::Malformed,
                    CodecError::TooLarge { .. } => DropReason::TooLarge,
                };
                // Before CONNACK this is often the broker turning us away at the TLS level
                // (a missing client certificate shows only on the first read).
                (reason, format!("bad data from the broker: {e}"))
            }
        };
        self.connection_lost(reason, detail, now, out);
    }

    /// Whatever is due at `now`: timed steps, keepalive, request deadlines, pacing.
    pub fn tick(&mut self, now: Instant, out: &mut Out<'_>) {
        if let Some((generation, by)) = self.connack_by
            && by <= now
        {
            self.connack_by = None;
            if generation == self.generation && self.link == Link::Connecting {
                self.drop_link(out);
                let limit = CONNECT_TIMEOUT * 2;
                self.connect_failed(format!("no CONNACK within {limit:?}"), now, out);
            }
        }
        if self.dial_at.is_some_and(|at| at <= now) {
            self.dial_at = None;
            if !self.stopping && self.away.is_none() && self.link == Link::Down {
                self.connect(now, out);
            }
        }
        while let Some(step) = self.timers.pop_due(now) {
            self.timed(step, now, out);
        }
        self.keepalive(now, out);
        match &self.role {
            Role::Phone(_) => self.phone_tick(now, out),
            Role::Sensor(_) => self.sensor_tick(now, out),
            Role::Light(_) => {}
        }
    }

    /// When [`Device::tick`] next has something to do. The actor keeps one timer for it.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let keepalive = if self.away.is_none() {
            self.session.next_tick()
        } else {
            None
        };
        let role = match &self.role {
            Role::Phone(phone) => phone.next_wakeup(self.running),
            Role::Sensor(sensor) if self.running => sensor.next_reading,
            _ => None,
        };
        let connack = self.connack_by.map(|(_, by)| by);
        [
            self.timers.next_at(),
            self.dial_at,
            connack,
            keepalive,
            role,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn timed(&mut self, step: Timed, now: Instant, out: &mut Out<'_>) {
        match step {
            Timed::ComeBack => self.come_back(now, out),
            Timed::Answer(answer) => self.respond(*answer, now, out),
            Timed::Ack(ack) => self.publish_counted(*ack, now, out),
            Timed::LiftToxic(key) => self.lift_toxic(&key, out),
            Timed::ResumeAcks(key) => self.resume_acks(key, now, out),
            Timed::RedeliveryEnd(key) => self.redelivery_end(&key, out),
        }
    }

    /// Writes a packet, unless the device is away (a stall sends nothing, acks included).
    pub(super) fn write(&self, packet: mqtt5_protocol::Packet, out: &mut Out<'_>) {
        self.write_out(Outbound::Packet(packet), out);
    }

    pub(super) fn write_out(&self, item: Outbound, out: &mut Out<'_>) {
        if self.away.is_none() {
            out.actions.push(Action::Write(item));
        }
    }

    /// Hands a publish to the session (which may queue it under Receive Maximum) and writes
    /// whatever it releases. `tag` comes back if the broker refuses it: a request's sequence,
    /// or [`Device::next_untracked_tag`].
    pub(super) fn publish_tagged(
        &mut self,
        mut msg: Outgoing,
        tag: u64,
        now: Instant,
        out: &mut Out<'_>,
    ) -> Result<(), PublishError> {
        msg.tag = tag;
        if let Some(packet) = self.session.publish(msg, now)? {
            self.write(packet, out);
        }
        Ok(())
    }

    /// A tag for a publish no request waits on.
    pub(super) fn next_untracked_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag | NOT_A_REQUEST
    }

    /// Publishes what no request waits on (an answer, a Will ack): a refusal is counted.
    pub(super) fn publish_counted(&mut self, msg: Outgoing, now: Instant, out: &mut Out<'_>) {
        let tag = self.next_untracked_tag();
        if let Err(e) = self.publish_tagged(msg, tag, now, out) {
            tracing::debug!(device = %self.id(), error = %e, "not published");
            match e {
                PublishError::QueueFull => out.tally.links.queue_overflows += 1,
                PublishError::TooLarge { .. } => out.tally.links.unsent_too_large += 1,
            }
        }
    }

    /// Connected, and not kept away by a fault: what the device publishes goes out now.
    pub(super) fn online(&self) -> bool {
        self.session.is_connected() && self.away.is_none()
    }

    /// A message arrived on one of the device's subscriptions.
    pub(super) fn on_message(&mut self, publish: PublishPacket, now: Instant, out: &mut Out<'_>) {
        self.note_redelivery(&publish);
        if self.is_own_will_ack(&publish.topic_name) {
            return self.learn_will_ack(&publish, now, out);
        }
        if self.consumes(&publish.topic_name) {
            return self.consume_will(publish, now, out);
        }
        match self.role {
            Role::Phone(_) => self.phone_answer(publish, now, out),
            Role::Light(_) | Role::Sensor(_) => self.on_request(publish, now, out),
        }
    }

    /// Every filter this device subscribes to, with its QoS: its role's topics, the Wills it
    /// consumes and its own Will's Response Topic. Will traffic is QoS 1 whatever the device's
    /// QoS, so an ack published while the device is away waits for it in its session.
    pub(super) fn subscriptions(&self) -> Vec<(String, QoS)> {
        let spec = self.spec();
        let mut filters: Vec<(String, QoS)> = match (&self.role, &spec.role) {
            (Role::Phone(phone), _) => phone
                .response_topics(spec)
                .into_iter()
                .map(|t| (t, self.qos))
                .collect(),
            (_, Spec::Light(l)) => vec![(l.command_topic.clone(), self.qos)],
            (_, Spec::Sensor(s)) => vec![(s.request_topic.clone(), self.qos)],
            _ => Vec::new(),
        };
        if let Some(consumer) = &spec.consume_wills {
            filters.extend(
                consumer
                    .filters
                    .iter()
                    .map(|f| (f.clone(), QoS::AtLeastOnce)),
            );
        }
        if let Some(will) = &spec.will {
            filters.push((will.response_topic.clone(), QoS::AtLeastOnce));
        }
        filters
    }

    /// Seconds since the run started, for the report's fault entries.
    pub(super) fn run_time(&self, now: Instant, shared: &Shared) -> f64 {
        shared
            .started()
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64())
    }
}

pub(super) fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}
