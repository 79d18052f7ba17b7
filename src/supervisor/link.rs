//! The supervisor's own connection: a small actor that subscribes to every Will topic and Will
//! Response Topic of the fleet (as wildcards where the topics allow), and forwards what it
//! receives to the [`Supervisor`] as [`Seen`]. It reconnects like a device does, with the same
//! backoff, and gives up the run the same way when its first connection cannot be made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use futures_util::StreamExt;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::{Packet, QoS};
use tokio_util::codec::FramedRead;

use super::{Seen, Supervisor};
use crate::device::{
    Backoff, CONSUMED_BY, MAX_PACKET, correlation_of, reconnect_window, user_property,
};
use crate::fleet::Secret;
use crate::mqtt::{CodecError, Event, Inbound, InboundCodec, Outbound, Session, SessionConfig};
use crate::shared::Shared;
use crate::transport::{BoxWrite, Endpoint};

/// The embedded `mqtt5` broker stamps every PUBLISH with its publisher's client id.
const BROKER_CLIENT_ID: &str = "x-mqtt-client-id";
/// Filters per SUBSCRIBE when they cannot be folded into wildcards.
const FILTERS_PER_SUBSCRIBE: usize = 1000;
const KEEPALIVE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// As for devices: tries before the run gives up on the broker.
const FIRST_CONNECT_ATTEMPTS: u32 = 5;

/// The filters that cover `topics` (each a topic name): topics of the same shape that differ
/// in one level only become one filter with `+` there (`status/light-1`, `status/light-2` ->
/// `status/+`); the rest stay as they are.
pub fn cover(topics: &[String]) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut shapes: BTreeMap<usize, Vec<Vec<&str>>> = BTreeMap::new();
    for topic in topics {
        let levels: Vec<&str> = topic.split('/').collect();
        shapes.entry(levels.len()).or_default().push(levels);
    }
    let mut filters = Vec::new();
    for (_, group) in shapes {
        let width = group[0].len();
        let varying: Vec<usize> = (0..width)
            .filter(|&i| group.iter().any(|levels| levels[i] != group[0][i]))
            .collect();
        match varying[..] {
            [] => filters.push(group[0].join("/")),
            // One varying level, and not the first: `+/x` would catch far more than Wills.
            [at] if at > 0 => {
                let mut levels = group[0].clone();
                levels[at] = "+";
                filters.push(levels.join("/"));
            }
            _ => filters.extend(group.iter().map(|levels| levels.join("/"))),
        }
    }
    filters.sort();
    filters.dedup();
    filters
}

pub struct SupervisorLink {
    endpoint: Endpoint,
    session: Session,
    filters: Vec<String>,
    supervisor: Addr<Supervisor>,
    shared: Arc<Shared>,
    id: String,
    backoff: Backoff,
    rng: rand::rngs::SmallRng,
    /// SUBSCRIBE packet ids awaiting their SUBACK.
    subscribing: Vec<u16>,
    ever_ready: bool,
    generation: u64,
    reader: Option<SpawnHandle>,
    writer: Option<FramedWrite<Outbound, BoxWrite, InboundCodec>>,
    leaving: bool,
    /// The goodbye is written and the runner waits for the broker to close the connection.
    said_goodbye: bool,
}

struct Frame {
    generation: u64,
    frame: Result<Inbound, CodecError>,
}

impl SupervisorLink {
    pub fn new(
        id: String,
        endpoint: Endpoint,
        login: Option<(String, Secret)>,
        filters: Vec<String>,
        supervisor: Addr<Supervisor>,
        shared: Arc<Shared>,
        seed: u64,
    ) -> Self {
        let session = Session::new(SessionConfig {
            keepalive: KEEPALIVE,
            receive_maximum: 1000,
            username: login.as_ref().map(|l| l.0.clone()),
            password: login.map(|l| l.1.expose().as_bytes().to_vec()),
            maximum_packet_size: MAX_PACKET as u32,
            ..SessionConfig::new(id.clone())
        });
        Self {
            endpoint,
            session,
            filters,
            supervisor,
            shared,
            id,
            backoff: Backoff::new(reconnect_window(1), KEEPALIVE),
            rng: rand::SeedableRng::seed_from_u64(seed),
            subscribing: Vec::new(),
            ever_ready: false,
            generation: 0,
            reader: None,
            writer: None,
            leaving: false,
            said_goodbye: false,
        }
    }

