//! Network faults: Toxiproxy-style toxics on the in-process proxy between a device and its
//! broker ([`crate::transport::toxic`]). Only devices a network fault targets connect through
//! a proxy. Toxics in force are put back on each new connection until they lapse.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use super::DeviceActor;
use crate::events::Event;
use crate::fleet::{self, FaultKind, FaultParams};
use crate::transport::toxic::{self, Toxic, ToxicControl};

/// A toxic in force on this device, and the key its fault event is known by.
pub(super) struct ActiveToxic {
    direction: toxic::Direction,
    toxic: Toxic,
    key: Bytes,
}

impl DeviceActor {
    /// Applies a network fault to the current connection (and later ones, while it lasts).
    pub(super) fn inject_network(
        &mut self,
        kind: FaultKind,
        params: FaultParams,
        ctx: &mut Context<Self>,
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
        let control = self.toxics.clone().filter(|_| self.can_inject());
        if !self.announce_fault(kind, &key, what, control.is_some()) {
            return;
        }
        let Some(control) = control else {
            return;
        };
        control.set(direction, toxic.clone());
        // A reset or a data limit acts once, on this connection; the others stay in force.
        if matches!(kind, FaultKind::Reset | FaultKind::LimitData) {
            return;
        }
        self.active_toxics.push(ActiveToxic {
            direction,
            toxic,
            key: key.clone(),
        });
        if let Some(lasts) = params.lasts {
            ctx.run_later(lasts, move |act, _| act.lift_toxic(&key));
        }
    }

    /// A key for a fault on this device's connection, for its report entry.
    pub(super) fn fault_key(&mut self, class: &str) -> Bytes {
        self.connection_faults += 1;
        Bytes::from(format!("{}/{class}/{}", self.id, self.connection_faults))
    }

    /// Reports a fault on the connection: applied (and its effects watched from now on), or
    /// skipped when the device is not connected. Returns whether it applies.
    pub(super) fn announce_fault(
        &mut self,
        kind: FaultKind,
        key: &Bytes,
        what: String,
        connected: bool,
    ) -> bool {
        if !connected {
            self.emit(Event::FaultInjected {
                kind,
                correlation: key.clone(),
                what: format!("{what}: skipped, not connected"),
                applied: false,
            });
            return false;
        }
        tracing::info!(device = %self.id, fault = kind.as_str(), %what, "injecting fault");
        self.emit(Event::FaultInjected {
            kind,
            correlation: key.clone(),
            what,
            applied: true,
        });
        self.watched_fault = Some((key.clone(), Instant::now()));
        true
    }

    fn lift_toxic(&mut self, key: &Bytes) {
        let Some(i) = self.active_toxics.iter().position(|t| t.key == *key) else {
            return;
        };
        let lifted = self.active_toxics.remove(i);
        if let Some(control) = &self.toxics {
            control.clear(lifted.direction);
            // `clear` empties the whole direction: put back the others still in force.
            for other in &self.active_toxics {
                control.set(other.direction, other.toxic.clone());
            }
        }
        self.emit(Event::FaultEffect {
            key: key.clone(),
            effect: "lifted".into(),
        });
        if self.watched_fault.as_ref().is_some_and(|(k, _)| k == key) {
            self.watched_fault = None;
        }
    }

    /// A new proxied connection: its control, with the toxics still in force put back.
    pub(super) fn attach_toxics(&mut self, control: ToxicControl) {
        for active in &self.active_toxics {
            control.set(active.direction, active.toxic.clone());
        }
        self.toxics = Some(control);
    }

    /// What a network fault did to the connection, for its report entry.
    pub(super) fn network_effect(&mut self, effect: impl FnOnce(Duration) -> String) {
        if let Some((key, since)) = &self.watched_fault {
            let effect = effect(since.elapsed());
            self.emit(Event::FaultEffect {
                key: key.clone(),
                effect,
            });
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
