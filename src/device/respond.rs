//! Responders: lights and sensors answering requests, to the request's Response Topic with its
//! Correlation Data copied, unless a responder fault says to misbehave; and sensors' readings.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt5_protocol::is_valid_topic_name;
use mqtt5_protocol::packet::publish::PublishPacket;
use rand::Rng;

use super::core::{Device, Out, Role, Timed};
use super::{correlation_of, response_topic_of};
use crate::events::Handled;
use crate::fleet::{self, FaultClass, FaultKind};
use crate::mqtt::{Outgoing, PublishProperties};

/// An answer on its way: held for the responder's `delay`, then published.
#[derive(Debug)]
pub struct PendingAnswer {
    response_topic: Option<String>,
    correlation: Option<Bytes>,
    /// A request without Correlation Data from a fleetsim phone names itself in a User
    /// Property ([`super::REQUEST_TAG`]); the answer carries it back.
    tag: Option<String>,
    answer: Bytes,
    /// The request was not one the responder understands (answered with an error).
    rejected: bool,
    fault: Option<FaultKind>,
    /// What the exchange trace shows of it, while the trace is on.
    traced: Option<Handled>,
}

fn reading(value: f64, unit: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "value": value, "unit": unit }).to_string())
}

impl Device {
    /// A light or sensor received a request: apply it, and answer.
    pub(super) fn on_request(&mut self, publish: PublishPacket, now: Instant, out: &mut Out<'_>) {
        let fleet = self.fleet.clone();
        let spec = &fleet.devices[self.index as usize];
        let (answer, rejected, delay) = match (&mut self.role, &spec.role) {
            (Role::Light(state), fleet::Role::Light(light)) => {
                let rejected = state.apply(&publish.payload).is_err();
                let answer = if rejected {
                    state.rejection(&publish.payload)
                } else {
                    state.answer()
                };
                (answer, rejected, light.delay)
            }
            (Role::Sensor(sensor), fleet::Role::Sensor(spec)) => {
                let rejected = !String::from_utf8_lossy(&publish.payload)
                    .trim()
                    .eq_ignore_ascii_case("get");
                let answer = if rejected {
                    // Echoed in an error: a little of it, never a whole huge payload.
                    let head = &publish.payload[..publish.payload.len().min(40)];
                    let command = String::from_utf8_lossy(head);
                    Bytes::from(
                        serde_json::json!({
                            "error": format!("unknown request {command:?}, expected \"get\"")
                        })
                        .to_string(),
                    )
                } else {
                    reading(sensor.signal.last(), &spec.unit)
                };
                (answer, rejected, Duration::ZERO)
            }
            _ => return,
        };
        let r = &mut out.tally.responders;
        r.received += 1;
        if rejected {
            r.rejected += 1;
        }
        let correlation = correlation_of(&publish);
        let response_topic = response_topic_of(&publish);
        let tag = correlation
            .is_none()
            .then(|| super::user_property(&publish, super::REQUEST_TAG))
            .flatten()
            .map(str::to_owned);
        // A request from outside the fleet (a trainee's MQTTX) is told (the first ones), and
        // remembered, so a fleet phone on the same Response Topic knows its answer for
        // somebody else's.
        let from_outside = super::user_property(&publish, crate::shared::PUBLISHER_PROPERTY)
            .filter(|publisher| out.shared.outside.is_outsider(publisher, &fleet));
        if from_outside.is_some() {
            r.from_outside += 1;
            if let Some(topic) = &response_topic {
                out.shared.outside.answering(topic, correlation.as_ref());
            }
        }
        let told_outside = from_outside.is_some() && out.shared.narration.tells_outside();
        let traced = (told_outside || out.shared.narration.active()).then(|| Handled {
            topic: publish.topic_name.clone(),
            payload: publish.payload.clone(),
            response_topic: response_topic.clone(),
            correlation: correlation.clone(),
            tag: tag.clone().map(Bytes::from),
            answer: None,
            rejected,
            withheld: false,
            from_outside: from_outside.map(str::to_owned),
        });
        let pending = PendingAnswer {
            response_topic,
            correlation,
            tag,
            answer,
            rejected,
            fault: None,
            traced,
        };
        self.answer(pending, delay, now, out);
    }

    /// Answers after `delay` (plus a `slow` fault's), or misbehaves as a due fault says.
    fn answer(
        &mut self,
        mut pending: PendingAnswer,
        delay: Duration,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        let mut delay = delay;
        if let Some((kind, params)) = self.next_fault(FaultClass::Responder) {
            let what = match kind {
                FaultKind::Slow => {
                    let (min, max) = params.delay;
                    let extra = if max > min {
                        self.rng.faults.random_range(min..=max)
                    } else {
                        min
                    };
                    delay += extra;
                    format!(
                        "answered {:.0} ms late on purpose",
                        extra.as_secs_f64() * 1000.0
                    )
                }
                FaultKind::NoAnswer => "did not answer".into(),
                FaultKind::WrongCorrelation => "answered with other Correlation Data".into(),
                FaultKind::DuplicateAnswer => "answered twice".into(),
                FaultKind::WrongTopic => "answered on the wrong topic".into(),
                FaultKind::ErrorPayload => "answered with an error payload".into(),
                other => format!("{} does not apply to an answer", other.as_str()),
            };
            let what = match &pending.correlation {
                Some(_) => what,
                // The requester's outcome is found by Correlation Data; without it, say so.
                None => format!("{what} -> untraceable: the request carried no Correlation Data"),
            };
            let at_s = self.run_time(now, out.shared);
            let key = pending.correlation.clone().unwrap_or_default();
            out.shared
                .stories
                .injected(at_s, self.id(), kind, key, what, true);
            pending.fault = Some(kind);
        }
        match now.checked_add(delay).filter(|_| !delay.is_zero()) {
            Some(at) => self.timers.add(at, Timed::Answer(Box::new(pending))),
            None => self.respond(pending, now, out),
        }
    }