    fn write(&mut self, packet: Packet) {
        if let Some(writer) = &mut self.writer {
            writer.write(Outbound::Packet(packet));
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        let endpoint = self.endpoint.clone();
        let attempt = async move { endpoint.connect(CONNECT_TIMEOUT).await };
        ctx.spawn(attempt.into_actor(self).map(move |result, act, ctx| {
            if act.generation != generation || act.leaving {
                return;
            }
            match result {
                Ok((read, write)) => {
                    let frames = FramedRead::new(read, InboundCodec::new(MAX_PACKET))
                        .map(move |frame| Frame { generation, frame });
                    act.reader = Some(ctx.add_stream(frames));
                    act.writer = Some(FramedWrite::new(write, InboundCodec::new(MAX_PACKET), ctx));
                    let connect = act.session.connect(Instant::now());
                    act.write(connect);
                }
                Err(e) => act.lost(e.to_string(), false, ctx),
            }
        }));
    }

    /// The connection (or an attempt) ended: dial again after a backoff, or give up the run
    /// when the first connection cannot be made.
    fn lost(&mut self, reason: String, established: bool, ctx: &mut Context<Self>) {
        if self.leaving {
            return;
        }
        self.session.connection_lost();
        self.subscribing.clear();
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
        }
        if let Some(writer) = self.writer.take() {
            ctx.cancel_future(writer.handle());
        }
        self.generation += 1;
        let wait = if established {
            tracing::warn!(%reason, "the supervisor's connection dropped: Wills published meanwhile are missed");
            self.backoff.dropped(Instant::now(), &mut self.rng)
        } else {
            self.backoff.failed(&mut self.rng)
        };
        if !self.ever_ready && self.backoff.attempts() >= FIRST_CONNECT_ATTEMPTS {
            tracing::error!(%reason, "the supervisor gives up connecting");
            self.shared.progress.failed(&self.id, reason);
            ctx.stop();
            return;
        }
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    fn on_packet(&mut self, packet: Packet, ctx: &mut Context<Self>) {
        let mut out = Vec::new();
        let event = self.session.handle(packet, Instant::now(), &mut out);
        for packet in out {
            self.write(packet);
        }
        match event {
            Ok(Some(Event::Connected { .. })) => {
                self.backoff.connected(Instant::now());
                let filters = std::mem::take(&mut self.filters);
                for chunk in filters.chunks(FILTERS_PER_SUBSCRIBE) {
                    let chunk: Vec<(String, QoS)> = chunk
                        .iter()
                        .map(|f| (f.clone(), QoS::AtLeastOnce))
                        .collect();
                    let (id, packet) = self.session.subscribe(&chunk, Instant::now());
                    self.subscribing.push(id);
                    self.write(packet);
                }
                self.filters = filters;
            }
            Ok(Some(Event::ConnectRefused { reason, .. })) => {
                let reason = format!("the broker refused the supervisor's connection: {reason:?}");
                if self.ever_ready {
                    self.lost(reason, false, ctx);
                } else {
                    self.shared.progress.failed(&self.id, reason);
                    ctx.stop();
                }
            }
            Ok(Some(Event::Subscribed { packet_id, reasons })) => {
                if reasons.iter().any(|r| !r.is_success()) {
                    tracing::warn!(
                        ?reasons,
                        "the broker refused some of the supervisor's subscriptions: their Wills go unseen"
                    );
                }
                self.subscribing.retain(|id| *id != packet_id);
                if self.subscribing.is_empty() && !self.ever_ready {
                    self.ever_ready = true;
                    self.shared.progress.supervisor_ready();
                }
            }
            Ok(Some(Event::Message(publish))) => self.forward(publish),
            Ok(Some(Event::ServerDisconnect { reason, .. })) => {
                self.lost(format!("server sent DISCONNECT: {reason:?}"), true, ctx);
            }
            Ok(_) => {}
            Err(e) => self.lost(e.to_string(), true, ctx),
        }
    }

    fn forward(&self, publish: PublishPacket) {
        let publisher = user_property(&publish, CONSUMED_BY)
            .or_else(|| user_property(&publish, BROKER_CLIENT_ID))
            .map(str::to_owned);
        self.supervisor.do_send(Seen {
            correlation: correlation_of(&publish),
            topic: publish.topic_name,
            publisher,
            at: Instant::now(),
        });
    }
}

impl Actor for SupervisorLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if act.leaving {
                return;
            }
            match act.session.tick(Instant::now()) {
                Ok(Some(ping)) => act.write(ping),
                Ok(None) => {}
                Err(e) => act.lost(e.to_string(), true, ctx),
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.said_goodbye {
            self.shared.progress.left();
        }
    }
}

