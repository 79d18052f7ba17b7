//! Answering a request, shared by lights and sensors: to the request's Response Topic, with its
//! Correlation Data copied, unless a responder fault says to misbehave.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use mqtt5_protocol::is_valid_topic_name;
use rand::Rng;

use super::DeviceActor;
use crate::events::{Event, Handled};
use crate::fleet::{FaultClass, FaultKind};
use crate::mqtt::{Outgoing, PublishProperties};

impl DeviceActor {
    /// Answers after `delay` (plus a `slow` fault's), or misbehaves as a due fault says.
    pub(super) fn answer(
        &mut self,
        handled: Handled,
        answer: Bytes,
        delay: Duration,
        ctx: &mut Context<Self>,
    ) {
        let fault = self.next_fault(FaultClass::Responder);
        let mut delay = delay;
        if let Some((kind, params)) = fault {
            let what = match kind {
                FaultKind::Slow => {
                    let (min, max) = params.delay;
                    let extra = if max > min {
                        self.rng.random_range(min..=max)
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
            let what = match &handled.correlation {
                Some(_) => what,
                // The requester's outcome is found by Correlation Data; without it, say so.
                None => format!("{what} -> untraceable: the request carried no Correlation Data"),
            };
            self.emit(Event::FaultInjected {
                kind,
                correlation: handled.correlation.clone().unwrap_or_default(),
                what,
                applied: true,
            });
        }
        let fault = fault.map(|(kind, _)| kind);
        if delay.is_zero() {
            self.respond(handled, answer, fault);
        } else {
            ctx.run_later(delay, move |act, _| act.respond(handled, answer, fault));
        }
    }

    /// Publishes the answer and reports what was done.
    fn respond(&mut self, mut handled: Handled, answer: Bytes, fault: Option<FaultKind>) {
        let Some(mut topic) = handled.response_topic.clone() else {
            // Applied, counted, not answered: nobody said where to.
            self.emit(Event::Handled(Arc::new(handled)));
            return;
        };
        if !is_valid_topic_name(&topic) {
            // A Response Topic with a wildcard (or empty) is no topic to publish to: a broker
            // would close the connection for it, and the session would resend it forever.
            tracing::warn!(device = %self.id, %topic, "request with an invalid Response Topic: not answered");
            handled.rejected = true;
            handled.response_topic = None;
            self.emit(Event::Handled(Arc::new(handled)));
            return;
        }
        let mut correlation = handled.correlation.clone();
        let mut payload = answer;
        match fault {
            Some(FaultKind::NoAnswer) => {
                handled.withheld = true;
                self.emit(Event::Handled(Arc::new(handled)));
                return;
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
        let msg = Outgoing {
            topic,
            payload: payload.clone(),
            qos: self.qos,
            retain: false,
            properties: PublishProperties {
                correlation_data: correlation,
                ..PublishProperties::default()
            },
            tag: 0,
        };
        if fault == Some(FaultKind::DuplicateAnswer) {
            self.publish_counted(msg.clone());
        }
        self.publish_counted(msg);
        handled.answer = Some(payload);
        self.emit(Event::Handled(Arc::new(handled)));
    }
}
