//! Faults acting on a device, on purpose:
//! - connection faults (kill, stall, disconnect, disconnect_with_will, flap): the device goes
//!   away for `down_for`, and the supervisor follows the outage;
//! - request and responder faults: armed by the schedule for the next request or answer, or
//!   drawn by probability each time;
//! - network faults: Toxiproxy-style toxics on the device's proxy, put back on each new
//!   connection while they last;
//! - protocol faults: acks held back (the broker must redeliver with DUP once the session
//!   resumes), a malformed packet and an oversize one (the broker must close this connection).
//!
//! Each fault is told in the report's fault stories, with what came of it appended as it
//! happens.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::{Packet, QoS, ReasonCode};
use rand::Rng;

use super::core::{Action, Device, Link, Out, Timed};
use crate::faults::{DeviceFaults, Injection};
use crate::fleet::{self, FaultClass, FaultKind, FaultParams};
use crate::mqtt::Outbound;
use crate::supervisor::WillFact;
use crate::transport::toxic::{self, Toxic};

/// After the device resumes its session, how long DUP redeliveries are counted: a broker sends
/// them right after its CONNACK.
const REDELIVERY_WINDOW: Duration = Duration::from_secs(1);

/// A fixed header of reserved packet type 0: malformed by MQTT 5 section 2.1.2.
const MALFORMED: &[u8] = &[0x00, 0x00];

/// A fault applied to each request or answer with probability `p`.
#[derive(Debug, Clone, Copy)]
pub struct Chance {
    pub kind: FaultKind,
    pub p: f64,
    pub params: FaultParams,
}

/// A toxic in force on this device, and the key its fault event is known by.
#[derive(Debug)]
struct ActiveToxic {
    direction: toxic::Direction,
    toxic: Toxic,
    key: Bytes,
}

/// What a device keeps about faults; only devices a fault may hit have one.
#[derive(Debug, Default)]
pub(super) struct FaultState {
    /// A network fault may act on the device: it connects through a proxy.
    pub proxied: bool,
    chances: Vec<Chance>,
    /// Request or responder faults fired by the schedule, waiting for the next request or
    /// answer.
    armed: Vec<(FaultKind, FaultParams)>,
    toxics: Vec<ActiveToxic>,
    /// The fault whose effect on the connection is being watched, and since when.
    watched: Option<(Bytes, Instant)>,
    /// Faults applied to the connection so far, to key their report entries.
    count: u32,
    /// DUP redeliveries seen since a withhold_acks fault resumed the session.
    redelivered: Option<u32>,
}

impl FaultState {
    pub(super) fn new(faults: DeviceFaults) -> Self {
        Self {
            proxied: faults.proxied,
            chances: faults.chances,
            ..Self::default()
        }
    }
}

impl Device {
    fn fault_state(&mut self) -> &mut FaultState {
        self.faults.get_or_insert_with(Box::default)
    }

    /// Whether a fault acting on the connection can act now: connected, subscribed, not away.
    fn can_inject(&self) -> bool {
        self.link == Link::Up && self.away.is_none()
    }

    /// A network or protocol fault is acting on the current connection: if it drops, that
    /// fault did it.
    pub(super) fn fault_watched(&self) -> bool {
        self.faults.as_ref().is_some_and(|f| f.watched.is_some())
    }

    pub(super) fn watch_fault(&mut self, key: Bytes, now: Instant) {
        self.fault_state().watched = Some((key, now));
    }

    pub(super) fn unwatch_fault(&mut self) {
        if let Some(f) = &mut self.faults {
            f.watched = None;
        }
    }

    /// What a fault did to the connection, for its report entry.
    pub(super) fn fault_effect_on_link(
        &self,
        now: Instant,
        out: &mut Out<'_>,
        effect: impl FnOnce(Duration) -> String,
    ) {
        if let Some((key, since)) = self.faults.as_ref().and_then(|f| f.watched.as_ref()) {
            let after = now.saturating_duration_since(*since);
            out.shared.stories.effect(key, || effect(after));
        }
    }

