//! The sensor: publishes readings on an interval and answers `get` requests with the latest
//! reading through the same request/response path as a light.

use actix::prelude::*;
use bytes::Bytes;
use mqtt5_protocol::packet::publish::PublishPacket;
use rand::Rng;

use super::{DeviceActor, RoleState, correlation_of, response_topic_of};
use crate::events::{Event, Handled, Skip};
use crate::fleet::{self, Signal};
use crate::mqtt::{Outgoing, PublishProperties};

/// A seeded signal generator: random walk or uniform range.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalGen {
    signal: Signal,
    last: f64,
}

impl SignalGen {
    pub fn new(signal: &Signal) -> Self {
        let last = match *signal {
            Signal::Walk { start, .. } => start,
            Signal::Range { min, max } => (min + max) / 2.0,
        };
        Self {
            signal: signal.clone(),
            last,
        }
    }

    pub fn last(&self) -> f64 {
        self.last
    }

    pub fn next(&mut self, rng: &mut impl Rng) -> f64 {
        self.last = match self.signal {
            Signal::Walk { step, min, max, .. } => {
                let delta = if step > 0.0 {
                    rng.random_range(-step..=step)
                } else {
                    0.0
                };
                (self.last + delta).clamp(min, max)
            }
            Signal::Range { min, max } if max > min => rng.random_range(min..=max),
            Signal::Range { min, .. } => min,
        };
        // Two decimals: what a real sensor reports, and stable across platforms in the JSON.
        self.last = (self.last * 100.0).round() / 100.0;
        self.last
    }
}

pub(super) struct SensorState {
    pub spec: fleet::Sensor,
    signal: SignalGen,
}

impl SensorState {
    pub(super) fn new(spec: &fleet::Sensor) -> Self {
        Self {
            signal: SignalGen::new(&spec.signal),
            spec: spec.clone(),
        }
    }
}

fn reading(value: f64, unit: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "value": value, "unit": unit }).to_string())
}

impl DeviceActor {
    pub(super) fn schedule_telemetry(&mut self, ctx: &mut Context<Self>) {
        let RoleState::Sensor(sensor) = &self.role else {
            return;
        };
        ctx.run_later(sensor.spec.every, |act, ctx| {
            if act.running {
                act.publish_reading();
                act.schedule_telemetry(ctx);
            }
        });
    }

    /// Publishes the next reading; one due while the sensor is offline (or its session's
    /// queue is full) is skipped and counted, not queued: a reading is only worth its time.
    fn publish_reading(&mut self) {
        let skip = if !self.online() {
            Some(Skip::ReadingOffline)
        } else if self.session.queue_full() {
            Some(Skip::ReadingBacklog)
        } else {
            None
        };
        if let Some(skip) = skip {
            return self.emit(Event::Skipped(skip));
        }
        let RoleState::Sensor(SensorState { spec, signal }) = &mut self.role else {
            return;
        };
        let value = signal.next(&mut self.rng);
        let msg = Outgoing {
            topic: spec.telemetry_topic.clone(),
            payload: reading(value, &spec.unit),
            qos: self.qos,
            retain: false,
            properties: PublishProperties {
                content_type: Some("application/json".into()),
                ..PublishProperties::default()
            },
            tag: 0,
        };
        match self.publish(msg) {
            Ok(_) => self.emit(Event::TelemetryPublished),
            Err(_) => self.emit(Event::Skipped(Skip::ReadingBacklog)),
        }
    }

    pub(super) fn sensor_request(&mut self, publish: PublishPacket, ctx: &mut Context<Self>) {
        let RoleState::Sensor(SensorState {
            spec,
            signal: state,
        }) = &self.role
        else {
            return;
        };
        // Echoed in an error: a little of it, never a whole huge payload.
        let head = &publish.payload[..publish.payload.len().min(40)];
        let command = String::from_utf8_lossy(head);
        let rejected = !String::from_utf8_lossy(&publish.payload)
            .trim()
            .eq_ignore_ascii_case("get");
        let answer = if rejected {
            Bytes::from(
                serde_json::json!({ "error": format!("unknown request {command:?}, expected \"get\"") })
                    .to_string(),
            )
        } else {
            reading(state.last(), &spec.unit)
        };
        let handled = Handled {
            topic: publish.topic_name.clone(),
            response_topic: response_topic_of(&publish),
            correlation: correlation_of(&publish),
            payload: publish.payload,
            answer: None,
            rejected,
            withheld: false,
        };
        self.answer(handled, answer, std::time::Duration::ZERO, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn walk_stays_within_bounds_and_moves_at_most_one_step() {
        let signal = Signal::Walk {
            start: 20.0,
            step: 0.5,
            min: 19.0,
            max: 21.0,
        };
        let mut generator = SignalGen::new(&signal);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut last = 20.0;
        for _ in 0..1000 {
            let v = generator.next(&mut rng);
            assert!((19.0..=21.0).contains(&v), "{v}");
            assert!((v - last).abs() <= 0.5 + 0.01, "{last} -> {v}");
            last = v;
        }
    }

    #[test]
    fn range_stays_within_bounds() {
        let mut generator = SignalGen::new(&Signal::Range {
            min: 0.0,
            max: 100.0,
        });
        let mut rng = SmallRng::seed_from_u64(1);
        let values: Vec<f64> = (0..500).map(|_| generator.next(&mut rng)).collect();
        assert!(values.iter().all(|v| (0.0..=100.0).contains(v)));
        assert!(values.iter().any(|v| *v < 25.0) && values.iter().any(|v| *v > 75.0));
    }

    #[test]
    fn same_seed_same_readings() {
        let signal = Signal::Walk {
            start: 20.0,
            step: 1.0,
            min: 0.0,
            max: 40.0,
        };
        let run = |seed| {
            let mut g = SignalGen::new(&signal);
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..50).map(|_| g.next(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn reading_is_json_with_unit() {
        let v: serde_json::Value = serde_json::from_slice(&reading(21.5, "°C")).unwrap();
        assert_eq!(v["value"], 21.5);
        assert_eq!(v["unit"], "°C");
    }
}
