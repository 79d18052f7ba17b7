//! Connection faults injected on purpose, each the cause of an outage the supervisor follows:
//! kill (drop the socket), stall (go silent until the broker gives up), disconnect (0x00),
//! disconnect_with_will (0x04) and flap (drop, then come back within the Will Delay).

use std::time::{Duration, Instant};

use actix::prelude::*;
use mqtt5_protocol::ReasonCode;

use super::{Away, DeviceActor, Link};
use crate::events::{DropReason, Event};
use crate::fleet::{FaultClass, FaultKind, FaultParams};
use crate::supervisor::WillFact;

/// Inject a fault now. A connection fault takes the device away for `down_for`; a request or
/// responder fault applies to the device's next request or answer.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Inject {
    pub kind: FaultKind,
    pub down_for: Duration,
    pub params: FaultParams,
}

impl Handler<Inject> for DeviceActor {
    type Result = ();

    fn handle(&mut self, fault: Inject, ctx: &mut Context<Self>) {
        let at = Instant::now();
        if self.stopping {
            return;
        }
        match fault.kind.class() {
            FaultClass::Connection => {}
            FaultClass::Network => return self.inject_network(fault.kind, fault.params, ctx),
            FaultClass::Protocol => return self.inject_protocol(fault.kind, fault.params, ctx),
            FaultClass::Request | FaultClass::Responder => {
                self.armed.push((fault.kind, fault.params));
                return;
            }
        }
        if !self.can_inject() {
            let reason = match self.away {
                Some(away) => format!("still away after {}", away.kind.as_str()),
                None => "not connected".to_owned(),
            };
            tracing::info!(device = %self.id, fault = fault.kind.as_str(), %reason, "fault skipped");
            self.tell_supervisor(WillFact::FaultSkipped {
                device: self.index,
                kind: fault.kind,
                at,
                reason,
            });
            return;
        }
        tracing::info!(device = %self.id, fault = fault.kind.as_str(), down_for = ?fault.down_for, "injecting fault");
        self.downtime.down(at, true);
        self.emit(Event::Dropped {
            reason: DropReason::Fault(fault.kind),
            planned: true,
        });
        self.tell_supervisor(WillFact::OutageBegan {
            device: self.index,
            kind: fault.kind,
            incarnation: self.incarnation,
            down_for: fault.down_for,
            at,
        });
        match fault.kind {
            FaultKind::Kill | FaultKind::Flap => {
                self.drop_link(ctx);
            }
            FaultKind::Stall => {
                // Keep the socket; `away` makes the device read and write nothing until the
                // broker gives up on it (1.5 x keepalive) and closes it.
                if let Some(tick) = self.tick.take() {
                    ctx.cancel_future(tick);
                }
            }
            FaultKind::Disconnect | FaultKind::DisconnectWithWill => {
                let reason = if fault.kind == FaultKind::Disconnect {
                    ReasonCode::Success
                } else {
                    ReasonCode::DisconnectWithWillMessage
                };
                let goodbye = self.session.disconnect(reason);
                self.write(goodbye);
                self.close_link(ctx);
            }
            // Request and responder faults were armed above and never get here.
            _ => return,
        }
        self.away = Some(Away { kind: fault.kind });
        ctx.run_later(fault.down_for, |act, ctx| act.come_back(ctx));
    }
}

impl DeviceActor {
    /// The fault is over: reconnect, resuming the session (clean start off).
    fn come_back(&mut self, ctx: &mut Context<Self>) {
        let Some(away) = self.away.take() else {
            return;
        };
        if self.stopping {
            return;
        }
        if self.link != Link::Down {
            // A stall the broker has not noticed yet: drop the socket ourselves.
            tracing::debug!(device = %self.id, fault = away.kind.as_str(), "socket still open after the fault, dropping it");
            self.drop_link(ctx);
        }
        self.backoff.reset();
        self.connect(ctx);
    }
}