    /// The fault to apply to this request or answer, if any: one the schedule armed first,
    /// else one drawn by its probability (seeded).
    pub(super) fn next_fault(&mut self, class: FaultClass) -> Option<(FaultKind, FaultParams)> {
        let faults = self.faults.as_mut()?;
        if let Some(i) = faults.armed.iter().position(|(k, _)| k.class() == class) {
            return Some(faults.armed.remove(i));
        }
        for chance in &faults.chances {
            if chance.kind.class() == class && self.rng.faults.random_bool(chance.p.clamp(0.0, 1.0))
            {
                return Some((chance.kind, chance.params));
            }
        }
        None
    }

    /// Inject a fault now.
    pub fn inject(&mut self, fault: Injection, now: Instant, out: &mut Out<'_>) {
        if self.stopping {
            return;
        }
        match fault.kind.class() {
            FaultClass::Connection => self.inject_connection(fault, now, out),
            FaultClass::Network => self.inject_network(fault.kind, fault.params, now, out),
            FaultClass::Protocol => self.inject_protocol(fault.kind, fault.params, now, out),
            FaultClass::Request | FaultClass::Responder => {
                self.fault_state().armed.push((fault.kind, fault.params));
            }
        }
    }

    /// A connection fault takes the device away for `down_for`.
    fn inject_connection(&mut self, fault: Injection, now: Instant, out: &mut Out<'_>) {
        if !self.can_inject() {
            let reason = match self.away {
                Some(kind) => format!("still away after {}", kind.as_str()),
                None => "not connected".to_owned(),
            };
            tracing::info!(device = %self.id(), fault = fault.kind.as_str(), %reason, "fault skipped");
            out.actions.push(Action::Tell(WillFact::FaultSkipped {
                device: self.index,
                kind: fault.kind,
                at: now,
                reason,
            }));
            return;
        }
        tracing::info!(device = %self.id(), fault = fault.kind.as_str(), down_for = ?fault.down_for, "injecting fault");
        self.went_down(now, true, out);
        out.tally.links.planned_drops += 1;
        out.actions.push(Action::Tell(WillFact::OutageBegan {
            device: self.index,
            kind: fault.kind,
            incarnation: self.incarnation,
            down_for: fault.down_for,
            at: now,
        }));
        match fault.kind {
            FaultKind::Kill | FaultKind::Flap => self.drop_link(out),
            // Keep the socket; `away` makes the device read and write nothing until the
            // broker gives up on it (1.5 x keepalive) and closes it.
            FaultKind::Stall => {}
            FaultKind::Disconnect | FaultKind::DisconnectWithWill => {
                let reason = if fault.kind == FaultKind::Disconnect {
                    ReasonCode::Success
                } else {
                    ReasonCode::DisconnectWithWillMessage
                };
                let goodbye = self.session.disconnect(reason);
                self.write(goodbye, out);
                self.close_link(out);
            }
            _ => return,
        }
        self.away = Some(fault.kind);
        if let Some(at) = now.checked_add(fault.down_for) {
            self.timers.add(at, Timed::ComeBack);
        }
    }

    /// The fault is over: reconnect, resuming the session (clean start off).
    pub(super) fn come_back(&mut self, now: Instant, out: &mut Out<'_>) {
        let Some(kind) = self.away.take() else {
            return;
        };
        if self.stopping {
            return;
        }
        if self.link != Link::Down {
            // A stall the broker has not noticed yet: drop the socket ourselves.
            tracing::debug!(device = %self.id(), fault = kind.as_str(), "socket still open after the fault, dropping it");
            self.drop_link(out);
        }
        self.backoff.reset();
        self.connect(now, out);
    }

    /// A key for a fault on this device's connection, for its report entry.
    fn fault_key(&mut self, class: &str) -> Bytes {
        let id = self.id().to_owned();
        let faults = self.fault_state();
        faults.count += 1;
        Bytes::from(format!("{id}/{class}/{}", faults.count))
    }

