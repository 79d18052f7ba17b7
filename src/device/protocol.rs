//! Protocol faults on the device's own MQTT connection: acknowledgements held back (the broker
//! must redeliver with DUP once the session resumes), a malformed packet and an oversize one
//! (the broker must close this connection, and only this one).

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::{Packet, QoS};

use super::DeviceActor;
use crate::events::Event;
use crate::fleet::{FaultKind, FaultParams};
use crate::mqtt::Outbound;

/// After the device resumes its session, how long DUP redeliveries are counted: a broker sends
/// them right after its CONNACK.
const REDELIVERY_WINDOW: Duration = Duration::from_secs(1);

/// A fixed header of reserved packet type 0: malformed by MQTT 5 section 2.1.2.
const MALFORMED: &[u8] = &[0x00, 0x00];

impl DeviceActor {
    pub(super) fn inject_protocol(
        &mut self,
        kind: FaultKind,
        params: FaultParams,
        ctx: &mut Context<Self>,
    ) {
        let key = self.fault_key("protocol");
        let what = match kind {
            FaultKind::WithholdAcks => {
                let lasts = params.lasts.unwrap_or(Duration::from_secs(1));
                format!("acks held back for {}", humantime::format_duration(lasts))
            }
            FaultKind::MalformedPacket => "wrote a packet of reserved type 0".to_owned(),
            FaultKind::OversizePacket => format!("wrote a {} byte PUBLISH", params.size),
            other => format!("{} is not a protocol fault", other.as_str()),
        };
        if !self.announce_fault(kind, &key, what, self.can_inject()) {
            return;
        }
        match kind {
            FaultKind::WithholdAcks => {
                self.session.withhold_acks(true);
                let lasts = params.lasts.unwrap_or(Duration::from_secs(1));
                ctx.run_later(lasts, move |act, ctx| act.resume_acks(key, ctx));
            }
            FaultKind::MalformedPacket => {
                self.write_out(Outbound::Raw(Bytes::from_static(MALFORMED)));
            }
            FaultKind::OversizePacket => {
                // Past the session on purpose: as QoS 0 nothing is kept to resend, so the
                // broker sees it once.
                let topic = format!("{}/oversize", self.id);
                let payload = Bytes::from(vec![b'x'; params.size]);
                self.write(Packet::Publish(PublishPacket::new(
                    topic,
                    payload,
                    QoS::AtMostOnce,
                )));
            }
            _ => {}
        }
    }

    /// The acks held back are due: reconnect, resuming the session, so the broker redelivers
    /// what it never saw acknowledged, with DUP set.
    fn resume_acks(&mut self, key: Bytes, ctx: &mut Context<Self>) {
        let withheld = self.session.withhold_acks(false);
        self.emit(Event::FaultEffect {
            key: key.clone(),
            effect: format!("{withheld} acks held back; reconnecting to resume the session"),
        });
        if self.stopping || !self.can_inject() {
            // Gone already (or stalled): the next connection resumes the session anyway.
            return;
        }
        self.redelivered = Some(0);
        // Dropped without DISCONNECT: the broker may publish this connection's Will.
        self.tell_dropped();
        self.downtime.down(std::time::Instant::now(), true);
        self.emit(Event::Dropped {
            reason: crate::events::DropReason::Fault(FaultKind::WithholdAcks),
            planned: true,
        });
        self.drop_link(ctx);
        self.connect(ctx);
        ctx.run_later(REDELIVERY_WINDOW, move |act, _| {
            if let Some(count) = act.redelivered.take() {
                act.emit(Event::FaultEffect {
                    key,
                    effect: format!("the broker redelivered {count} with DUP"),
                });
            }
        });
    }

    /// Counts a redelivery while a withhold_acks fault watches for them.
    pub(super) fn note_redelivery(&mut self, publish: &PublishPacket) {
        if publish.dup
            && let Some(count) = &mut self.redelivered
        {
            *count += 1;
        }
    }
}
