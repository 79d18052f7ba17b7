//! The client side of MQTT 5 as a sans-IO state machine: it is told what arrived and what time it
//! is, changes state, and returns the packets to write. Sockets and timers live in the caller.
//!
//! Modelled on rumqttc's `v5/state.rs`. What it tracks per connection attempt and across them:
//! outgoing QoS 1/2 flows (kept over reconnects so they can be resumed), incoming QoS 2 flows
//! awaiting PUBREL (so a re-sent PUBLISH is not delivered twice), SUBSCRIBEs awaiting SUBACK, the
//! server's Receive Maximum, and keepalive.
//!
//! Error convention: an `Err` from [`Session::handle`] or [`Session::tick`] means the connection is
//! no longer usable; the caller closes it and calls [`Session::connection_lost`].

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt5_protocol::packet::connack::ConnAckPacket;
use mqtt5_protocol::packet::connect::ConnectPacket;
use mqtt5_protocol::packet::disconnect::DisconnectPacket;
use mqtt5_protocol::packet::puback::PubAckPacket;
use mqtt5_protocol::packet::pubcomp::PubCompPacket;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::packet::pubrec::PubRecPacket;
use mqtt5_protocol::packet::pubrel::PubRelPacket;
use mqtt5_protocol::packet::suback::SubAckReasonCode;
use mqtt5_protocol::packet::subscribe::SubscribePacket;
use mqtt5_protocol::{
    ConnectOptions, ConnectProperties, Packet, Properties, PropertyId, PropertyValue, QoS,
    ReasonCode, WillMessage,
};

/// Receive Maximum when the server does not send one (MQTT 5 section 3.2.2.3.3).
const DEFAULT_RECEIVE_MAXIMUM: u16 = u16::MAX;

/// Publishes waiting to be sent (not connected, or the server's Receive Maximum reached) that a
/// session keeps at most; see [`Session::publish`].
pub const MAX_QUEUED: usize = 1000;

/// Packet ids publishes may occupy. The rest stay free for SUBSCRIBE, so `subscribe` can always
/// hand out an unused id even when a server allows 65535 publishes in flight.
const MAX_PUBLISH_IDS: usize = u16::MAX as usize - 1024;

#[derive(Clone)]
pub struct SessionConfig {
    pub client_id: String,
    /// 0 disables keepalive. Sent to the server in whole seconds, rounded up.
    pub keepalive: Duration,
    /// Used for the first CONNECT; see [`Session::connect`].
    pub clean_start: bool,
    pub session_expiry: u32,
    /// What we announce; 0 means "not announced" (the server then assumes 65535).
    pub receive_maximum: u16,
    pub request_response_information: bool,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// Boxed: it is large, and most devices of a fleet have none.
    pub will: Option<Box<WillMessage>>,
    /// The largest packet we accept (our codec's read limit), announced in CONNECT so a
    /// server never sends more; 0 announces none.
    pub maximum_packet_size: u32,
}

impl SessionConfig {
    /// A config with MQTT's usual defaults: 60 s keepalive, clean start, no session expiry.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            keepalive: Duration::from_secs(60),
            clean_start: true,
            session_expiry: 0,
            receive_maximum: 0,
            request_response_information: false,
            username: None,
            password: None,
            will: None,
            maximum_packet_size: 0,
        }
    }
}

// Hand-written so a password never ends up in a log line.
impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("client_id", &self.client_id)
            .field("keepalive", &self.keepalive)
            .field("clean_start", &self.clean_start)
            .field("session_expiry", &self.session_expiry)
            .field("receive_maximum", &self.receive_maximum)
            .field(
                "request_response_information",
                &self.request_response_information,
            )
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("will", &self.will)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .finish()
    }
}

/// A PUBLISH the application wants sent. `tag` comes back in Delivered/Refused events.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: PublishProperties,
    pub tag: u64,
}

/// Our own small property set for publishes, converted to and from `mqtt5_protocol::Properties`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishProperties {
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
    pub message_expiry: Option<u32>,
    pub content_type: Option<String>,
    pub payload_format_utf8: bool,
}