    /// Reports a fault on the connection: applied (and its effects watched from now on), or
    /// skipped when the device is not connected. Returns whether it applies.
    fn announce_fault(
        &mut self,
        kind: FaultKind,
        key: &Bytes,
        what: String,
        applies: bool,
        now: Instant,
        out: &mut Out<'_>,
    ) -> bool {
        let at_s = self.run_time(now, out.shared);
        if !applies {
            let what = format!("{what}: skipped, not connected");
            out.shared
                .stories
                .injected(at_s, self.id(), kind, key.clone(), what, false);
            return false;
        }
        tracing::info!(device = %self.id(), fault = kind.as_str(), %what, "injecting fault");
        out.shared
            .stories
            .injected(at_s, self.id(), kind, key.clone(), what, true);
        self.watch_fault(key.clone(), now);
        true
    }

    fn inject_network(
        &mut self,
        kind: FaultKind,
        params: FaultParams,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        let key = self.fault_key("network");
        let direction = match params.direction {
            fleet::Direction::Upstream => toxic::Direction::Upstream,
            fleet::Direction::Downstream => toxic::Direction::Downstream,
            fleet::Direction::Both => toxic::Direction::Both,
        };
        let (toxic, what) = toxic_for(kind, params);
        let way = match params.direction {
            fleet::Direction::Upstream => "upstream",
            fleet::Direction::Downstream => "downstream",
            fleet::Direction::Both => "both ways",
        };
        let what = match params.lasts {
            Some(lasts) => format!("{what}, {way}, for {}", humantime::format_duration(lasts)),
            None => format!("{what}, {way}"),
        };
        let applies = self.faults.as_ref().is_some_and(|f| f.proxied) && self.can_inject();
        if !self.announce_fault(kind, &key, what, applies, now, out) {
            return;
        }
        out.actions
            .push(Action::Toxic(direction, Some(toxic.clone())));
        // A reset or a data limit acts once, on this connection; the others stay in force.
        if matches!(kind, FaultKind::Reset | FaultKind::LimitData) {
            return;
        }
        self.fault_state().toxics.push(ActiveToxic {
            direction,
            toxic,
            key: key.clone(),
        });
        if let Some(at) = params.lasts.and_then(|lasts| now.checked_add(lasts)) {
            self.timers.add(at, Timed::LiftToxic(key));
        }
    }

    pub(super) fn lift_toxic(&mut self, key: &Bytes, out: &mut Out<'_>) {
        let Some(faults) = &mut self.faults else {
            return;
        };
        let Some(i) = faults.toxics.iter().position(|t| t.key == *key) else {
            return;
        };
        let lifted = faults.toxics.remove(i);
        // Clearing empties the whole direction: put back the others still in force.
        out.actions.push(Action::Toxic(lifted.direction, None));
        for other in &faults.toxics {
            out.actions
                .push(Action::Toxic(other.direction, Some(other.toxic.clone())));
        }
        if faults.watched.as_ref().is_some_and(|(k, _)| k == key) {
            faults.watched = None;
        }
        out.shared.stories.effect(key, || "lifted".into());
    }

    /// A new proxied connection: the toxics still in force go back on it.
    pub(super) fn reapply_toxics(&self, out: &mut Out<'_>) {
        if let Some(faults) = &self.faults {
            for active in &faults.toxics {
                out.actions
                    .push(Action::Toxic(active.direction, Some(active.toxic.clone())));
            }
        }
    }

