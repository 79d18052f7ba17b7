//! What devices tell the collector. Devices only emit facts; counting and rendering happen in
//! `collector` and `report`, so a device never shares state with another.

use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use bytes::Bytes;

use crate::fleet::FaultKind;

/// Index of a device in `Fleet::devices`.
pub type DeviceIndex = u32;

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeviceEvent {
    pub device: DeviceIndex,
    pub event: Event,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// CONNACK success. `back` tells the outage it ends: none for the first connection.
    Connected {
        session_present: bool,
        back: Option<Back>,
    },
    /// Connected and every subscription granted: the device can take part in the run.
    Ready,
    /// The device gave up connecting before it was ever ready (broker unreachable or refusing).
    ConnectFailed { reason: String },
    /// An established connection (CONNACK received) ended: `planned` when a fault did it on
    /// purpose (a connection fault, or a network or protocol fault acting on that connection).
    Dropped { reason: DropReason, planned: bool },
    /// The run is over and this device was not connected: the outage still going on.
    OfflineAtEnd(Back),
    /// A phone published a request.
    RequestSent(Arc<Exchange>),
    /// A request reached its end.
    RequestDone {
        correlation: Bytes,
        outcome: Outcome,
    },
    /// An answer whose Correlation Data names no request of this phone.
    UnmatchedResponse { correlation: Option<Bytes> },
    /// A second answer to a request already matched.
    DuplicateResponse { correlation: Bytes },
    /// The first answer to a request that had already timed out: it counts as late now.
    LateAnswer {
        correlation: Bytes,
        latency: Duration,
    },
    /// A light or sensor handled a request.
    Handled(Arc<Handled>),
    /// A sensor published a reading.
    TelemetryPublished,
    /// A message from the broker that closed the previous connection came again, and was
    /// acknowledged and let go (see `devices.poison_dropped`).
    PoisonDropped,
    /// Something the device was due to publish was not: see [`Skip`].
    Skipped(Skip),
    /// The broker refused something this device asked for.
    Refusal {
        what: Refused,
        /// The topic or filter refused (none for a CONNECT).
        topic: Option<String>,
        reason: String,
    },
    /// A device that asked for Response Information connected for the first time.
    ResponseInfo(Arc<ResponseInfo>),
    /// What a fault led to, for the fault event known by `key`.
    FaultEffect { key: Bytes, effect: String },
    /// A fault was applied: to the request with this Correlation Data (request and responder
    /// faults), or to the device's connection (network faults, with a key of their own).
    FaultInjected {
        kind: FaultKind,
        correlation: Bytes,
        /// What the device did, e.g. "sent without Response Topic".
        what: String,
        /// False when the fault could not act (the device was not connected).
        applied: bool,
    },
}

/// An outage of a device's connection, told when it ends (or the run does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Back {
    /// The drop was a fault's doing.
    pub planned: bool,
    /// Time disconnected while the run was on, for an unplanned drop (zero for a planned one).
    pub unplanned: Duration,
}

/// Why an established connection ended, as the report counts drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The broker closed the socket without a DISCONNECT.
    Closed,
    /// The broker sent DISCONNECT with this reason code.
    ServerDisconnect(u8),
    /// No PINGRESP within the keepalive.
    KeepaliveTimeout,
    /// A packet MQTT does not allow here: an ack for an unknown packet id, a SUBACK with the
    /// wrong number of reason codes, a Topic Alias we never allowed...
    ProtocolError,
    /// Bytes that are no valid MQTT packet (an invalid UTF-8 topic, a bad length...).
    Malformed,
    /// A packet over the Maximum Packet Size this device announced.
    TooLarge,
    /// The socket failed (reset, write error).
    Io,
    /// A connection fault ended it on purpose.
    Fault(FaultKind),
}

impl DropReason {
    /// The key drops are counted under in the report (`devices.drops_by_reason`).
    pub fn key(self) -> String {
        match self {
            DropReason::Closed => "broker_closed".into(),
            // MQTT 5 section 3.14.2.1: another connection took the client id over.
            DropReason::ServerDisconnect(0x8E) => "session_taken_over".into(),
            DropReason::ServerDisconnect(code) => format!("server_disconnect_0x{code:02X}"),
            DropReason::KeepaliveTimeout => "keepalive_timeout".into(),
            DropReason::ProtocolError => "protocol_error".into(),
            DropReason::Malformed => "malformed_packet".into(),
            DropReason::TooLarge => "packet_too_large".into(),
            DropReason::Io => "socket_error".into(),
            DropReason::Fault(kind) => format!("fault_{}", kind.as_str()),
        }
    }
}

/// Why something a device was due to publish was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A request due while the phone was disconnected: not sent, so not counted as sent.
    RequestOffline,
    /// A request due while the phone's session already held `MAX_QUEUED` unsent publishes.
    RequestBacklog,
    /// A reading due while the sensor was disconnected.
    ReadingOffline,
    /// A reading due while the sensor's session queue was full.
    ReadingBacklog,
    /// Any other publish (an answer, a Will ack) refused because the session queue was full.
    QueueOverflow,
    /// An answer, Will ack or reading larger than the broker's Maximum Packet Size.
    TooLarge,
}

/// What the broker refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// CONNACK with a reason code >= 0x80.
    Connect,
    /// SUBACK with a reason code >= 0x80 for a filter.
    Subscribe,
    /// PUBACK or PUBREC with a reason code >= 0x80.
    Publish,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Connect => "connect",
            Refused::Subscribe => "subscribe",
            Refused::Publish => "publish",
        }
    }
}

/// What a device made of Response Information on its first connection.
#[derive(Debug, Clone)]
pub struct ResponseInfo {
    /// What the CONNACK carried, if anything.
    pub received: Option<String>,
    /// The configured fallback was used instead.
    pub fallback: bool,
    /// The Response Topics it built from it.
    pub topics: Vec<String>,
}

/// One request as its phone sent it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// False when the request was held back (its Response Topic was refused) and failed at once.
    pub published: bool,
    pub topic: Arc<str>,
    pub response_topic: Arc<str>,
    pub correlation: Bytes,
    pub payload: Bytes,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Matched {
        latency: Duration,
        payload: Bytes,
    },
    TimedOut {
        after: Duration,
    },
    /// Answered, but after the timeout, before its timer had fired.
    Late {
        latency: Duration,
    },
    /// The broker refused the request (reason code and text).
    Failed {
        reason: String,
    },
}

/// What a responder did with one request.
#[derive(Debug, Clone)]
pub struct Handled {
    pub topic: String,
    pub payload: Bytes,
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
    /// The answer published, or None when the request had no Response Topic.
    pub answer: Option<Bytes>,
    /// The payload was not a command this responder understands.
    pub rejected: bool,
    /// The answer was held back on purpose (a `no_answer` fault).
    pub withheld: bool,
}
