//! The supervisor: one per run, with its own MQTT connection subscribed to every Will topic and
//! every Will Response Topic of the fleet. It hears devices report their outages, sees the
//! Wills and their acks on the wire, and keeps the story of each outage in the [`OutageBook`].
//!
//! Its connection is a [`DeviceActor`](crate::device::DeviceActor) in observer role, which
//! forwards every message it receives here as [`Seen`].

mod book;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

pub use book::{OutageBook, Watched, WillTiming};

use crate::events::{DeviceEvent, DeviceIndex, Event};
use crate::fleet::{FaultKind, Fleet};
use crate::report::Wills;

/// The client id of the supervisor's connection.
pub const CLIENT_ID: &str = "fleetsim-supervisor";

/// The Correlation Data of a device's Will for its `incarnation`-th connection: `{id}#{n}`.
/// Each connection registers its own Will, so an ack names the outage it answers.
pub fn will_correlation(id: &str, incarnation: u32) -> Bytes {
    Bytes::from(format!("{id}#{incarnation}"))
}

/// The device id and incarnation a Will's Correlation Data names, if it is one of ours.
pub fn parse_will_correlation(data: &[u8]) -> Option<(&str, u32)> {
    let text = std::str::from_utf8(data).ok()?;
    let (id, n) = text.rsplit_once('#')?;
    Some((id, n.parse().ok()?))
}

/// What devices tell the supervisor about their outages.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum WillFact {
    /// A fault took down the device's connection number `incarnation`.
    OutageBegan {
        device: DeviceIndex,
        kind: FaultKind,
        incarnation: u32,
        down_for: Duration,
        at: Instant,
    },
    /// A fault was due but the device was not connected.
    FaultSkipped {
        device: DeviceIndex,
        kind: FaultKind,
        at: Instant,
        reason: String,
    },
    /// Connection number `incarnation` dropped without a scheduled connection fault.
    Dropped {
        device: DeviceIndex,
        incarnation: u32,
        at: Instant,
    },
    /// The device is connected again after an outage.
    Back { device: DeviceIndex, at: Instant },
    /// The device received the ack of the Will of its connection `incarnation`.
    Learned {
        device: DeviceIndex,
        incarnation: u32,
        at: Instant,
    },
}

/// A message the supervisor's own connection received.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Seen {
    pub topic: String,
    pub correlation: Option<Bytes>,
    /// Who published it, when it says (the `consumed-by` user property, or a broker's
    /// client-id property).
    pub publisher: Option<String>,
    pub at: Instant,
}

pub struct Supervisor {
    book: OutageBook,
    will_topics: HashSet<String>,
    response_topics: HashSet<String>,
    ready: bool,
    failure: Option<String>,
}

impl Supervisor {
    pub fn new(fleet: &Fleet) -> Self {
        let watched = fleet
            .devices
            .iter()
            .map(|d| Watched {
                id: d.id.clone(),
                will: d.will.as_ref().map(|w| WillTiming {
                    delay: w.delay,
                    keepalive: d.connection.keepalive,
                    session_expiry: Duration::from_secs(d.connection.session_expiry.into()),
                }),
            })
            .collect();
        let wills = fleet.devices.iter().filter_map(|d| d.will.as_ref());
        Self {
            book: OutageBook::new(watched, fleet.will_ack_timeout, Instant::now()),
            will_topics: wills.clone().map(|w| w.topic.clone()).collect(),
            response_topics: wills.map(|w| w.response_topic.clone()).collect(),
            ready: false,
            failure: None,
        }
    }