impl From<PublishProperties> for Properties {
    fn from(p: PublishProperties) -> Self {
        // Each setter appends, so every property is set at most once here; a second call would
        // put a duplicate on the wire, which the server must treat as a protocol error.
        let mut props = Properties::default();
        if let Some(topic) = p.response_topic {
            props.set_response_topic(topic);
        }
        if let Some(data) = p.correlation_data {
            props.set_correlation_data(data);
        }
        for (key, value) in p.user_properties {
            props.add_user_property(key, value);
        }
        if let Some(seconds) = p.message_expiry {
            props.set_message_expiry_interval(seconds);
        }
        if let Some(content_type) = p.content_type {
            props.set_content_type(content_type);
        }
        if p.payload_format_utf8 {
            props.set_payload_format_indicator(true);
        }
        props
    }
}

/// Reads the publish-related properties of an incoming PUBLISH (e.g. the request's response topic).
impl From<&Properties> for PublishProperties {
    fn from(props: &Properties) -> Self {
        let user_properties = props
            .get_all(PropertyId::UserProperty)
            .unwrap_or_default()
            .iter()
            .filter_map(|value| match value {
                PropertyValue::Utf8StringPair(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect();
        Self {
            response_topic: string_property(props, PropertyId::ResponseTopic),
            correlation_data: match props.get(PropertyId::CorrelationData) {
                Some(PropertyValue::BinaryData(data)) => Some(data.clone()),
                _ => None,
            },
            user_properties,
            message_expiry: props.get_message_expiry_interval(),
            content_type: string_property(props, PropertyId::ContentType),
            payload_format_utf8: matches!(
                props.get(PropertyId::PayloadFormatIndicator),
                Some(PropertyValue::Byte(1))
            ),
        }
    }
}

fn string_property(props: &Properties, id: PropertyId) -> Option<String> {
    match props.get(id) {
        Some(PropertyValue::Utf8String(s)) => Some(s.clone()),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    /// CONNACK success.
    Connected {
        session_present: bool,
        response_information: Option<String>,
        server_receive_maximum: u16,
        server_keepalive: Option<u16>,
        assigned_client_id: Option<String>,
    },
    /// CONNACK with a reason code >= 0x80.
    ConnectRefused {
        reason: ReasonCode,
        reason_string: Option<String>,
    },
    /// An incoming application message, delivered exactly once per QoS 2 flow (a re-sent PUBLISH
    /// with a packet id still awaiting PUBREL is acknowledged again but not delivered again).
    Message(PublishPacket),
    /// Our QoS 1 publish got PUBACK success / our QoS 2 publish completed with PUBCOMP.
    /// (QoS 0 publishes produce no event.)
    Delivered {
        tag: u64,
    },
    /// PUBACK or PUBREC with reason >= 0x80 (e.g. 0x87 not authorized); the flow ends there.
    /// Also a PUBCOMP with an error reason (0x92: the server no longer knew the flow).
    Refused {
        tag: u64,
        /// The topic of the refused PUBLISH.
        topic: String,
        reason: ReasonCode,
        reason_string: Option<String>,
    },
    /// SUBACK: one reason code per filter, in order.
    Subscribed {
        packet_id: u16,
        reasons: Vec<SubAckReasonCode>,
    },
    /// The server sent DISCONNECT.
    ServerDisconnect {
        reason: ReasonCode,
        reason_string: Option<String>,
    },
    PingResponse,
}

/// Why [`Session::publish`] refused a message: it is not sent, now or later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("{MAX_QUEUED} publishes already wait to be sent")]
    QueueFull,
    /// Sending it would get the connection closed, and the session would send it again on
    /// every reconnect: refused here instead, once.
    #[error(
        "packet_too_large: a {size} byte PUBLISH exceeds the broker's Maximum Packet Size of {max} bytes"
    )]
    TooLarge { size: usize, max: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("no PINGRESP within {0:?}")]
    KeepaliveTimeout(Duration),
    #[error("unexpected {0} from the server")]
    Unexpected(&'static str),
    #[error("{packet} for packet id {id}, which has no matching flow")]
    UnknownPacketId { packet: &'static str, id: u16 },
    #[error("the server exceeded our Receive Maximum of {0} QoS 2 messages in flight")]
    ReceiveMaximumExceeded(u16),
    /// A PUBLISH that decodes but that MQTT does not allow us to be sent (a Topic Alias we
    /// never allowed). `fingerprint` and `ack` let the caller spot a redelivery of it and let
    /// it go with [`Session::discard`].
    #[error("PUBLISH to {topic:?} {what}")]
    BadPublish {
        what: &'static str,
        topic: String,
        fingerprint: u64,
        ack: Option<(QoS, u16)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Disconnected,
    /// CONNECT returned, CONNACK not yet seen.
    Connecting,
    Connected,
}

/// A publish not yet handed out; `publish.packet_id` is None until it is.
#[derive(Debug)]
struct Pending {
    tag: u64,
    publish: PublishPacket,
}

/// An outgoing QoS 1/2 publish between PUBLISH and its final acknowledgement.
#[derive(Debug)]
struct InFlight {
    tag: u64,
    /// Send order, so a resumed session re-sends in the original order (MQTT 5 section 4.6).
    seq: u64,
    /// Kept after PUBREC too: if the server loses the session, the flow restarts from scratch.
    publish: PublishPacket,
    /// PUBREC received and PUBREL sent; waiting for PUBCOMP.
    released: bool,
}

pub struct Session {
    config: SessionConfig,
    state: State,
    /// True once a CONNACK accepted us: from then on CONNECT asks to resume the session.
    resume: bool,
    /// Effective keepalive: ours, or the server's from CONNACK.
    keepalive: Duration,
    last_sent: Option<Instant>,
    ping_sent: Option<Instant>,
    server_receive_maximum: u16,
    /// The server's Maximum Packet Size from its last CONNACK (None: no limit announced).
    server_maximum_packet_size: Option<usize>,
    next_packet_id: u16,
    next_seq: u64,
    in_flight: HashMap<u16, InFlight>,
    queue: VecDeque<Pending>,
    /// SUBSCRIBE packet id -> number of filters, to check the SUBACK against.
    pending_subscribes: HashMap<u16, usize>,
    /// Incoming QoS 2 packet ids we sent PUBREC for and have not seen PUBREL for.
    awaiting_pubrel: HashSet<u16>,
    /// A fault on purpose: acknowledge no incoming QoS 1/2 message.
    withhold_acks: bool,
    /// Acknowledgements held back so far.
    withheld: u32,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Self {
            keepalive: announced_keepalive(config.keepalive),
            config,
            state: State::Disconnected,
            resume: false,
            last_sent: None,
            ping_sent: None,
            server_receive_maximum: DEFAULT_RECEIVE_MAXIMUM,
            server_maximum_packet_size: None,
            next_packet_id: 1,
            next_seq: 0,
            in_flight: HashMap::new(),
            queue: VecDeque::new(),
            pending_subscribes: HashMap::new(),
            awaiting_pubrel: HashSet::new(),
            withhold_acks: false,
            withheld: 0,
        }
    }

    /// Hold back (true) or send again (false) PUBACK/PUBREC for incoming QoS 1/2 messages, to
    /// see the broker redeliver them. Returns how many were held back since the last call.
    pub fn withhold_acks(&mut self, withhold: bool) -> u32 {
        self.withhold_acks = withhold;
        std::mem::take(&mut self.withheld)
    }

    /// The configured client id, or the one the server assigned in CONNACK.
    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    /// The TCP connection is up: returns the CONNECT to send. The first CONNECT uses
    /// `config.clean_start`; once a CONNACK has accepted us, every later one uses
    /// clean_start = false so the session resumes.
    pub fn connect(&mut self, now: Instant) -> Packet {
        self.reset_connection();
        self.state = State::Connecting;
        self.keepalive = announced_keepalive(self.config.keepalive);
        self.server_receive_maximum = DEFAULT_RECEIVE_MAXIMUM;
        self.last_sent = Some(now);

        // A Will belongs to one connection: it goes out with this CONNECT and is not kept.
        let will = self.config.will.take().map(|will| *will);
        let config = &self.config;
        let options = ConnectOptions {
            client_id: config.client_id.clone(),
            keep_alive: self.keepalive,
            clean_start: config.clean_start && !self.resume,
            username: config.username.clone(),
            password: config.password.clone(),
            will,
            properties: ConnectProperties {
                session_expiry_interval: (config.session_expiry != 0)
                    .then_some(config.session_expiry),
                receive_maximum: (config.receive_maximum != 0).then_some(config.receive_maximum),
                request_response_information: config.request_response_information.then_some(true),
                maximum_packet_size: (config.maximum_packet_size != 0)
                    .then_some(config.maximum_packet_size),
                ..ConnectProperties::default()
            },
            ..ConnectOptions::default()
        };
        Packet::Connect(Box::new(ConnectPacket::new(options)))
    }

    /// Queue/send a publish. QoS 0 goes out right away when connected. QoS 1/2 gets a free packet
    /// id and goes out when connected and the server's Receive Maximum leaves room. Otherwise the
    /// message waits in a FIFO queue (QoS 0 too) and returns None; it goes out later from `handle`,
    /// when a PUBACK/PUBCOMP frees a slot or on CONNACK.
    ///
    /// The packet id is taken when the PUBLISH is actually sent, so a long queue does not use up
    /// the id space. Anything queued keeps its place: a new publish never overtakes the queue.
    ///
    /// The queue holds at most [`MAX_QUEUED`] publishes: beyond that the message is refused
    /// (`QueueFull`), so a long outage or a broker that acks slowly cannot grow memory without
    /// bound. Publishes in flight that a lost session puts back are not refused.
    pub fn publish(&mut self, msg: Outgoing, now: Instant) -> Result<Option<Packet>, PublishError> {
        if self.queue.len() >= MAX_QUEUED {
            return Err(PublishError::QueueFull);
        }
        let mut publish = PublishPacket::new(msg.topic, msg.payload, msg.qos);
        publish.retain = msg.retain;
        publish.properties = msg.properties.into();
        if let Some(max) = self.server_maximum_packet_size {
            let size = crate::mqtt::codec::publish_size(&publish);
            if size > max {
                return Err(PublishError::TooLarge { size, max });
            }
        }
        let pending = Pending {
            tag: msg.tag,
            publish,
        };
        if self.state != State::Connected
            || !self.queue.is_empty()
            || !self.has_room(pending.publish.qos)
        {
            self.queue.push_back(pending);
            return Ok(None);
        }
        self.last_sent = Some(now);
        Ok(Some(self.start(pending)))
    }

    /// SUBSCRIBE with these filters, each with the given QoS and otherwise default options
    /// (no_local = false, retain_as_published = false, retained messages sent on subscribe).
    /// Meant to be called while connected: an unanswered SUBSCRIBE is forgotten when the
    /// connection goes, as MQTT does not resend it. `filters` must not be empty (the codec would
    /// refuse to encode it).
    pub fn subscribe(&mut self, filters: &[(String, QoS)], now: Instant) -> (u16, Packet) {
        let packet_id = self.next_free_packet_id().unwrap_or_else(|| {
            // Only reachable with over 1024 SUBSCRIBEs unanswered at once.
            tracing::warn!(
                client_id = %self.config.client_id,
                "no free packet id for SUBSCRIBE; reusing one"
            );
            self.next_packet_id
        });
        let packet = filters
            .iter()
            .fold(SubscribePacket::new(packet_id), |packet, (filter, qos)| {
                packet.add_filter(filter.clone(), *qos)
            });
        self.pending_subscribes.insert(packet_id, filters.len());
        self.last_sent = Some(now);
        (packet_id, Packet::Subscribe(packet))
    }

    /// Feed one packet from the server. Packets to send in reply (PUBACK, PUBREC, PUBREL, PUBCOMP,
    /// queued publishes released, re-sent in-flight publishes after a reconnect) are pushed to
    /// `out`.
    pub fn handle(
        &mut self,
        packet: Packet,
        now: Instant,
        out: &mut Vec<Packet>,
    ) -> Result<Option<Event>, ProtocolError> {
        let sent_before = out.len();
        let result = match (self.state, packet) {
            (State::Connecting, Packet::ConnAck(connack)) => self.on_connack(connack, out),
            (State::Connected, packet) => self.on_packet(packet, out),
            (_, packet) => Err(ProtocolError::Unexpected(packet.packet_type_name())),
        };
        if out.len() > sent_before {
            self.last_sent = Some(now);
        }
        result
    }

    /// Call periodically: returns PINGREQ when nothing was sent for the keepalive (ours, or the
    /// server's from CONNACK), Err(KeepaliveTimeout) when a PINGREQ got no PINGRESP within it.
    pub fn tick(&mut self, now: Instant) -> Result<Option<Packet>, ProtocolError> {
        if self.state != State::Connected || self.keepalive.is_zero() {
            return Ok(None);
        }
        if let Some(ping_sent) = self.ping_sent {
            if now.saturating_duration_since(ping_sent) >= self.keepalive {
                return Err(ProtocolError::KeepaliveTimeout(self.keepalive));
            }
            return Ok(None);
        }
        let idle = self
            .last_sent
            .is_none_or(|sent| now.saturating_duration_since(sent) >= self.keepalive);
        if !idle {
            return Ok(None);
        }
        self.ping_sent = Some(now);
        self.last_sent = Some(now);
        Ok(Some(Packet::PingReq))
    }

    /// Lets go of an incoming QoS 1/2 PUBLISH that will not be delivered (a poison message the
    /// broker would otherwise redeliver on every connection): the acknowledgement to send,
    /// with reason 0x80 (the receiver did not accept it), which ends the flow at QoS 2 too.
    pub fn discard(&mut self, qos: QoS, packet_id: u16) -> Option<Packet> {
        let refused = ReasonCode::UnspecifiedError;
        match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(PubAckPacket::new_with_reason(
                packet_id, refused,
            ))),
            QoS::ExactlyOnce => Some(Packet::PubRec(PubRecPacket::new_with_reason(
                packet_id, refused,
            ))),
        }
    }

    /// When the next `tick` could do something (None when keepalive is 0 or not connected).
    pub fn next_tick(&self) -> Option<Instant> {
        if self.state != State::Connected || self.keepalive.is_zero() {
            return None;
        }
        self.ping_sent
            .or(self.last_sent)
            .and_then(|since| since.checked_add(self.keepalive))
    }

    /// A DISCONNECT with this reason (0x00 normal, 0x04 with Will); the session then counts as
    /// disconnected. In-flight publishes are kept, as for [`Session::connection_lost`].
    pub fn disconnect(&mut self, reason: ReasonCode) -> Packet {
        self.reset_connection();
        Packet::Disconnect(DisconnectPacket::new(reason))
    }

    /// A normal DISCONNECT that also ends the session on the server (Session Expiry Interval 0),
    /// so a finished run leaves no sessions queueing messages behind. MQTT allows lowering the
    /// expiry to 0 here, never raising it, so the property is sent only when it was non-zero.
    pub fn disconnect_ending_session(&mut self) -> Packet {
        let mut packet = DisconnectPacket::new(ReasonCode::Success);
        if self.config.session_expiry != 0 {
            packet = packet.with_session_expiry_interval(0);
        }
        self.reset_connection();
        Packet::Disconnect(packet)
    }

    /// The Will the next CONNECT registers. A Will belongs to one connection: the session does
    /// not keep it past that CONNECT, so callers set it before each [`Session::connect`] (and
    /// can tell each connection's Will apart by its Correlation Data).
    pub fn set_will(&mut self, will: Option<Box<WillMessage>>) {
        self.config.will = will;
    }

    /// The transport died. In-flight QoS>0 publishes are kept: after the next CONNACK they are
    /// re-sent with DUP=1 if session_present, or from scratch (new PUBLISH, DUP=0) if the server
    /// lost the session. Awaiting-PUBCOMP flows resend PUBREL if session_present, and restart
    /// from a fresh PUBLISH otherwise (the tag then still ends in Delivered or Refused).
    pub fn connection_lost(&mut self) {
        self.reset_connection();
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// QoS>0 publishes sent and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Publishes waiting locally (Receive Maximum reached, or not connected).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether [`Session::publish`] would refuse a message for want of room.
    pub fn queue_full(&self) -> bool {
        self.queue.len() >= MAX_QUEUED
    }

    /// With no flow in flight, gives the table's memory back: a fleet of ten thousand devices
    /// that each publish now and then would otherwise each keep a table sized for a burst.
    fn release_if_idle(&mut self) {
        if self.in_flight.is_empty() && self.in_flight.capacity() > 0 {
            self.in_flight = HashMap::new();
        }
    }

    /// Forgets what only made sense on the connection that ended.
    fn reset_connection(&mut self) {
        self.state = State::Disconnected;
        self.ping_sent = None;
        self.pending_subscribes.clear();
    }

    fn on_connack(
        &mut self,
        connack: ConnAckPacket,
        out: &mut Vec<Packet>,
    ) -> Result<Option<Event>, ProtocolError> {
        let props = &connack.properties;
        if connack.reason_code.is_error() {
            self.state = State::Disconnected;
            return Ok(Some(Event::ConnectRefused {
                reason: connack.reason_code,
                reason_string: string_property(props, PropertyId::ReasonString),
            }));
        }
        let server_receive_maximum = match props.get_receive_maximum() {
            Some(0) => return Err(ProtocolError::Unexpected("CONNACK with Receive Maximum 0")),
            Some(max) => max,
            None => DEFAULT_RECEIVE_MAXIMUM,
        };
        let server_keepalive = props.get_server_keep_alive();
        let assigned_client_id = string_property(props, PropertyId::AssignedClientIdentifier);
        if let Some(id) = &assigned_client_id {
            // Reconnects must present this id, or there is no session to resume.
            self.config.client_id.clone_from(id);
        }
        if let Some(seconds) = server_keepalive {
            self.keepalive = Duration::from_secs(seconds.into());
        }
        self.server_receive_maximum = server_receive_maximum;
        // Kept across reconnects: what is published while disconnected is checked against the
        // limit the server last announced.
        self.server_maximum_packet_size = props
            .get_maximum_packet_size()
            .map(|max| usize::try_from(max).unwrap_or(usize::MAX));
        self.state = State::Connected;
        self.resume = true;

        if connack.session_present {
            self.resend_in_flight(out);
        } else {
            // The server forgot its half of every flow: it will not send PUBREL for what we
            // PUBREC'd, and our in-flight publishes must start over.
            self.awaiting_pubrel.clear();
            self.requeue_in_flight();
        }
        self.drain_queue(out);

        Ok(Some(Event::Connected {
            session_present: connack.session_present,
            response_information: string_property(props, PropertyId::ResponseInformation),
            server_receive_maximum,
            server_keepalive,
            assigned_client_id,
        }))
    }

    fn on_packet(
        &mut self,
        packet: Packet,
        out: &mut Vec<Packet>,
    ) -> Result<Option<Event>, ProtocolError> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, out),
            Packet::PubAck(ack) => {
                let id = ack.packet_id;
                let flow = match self.in_flight.entry(id) {
                    Entry::Occupied(e) if e.get().publish.qos == QoS::AtLeastOnce => e.remove(),
                    _ => return Err(unknown("PUBACK", id)),
                };
                self.release_if_idle();
                self.drain_queue(out);
                Ok(Some(outcome(flow, ack.reason_code, &ack.properties)))
            }
            Packet::PubRec(rec) => {
                let id = rec.packet_id;
                let Entry::Occupied(mut entry) = self.in_flight.entry(id) else {
                    return Err(unknown("PUBREC", id));
                };
                if entry.get().publish.qos != QoS::ExactlyOnce {
                    return Err(unknown("PUBREC", id));
                }
                if rec.reason_code.is_error() {
                    let flow = entry.remove();
                    self.release_if_idle();
                    self.drain_queue(out);
                    return Ok(Some(outcome(flow, rec.reason_code, &rec.properties)));
                }
                // Also the answer to a repeated PUBREC, e.g. after the session resumed.
                entry.get_mut().released = true;
                out.push(Packet::PubRel(PubRelPacket::new(id)));
                Ok(None)
            }
            Packet::PubComp(comp) => {
                let id = comp.packet_id;
                let flow = match self.in_flight.entry(id) {
                    Entry::Occupied(e) if e.get().released => e.remove(),
                    _ => return Err(unknown("PUBCOMP", id)),
                };
                self.release_if_idle();
                self.drain_queue(out);
                Ok(Some(outcome(flow, comp.reason_code, &comp.properties)))
            }
            Packet::PubRel(rel) => {
                let reason = if self.awaiting_pubrel.remove(&rel.packet_id) {
                    ReasonCode::Success
                } else {
                    // MQTT 5 section 3.7.2.1: the answer to a PUBREL we have no flow for.
                    ReasonCode::PacketIdentifierNotFound
                };
                out.push(Packet::PubComp(PubCompPacket::new_with_reason(
                    rel.packet_id,
                    reason,
                )));
                Ok(None)
            }
            Packet::SubAck(ack) => {
                let Some(filters) = self.pending_subscribes.remove(&ack.packet_id) else {
                    return Err(unknown("SUBACK", ack.packet_id));
                };
                if filters != ack.reason_codes.len() {
                    return Err(ProtocolError::Unexpected(
                        "SUBACK with a reason code count unlike the SUBSCRIBE's filter count",
                    ));
                }
                Ok(Some(Event::Subscribed {
                    packet_id: ack.packet_id,
                    reasons: ack.reason_codes,
                }))
            }
            Packet::PingResp => {
                self.ping_sent = None;
                Ok(Some(Event::PingResponse))
            }
            Packet::Disconnect(disconnect) => {
                self.reset_connection();
                Ok(Some(Event::ServerDisconnect {
                    reason: disconnect.reason_code,
                    reason_string: string_property(
                        &disconnect.properties,
                        PropertyId::ReasonString,
                    ),
                }))
            }
            other => Err(ProtocolError::Unexpected(other.packet_type_name())),
        }
    }

    fn on_publish(
        &mut self,
        publish: PublishPacket,
        out: &mut Vec<Packet>,
    ) -> Result<Option<Event>, ProtocolError> {
        // We announce no Topic Alias Maximum, which means 0: the server may not use aliases.
        if publish.topic_alias().is_some() {
            return Err(bad_publish(&publish, "with a Topic Alias we never allowed"));
        }
        let packet_id = || {
            publish.packet_id.ok_or(ProtocolError::Unexpected(
                "QoS 1/2 PUBLISH without packet id",
            ))
        };
        if self.withhold_acks && publish.qos != QoS::AtMostOnce {
            // A fault on purpose: no PUBACK/PUBREC, and no QoS 2 state either, so the broker
            // keeps the message unacknowledged and must redeliver it (DUP) when we resume.
            packet_id()?;
            self.withheld += 1;
            return Ok(Some(Event::Message(publish)));
        }
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                out.push(Packet::PubAck(PubAckPacket::new(packet_id()?)));
            }
            QoS::ExactlyOnce => {
                let id = packet_id()?;
                let first_time = !self.awaiting_pubrel.contains(&id);
                if first_time {
                    let limit = match self.config.receive_maximum {
                        0 => DEFAULT_RECEIVE_MAXIMUM,
                        max => max,
                    };
                    if self.awaiting_pubrel.len() >= usize::from(limit) {
                        return Err(ProtocolError::ReceiveMaximumExceeded(limit));
                    }
                    self.awaiting_pubrel.insert(id);
                }
                out.push(Packet::PubRec(PubRecPacket::new(id)));
                if !first_time {
                    return Ok(None);
                }
            }
        }
        Ok(Some(Event::Message(publish)))
    }

    /// Session resumed: every flow continues where it stopped, in the order it started.
    fn resend_in_flight(&mut self, out: &mut Vec<Packet>) {
        let mut flows: Vec<(u16, &InFlight)> =
            self.in_flight.iter().map(|(id, f)| (*id, f)).collect();
        flows.sort_unstable_by_key(|(_, flow)| flow.seq);
        for (id, flow) in flows {
            if flow.released {
                out.push(Packet::PubRel(PubRelPacket::new(id)));
            } else {
                let mut publish = flow.publish.clone();
                publish.dup = true;
                out.push(Packet::Publish(publish));
            }
        }
    }

    /// Session lost: in-flight publishes go back to the head of the queue, oldest first, to be
    /// sent as new messages with new packet ids (and within the new Receive Maximum).
    fn requeue_in_flight(&mut self) {
        let mut flows: Vec<InFlight> = self.in_flight.drain().map(|(_, flow)| flow).collect();
        flows.sort_unstable_by_key(|flow| std::cmp::Reverse(flow.seq));
        for flow in flows {
            let mut publish = flow.publish;
            publish.packet_id = None;
            publish.dup = false;
            self.queue.push_front(Pending {
                tag: flow.tag,
                publish,
            });
        }
    }

    /// Sends queued publishes, in order, until one has to wait.
    fn drain_queue(&mut self, out: &mut Vec<Packet>) {
        while self.state == State::Connected {
            match self.queue.front() {
                Some(next) if self.has_room(next.publish.qos) => {}
                _ => break,
            }
            if let Some(pending) = self.queue.pop_front() {
                out.push(self.start(pending));
            }
        }
    }

    /// Whether a publish of this QoS may go out now: QoS 0 always, QoS 1/2 within the server's
    /// Receive Maximum and while a packet id is free.
    fn has_room(&self, qos: QoS) -> bool {
        let window = usize::from(self.server_receive_maximum).min(MAX_PUBLISH_IDS);
        let ids_in_use = self.in_flight.len() + self.pending_subscribes.len();
        qos == QoS::AtMostOnce
            || (self.in_flight.len() < window && ids_in_use < usize::from(u16::MAX))
    }

    /// Turns a pending publish into the PUBLISH to send; the caller has checked `has_room`.
    fn start(&mut self, pending: Pending) -> Packet {
        let Pending { tag, mut publish } = pending;
        if publish.qos == QoS::AtMostOnce {
            return Packet::Publish(publish);
        }
        let id = self
            .next_free_packet_id()
            .expect("has_room: fewer than 65535 ids in use, and the scan visits all 65535");
        publish.packet_id = Some(id);
        let packet = Packet::Publish(publish.clone());
        self.in_flight.insert(
            id,
            InFlight {
                tag,
                seq: self.next_seq,
                publish,
                released: false,
            },
        );
        self.next_seq += 1;
        packet
    }

    /// The next packet id after the last one handed out that no flow uses; never 0.
    fn next_free_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = id.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains_key(&id) && !self.pending_subscribes.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}

