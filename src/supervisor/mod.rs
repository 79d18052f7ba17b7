//! The supervisor: one per run, with its own MQTT connection ([`SupervisorLink`]) subscribed to
//! every Will topic and every Will Response Topic of the fleet. It hears devices report their
//! outages, sees the Wills and their acks on the wire, and keeps the story of each outage in
//! the [`OutageBook`].

mod book;
mod link;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

pub use book::{OutageBook, Watched, WillTiming};
pub use link::{Leave, SupervisorLink, cover};

use crate::device::parse_will_correlation;
use crate::events::DeviceIndex;
use crate::fleet::{FaultKind, Fleet};
use crate::report::Wills;
use crate::shared::Shared;

/// The client id of the supervisor's connection (behind the fleet's `id_prefix`).
pub const CLIENT_ID: &str = "fleetsim-supervisor";

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
    fleet: Arc<Fleet>,
    book: OutageBook,
    shared: Arc<Shared>,
}

impl Supervisor {
    pub fn new(fleet: Arc<Fleet>, shared: Arc<Shared>) -> Self {
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
        Self {
            book: OutageBook::new(watched, fleet.will_ack_timeout, Instant::now()),
            fleet,
            shared,
        }
    }

    /// Once every story has settled, the runner (draining) hears of it at once.
    fn settled(&self) {
        if self.book.settled_by(Instant::now()).is_none() {
            self.shared.progress.changed.notify_one();
        }
    }

    /// What the supervisor's connection subscribes to: every Will topic and Response Topic,
    /// folded into wildcards where the topics allow. Empty when no device has a Will, and then
    /// no connection is needed.
    pub fn filters(fleet: &Fleet) -> Vec<String> {
        // This shard's devices only: another shard's supervisor watches the others' Wills.
        let (topics, acks): (Vec<String>, Vec<String>) = fleet
            .shard_devices()
            .filter_map(|i| fleet.devices[i].will.as_ref())
            .map(|w| (w.topic.clone(), w.response_topic.clone()))
            .unzip();
        let mut filters = cover(&topics);
        filters.extend(cover(&acks));
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
        self.settled();
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
        // Another shard's device: its own shard's supervisor tells its story.
        if !self.fleet.shard.holds(device) {
            return;
        }
        let Some(will) = self.fleet.devices.get(device).and_then(|d| d.will.as_ref()) else {
            return;
        };
        if seen.topic == will.topic {
            tracing::info!(device = id, incarnation, topic = %seen.topic, "Will published");
            self.book.will_seen(device, incarnation, seen.at);
            self.shared.wills.published();
        } else if seen.topic == will.response_topic {
            let by = seen.publisher.unwrap_or_else(|| "someone".into());
            tracing::info!(device = id, incarnation, by, "Will acked");
            self.book.ack_seen(device, incarnation, by, seen.at);
            self.shared.wills.acked();
        }
        self.settled();
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

/// When the outage stories that may still change will have settled (None: all have).
#[derive(Message)]
#[rtype(result = "Option<Instant>")]
pub struct GetSettledBy;

impl Handler<GetSettledBy> for Supervisor {
    type Result = Option<Instant>;

    fn handle(&mut self, _: GetSettledBy, _: &mut Context<Self>) -> Option<Instant> {
        self.book.settled_by(Instant::now())
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