    fn inject_protocol(
        &mut self,
        kind: FaultKind,
        params: FaultParams,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        let key = self.fault_key("protocol");
        let lasts = params.lasts.unwrap_or(Duration::from_secs(1));
        let what = match kind {
            FaultKind::WithholdAcks => {
                format!("acks held back for {}", humantime::format_duration(lasts))
            }
            FaultKind::MalformedPacket => "wrote a packet of reserved type 0".to_owned(),
            FaultKind::OversizePacket => format!("wrote a {} byte PUBLISH", params.size),
            other => format!("{} is not a protocol fault", other.as_str()),
        };
        let applies = self.can_inject();
        if !self.announce_fault(kind, &key, what, applies, now, out) {
            return;
        }
        match kind {
            FaultKind::WithholdAcks => {
                self.session.withhold_acks(true);
                if let Some(at) = now.checked_add(lasts) {
                    self.timers.add(at, Timed::ResumeAcks(key));
                }
            }
            FaultKind::MalformedPacket => {
                self.write_out(Outbound::Raw(Bytes::from_static(MALFORMED)), out);
            }
            FaultKind::OversizePacket => {
                // Past the session on purpose: as QoS 0 nothing is kept to resend, so the
                // broker sees it once.
                let topic = format!("{}/oversize", self.id());
                let payload = Bytes::from(vec![b'x'; params.size]);
                let publish = PublishPacket::new(topic, payload, QoS::AtMostOnce);
                self.write(Packet::Publish(publish), out);
            }
            _ => {}
        }
    }

    /// The acks held back are due: reconnect, resuming the session, so the broker redelivers
    /// what it never saw acknowledged, with DUP set.
    pub(super) fn resume_acks(&mut self, key: Bytes, now: Instant, out: &mut Out<'_>) {
        let withheld = self.session.withhold_acks(false);
        out.shared.stories.effect(&key, || {
            format!(
                "{withheld} {} held back; reconnecting to resume the session",
                if withheld == 1 { "ack" } else { "acks" }
            )
        });
        if self.stopping || !self.can_inject() {
            // Gone already (or stalled): the next connection resumes the session anyway.
            return;
        }
        self.fault_state().redelivered = Some(0);
        // Dropped without DISCONNECT: the broker may publish this connection's Will.
        self.tell_dropped(now, out);
        self.went_down(now, true, out);
        out.tally.links.planned_drops += 1;
        self.drop_link(out);
        self.connect(now, out);
        if let Some(at) = now.checked_add(REDELIVERY_WINDOW) {
            self.timers.add(at, Timed::RedeliveryEnd(key));
        }
    }

    pub(super) fn redelivery_end(&mut self, key: &Bytes, out: &mut Out<'_>) {
        if let Some(count) = self.faults.as_mut().and_then(|f| f.redelivered.take()) {
            out.shared
                .stories
                .effect(key, || format!("the broker redelivered {count} with DUP"));
        }
    }

    /// Counts a redelivery while a withhold_acks fault watches for them.
    pub(super) fn note_redelivery(&mut self, publish: &PublishPacket) {
        if publish.dup
            && let Some(count) = self.faults.as_mut().and_then(|f| f.redelivered.as_mut())
        {
            *count += 1;
        }
    }
}

fn toxic_for(kind: FaultKind, p: FaultParams) -> (Toxic, String) {
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    match kind {
        FaultKind::Latency => (
            Toxic::Latency {
                latency: p.latency,
                jitter: p.jitter,
            },
            format!("latency {} ± {}", ms(p.latency), ms(p.jitter)),
        ),
        FaultKind::Bandwidth => (
            Toxic::Bandwidth {
                bytes_per_sec: p.rate,
            },
            format!("bandwidth {} B/s", p.rate),
        ),
        FaultKind::Blackhole => (Toxic::Blackhole, "blackhole".into()),
        FaultKind::Slicer => (
            Toxic::Slicer {
                size: p.slice,
                delay: p.slice_delay,
            },
            format!(
                "sliced into {} byte segments {} apart",
                p.slice,
                ms(p.slice_delay)
            ),
        ),
        FaultKind::LimitData => (
            Toxic::LimitData { bytes: p.limit },
            format!("connection closed after {} more bytes", p.limit),
        ),
        // Reset, and anything else that reaches here by mistake, ends the connection.
        _ => (Toxic::Reset, "reset (TCP RST)".into()),
    }
}