    /// What the supervisor's connection subscribes to: every Will topic and Response Topic.
    /// Empty when no device has a Will, and then no connection is needed.
    pub fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = self
            .will_topics
            .iter()
            .chain(&self.response_topics)
            .cloned()
            .collect();
        filters.sort();
        filters.dedup();
        filters
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<WillFact> for Supervisor {
    type Result = ();

    fn handle(&mut self, fact: WillFact, _: &mut Context<Self>) {
        let book = &mut self.book;
        match fact {
            WillFact::OutageBegan {
                device,
                kind,
                incarnation,
                down_for,
                at,
            } => book.began(device as usize, kind, incarnation, down_for, at),
            WillFact::FaultSkipped {
                device,
                kind,
                at,
                reason,
            } => book.skipped(device as usize, kind, at, reason),
            WillFact::Dropped {
                device,
                incarnation,
                at,
            } => book.dropped(device as usize, incarnation, at),
            WillFact::Back { device, at } => book.back(device as usize, at),
            WillFact::Learned {
                device,
                incarnation,
                at,
            } => book.learned(device as usize, incarnation, at),
        }
    }
}

impl Handler<Seen> for Supervisor {
    type Result = ();

    fn handle(&mut self, seen: Seen, _: &mut Context<Self>) {
        let Some((id, incarnation)) = seen.correlation.as_deref().and_then(parse_will_correlation)
        else {
            tracing::debug!(topic = %seen.topic, "message without a Will's Correlation Data");
            return;
        };
        let Some(device) = self.book.device_index(id) else {
            tracing::debug!(topic = %seen.topic, id, "Correlation Data names no device");
            return;
        };
        if self.will_topics.contains(&seen.topic) {
            tracing::info!(device = id, incarnation, topic = %seen.topic, "Will published");
            self.book.will_seen(device, incarnation, seen.at);
        } else if self.response_topics.contains(&seen.topic) {
            let by = seen.publisher.unwrap_or_else(|| "someone".into());
            tracing::info!(device = id, incarnation, by, "Will acked");
            self.book.ack_seen(device, incarnation, by, seen.at);
        }
    }
}

/// Lifecycle of the supervisor's own connection.
impl Handler<DeviceEvent> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: DeviceEvent, _: &mut Context<Self>) {
        match msg.event {
            Event::Ready => self.ready = true,
            Event::ConnectFailed { reason } => self.failure = Some(reason),
            Event::Dropped { reason, .. } => {
                let reason = reason.key();
                tracing::warn!(%reason, "the supervisor's connection dropped: Wills published meanwhile are missed");
            }
            _ => {}
        }
    }
}

/// The run has started: story times count from `at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunStarted {
    pub at: Instant,
}

impl Handler<RunStarted> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RunStarted, _: &mut Context<Self>) {
        self.book.set_start(msg.at);
    }
}

#[derive(Debug, Clone, Default)]
pub struct SupervisorStatus {
    /// The supervisor's connection is up and subscribed.
    pub ready: bool,
    /// It gave up connecting, and why.
    pub failure: Option<String>,
    /// Outages whose story may still change.
    pub pending: usize,
}

#[derive(Message)]
#[rtype(result = "SupervisorStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(SupervisorStatus {
            ready: self.ready,
            failure: self.failure.clone(),
            pending: self.book.pending(Instant::now()),
        })
    }
}

#[derive(Message)]
#[rtype(result = "Wills")]
pub struct GetWills;

impl Handler<GetWills> for Supervisor {
    type Result = MessageResult<GetWills>;

    fn handle(&mut self, _: GetWills, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.book.report())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn will_correlation_round_trips_and_names_the_incarnation() {
        let data = will_correlation("light-in-bedroom", 3);
        assert_eq!(&data[..], b"light-in-bedroom#3");
        assert_eq!(parse_will_correlation(&data), Some(("light-in-bedroom", 3)));
        // Ids may contain '#'? They may not (client id rules), but the last one wins anyway.
        assert_eq!(parse_will_correlation(b"a#b#7"), Some(("a#b", 7)));
        assert_eq!(parse_will_correlation(b"phone:1"), None);
        assert_eq!(parse_will_correlation(b"x#"), None);
        assert_eq!(parse_will_correlation(&[0xff, b'#', b'1']), None);
    }
}