impl StreamHandler<Frame> for SupervisorLink {
    fn handle(&mut self, item: Frame, ctx: &mut Context<Self>) {
        if self.leaving {
            // Nothing more is read (or answered) after the goodbye.
            if item.frame.is_err() {
                ctx.stop();
            }
            return;
        }
        if item.generation != self.generation {
            return;
        }
        match item.frame {
            Ok(Inbound::Packet(packet)) => self.on_packet(packet, ctx),
            Ok(Inbound::Bad(bad)) => self.lost(
                format!("bad data from the broker: {}", bad.reason),
                true,
                ctx,
            ),
            Err(e) => self.lost(format!("bad data from the broker: {e}"), true, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            // The broker closed the connection after our goodbye.
            ctx.stop();
            return;
        }
        if self.reader.take().is_some() {
            self.lost("the broker closed the connection".into(), true, ctx);
        }
    }
}

impl WriteHandler<CodecError> for SupervisorLink {
    fn error(&mut self, err: CodecError, ctx: &mut Context<Self>) -> Running {
        let generation = self.generation;
        ctx.run_later(Duration::ZERO, move |act, ctx| {
            if act.generation == generation {
                act.lost(format!("write failed: {err}"), true, ctx);
            }
        });
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            ctx.stop();
        }
    }
}

/// The run is over: say goodbye and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

impl Handler<Leave> for SupervisorLink {
    type Result = ();

    fn handle(&mut self, _: Leave, ctx: &mut Context<Self>) {
        self.leaving = true;
        if !self.session.is_connected() {
            ctx.stop();
            return;
        }
        let goodbye = self.session.disconnect_ending_session();
        self.write(goodbye);
        if self.writer.is_none() {
            ctx.stop();
            return;
        }
        // The writer flushes the goodbye; the broker then closes the connection, which ends the
        // reader and this actor, so the TIME_WAIT is the broker's (see `Action::Leave`).
        self.said_goodbye = true;
        self.shared.progress.leaving();
    }
}

#[cfg(test)]
mod tests {
    use super::cover;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn topics_differing_in_one_level_fold_into_a_wildcard() {
        let statuses = strings(&["status/a", "status/b", "status/c"]);
        assert_eq!(cover(&statuses), strings(&["status/+"]));
        // Two levels varying at once would need `+/+`: they stay as they are.
        let mixed = strings(&["status/a", "will-ack/b"]);
        assert_eq!(cover(&mixed), mixed);
        let statuses = strings(&["home/status/a", "home/status/b", "home/status/c"]);
        assert_eq!(cover(&statuses), strings(&["home/status/+"]));
        assert_eq!(
            cover(&strings(&["a/x", "b/x"])),
            strings(&["a/x", "b/x"]),
            "not a first-level wildcard"
        );
        assert_eq!(cover(&strings(&["same", "same"])), strings(&["same"]));
    }
}
