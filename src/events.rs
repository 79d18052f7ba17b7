//! The facts devices deal in: why a connection dropped, an outage's length, and the steps of
//! an exchange as the trace tells them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// Index of a device in `Fleet::devices`.
pub type DeviceIndex = u32;

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
        }
    }
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
    /// The request carries no Correlation Data (`correlation_data: false`): `correlation`
    /// is only the request's name, in a `fleetsim-request` User Property.
    pub without_correlation: bool,
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
    /// The broker refused the request, or it could not be sent.
    Failed {
        reason: Failure,
    },
}

/// Why a request failed. `Display` is the English the report and the logs use; the narration
/// words it in its own language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Held back: the broker refused to subscribe its Response Topic, so no answer could come.
    ResponseTopicRefused { topic: String, reason: String },
    /// The broker refused its PUBLISH (reason code and text).
    PublishRefused(String),
    /// The session could not send it.
    NotSent(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::ResponseTopicRefused { topic, reason } => {
                write!(f, "its Response Topic {topic} was refused: {reason}")
            }
            Failure::PublishRefused(reason) | Failure::NotSent(reason) => f.write_str(reason),
        }
    }
}

/// What a responder did with one request.
#[derive(Debug, Clone)]
pub struct Handled {
    pub topic: String,
    pub payload: Bytes,
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
    /// The request's `fleetsim-request` User Property, when it came without Correlation Data.
    pub tag: Option<Bytes>,
    /// The answer published, or None when the request had no Response Topic.
    pub answer: Option<Bytes>,
    /// The payload was not a command this responder understands.
    pub rejected: bool,
    /// The answer was held back on purpose (a `no_answer` fault).
    pub withheld: bool,
    /// The client that sent the request, when it is not one of the fleet's (the broker said
    /// who, see [`crate::shared::Outside`]).
    pub from_outside: Option<String>,
}