/// The keepalive as the server will see it: whole seconds, rounded up, at most u16::MAX.
/// Our own timer uses the same value, so we never wait longer than the server allows.
fn announced_keepalive(keepalive: Duration) -> Duration {
    let seconds = keepalive.as_secs() + u64::from(keepalive.subsec_nanos() > 0);
    Duration::from_secs(seconds.min(u64::from(u16::MAX)))
}

/// A PUBLISH we refuse, with what it takes to know it again and to let it go.
fn bad_publish(publish: &PublishPacket, what: &'static str) -> ProtocolError {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    publish.topic_name.hash(&mut hasher);
    publish.payload.hash(&mut hasher);
    ProtocolError::BadPublish {
        what,
        topic: publish.topic_name.clone(),
        fingerprint: hasher.finish(),
        ack: publish
            .packet_id
            .filter(|_| publish.qos != QoS::AtMostOnce)
            .map(|id| (publish.qos, id)),
    }
}

fn unknown(packet: &'static str, id: u16) -> ProtocolError {
    ProtocolError::UnknownPacketId { packet, id }
}

/// How an outgoing flow ended, from the reason code of its final acknowledgement.
fn outcome(flow: InFlight, reason: ReasonCode, props: &Properties) -> Event {
    if reason.is_error() {
        Event::Refused {
            tag: flow.tag,
            topic: flow.publish.topic_name,
            reason,
            reason_string: string_property(props, PropertyId::ReasonString),
        }
    } else {
        Event::Delivered { tag: flow.tag }
    }
}

#[cfg(test)]
mod tests;