    /// Publishes the answer and counts what was done.
    pub(super) fn respond(&mut self, pending: PendingAnswer, now: Instant, out: &mut Out<'_>) {
        let PendingAnswer {
            response_topic,
            mut correlation,
            tag,
            answer,
            rejected,
            fault,
            mut traced,
        } = pending;
        let r = &mut out.tally.responders;
        let topic = match response_topic {
            // Applied, counted, not answered: nobody said where to.
            None => {
                r.without_response_topic += 1;
                return self.trace_handled(traced, out);
            }
            Some(topic) if !is_valid_topic_name(&topic) => {
                // A Response Topic with a wildcard (or empty) is no topic to publish to: a
                // broker would close the connection for it, and the session would resend it
                // forever.
                tracing::debug!(device = %self.id(), %topic, "request with an invalid Response Topic: not answered");
                if !rejected {
                    r.rejected += 1;
                }
                r.without_response_topic += 1;
                if let Some(t) = &mut traced {
                    t.rejected = true;
                    t.response_topic = None;
                }
                return self.trace_handled(traced, out);
            }
            Some(topic) => topic,
        };
        let mut topic = topic;
        let mut payload = answer;
        match fault {
            Some(FaultKind::NoAnswer) => {
                r.withheld += 1;
                if let Some(t) = &mut traced {
                    t.withheld = true;
                }
                return self.trace_handled(traced, out);
            }
            Some(FaultKind::WrongTopic) => topic.push_str("/wrong"),
            Some(FaultKind::WrongCorrelation) => {
                let mut wrong = b"wrong:".to_vec();
                wrong.extend_from_slice(correlation.as_deref().unwrap_or_default());
                correlation = Some(Bytes::from(wrong));
            }
            Some(FaultKind::ErrorPayload) => {
                payload = Bytes::from_static(br#"{"error":"injected fault"}"#);
            }
            _ => {}
        }
        r.answered += 1;
        if let Some(t) = &mut traced {
            t.answer = Some(payload.clone());
        }
        let msg = Outgoing {
            topic,
            payload,
            qos: self.qos,
            retain: false,
            properties: PublishProperties {
                correlation_data: correlation,
                user_properties: tag
                    .map(|tag| vec![(super::REQUEST_TAG.to_owned(), tag)])
                    .unwrap_or_default(),
                ..PublishProperties::default()
            },
            tag: 0,
        };
        if fault == Some(FaultKind::DuplicateAnswer) {
            self.publish_counted(msg.clone(), now, out);
        }
        self.publish_counted(msg, now, out);
        self.trace_handled(traced, out);
    }

    fn trace_handled(&self, traced: Option<Handled>, out: &mut Out<'_>) {
        if let Some(handled) = traced {
            out.shared
                .narration
                .tell(|n| n.handled(self.id(), &handled));
        }
    }

    /// A sensor publishes a reading when one is due; one due while it is offline (or its
    /// session's queue is full) is skipped and counted, not queued: a reading is only worth
    /// its time.
    pub(super) fn sensor_tick(&mut self, now: Instant, out: &mut Out<'_>) {
        let fleet = self.fleet.clone();
        let fleet::Role::Sensor(spec) = &fleet.devices[self.index as usize].role else {
            return;
        };
        let Role::Sensor(sensor) = &mut self.role else {
            return;
        };
        if !self.running || sensor.next_reading.is_none_or(|at| at > now) {
            return;
        }
        // Paced against the previous due time, so readings do not drift.
        sensor.next_reading = sensor
            .next_reading
            .and_then(|at| at.checked_add(spec.every));
        if sensor.next_reading.is_some_and(|next| next <= now) {
            // Far behind (the machine stalled): start again from now rather than burst.
            sensor.next_reading = now.checked_add(spec.every);
        }
        let value = sensor.signal.next(&mut self.rng.payloads);
        let t = &mut out.tally.telemetry;
        if !self.online() {
            t.skipped_offline += 1;
            return;
        }
        if self.session.queue_full() {
            t.skipped_backlog += 1;
            return;
        }
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
        let tag = self.next_untracked_tag();
        match self.publish_tagged(msg, tag, now, out) {
            Ok(()) => out.tally.telemetry.published += 1,
            Err(_) => out.tally.telemetry.skipped_backlog += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_json_with_unit() {
        let v: serde_json::Value = serde_json::from_slice(&reading(21.5, "°C")).unwrap();
        assert_eq!(v["value"], 21.5);
        assert_eq!(v["unit"], "°C");
    }
}
