//! The exchange trace: the first few request/response exchanges of a run, printed step by step
//! so a newcomer sees Response Topic and Correlation Data doing their work.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::events::{Exchange, Handled, Outcome};

/// Collects the steps of the first `limit` requests and prints each exchange once it ends.
#[derive(Debug)]
pub struct ExchangeTrace {
    limit: usize,
    started: usize,
    open: HashMap<Bytes, Steps>,
}

#[derive(Debug)]
struct Steps {
    number: usize,
    requester: String,
    exchange: Arc<Exchange>,
    responders: Vec<(String, Arc<Handled>)>,
}

impl ExchangeTrace {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            started: 0,
            open: HashMap::new(),
        }
    }

    /// Every exchange it will tell has been told.
    pub fn finished(&self) -> bool {
        self.started >= self.limit && self.open.is_empty()
    }

    pub fn request(&mut self, requester: &str, exchange: Arc<Exchange>) {
        if self.started >= self.limit {
            return;
        }
        self.started += 1;
        self.open.insert(
            exchange.correlation.clone(),
            Steps {
                number: self.started,
                requester: requester.to_owned(),
                exchange,
                responders: Vec::new(),
            },
        );
    }

    pub fn handled(&mut self, responder: &str, handled: Arc<Handled>) {
        let Some(correlation) = &handled.correlation else {
            return;
        };
        if let Some(steps) = self.open.get_mut(correlation) {
            steps.responders.push((responder.to_owned(), handled));
        }
    }

    pub fn done(&mut self, correlation: &Bytes, outcome: &Outcome) {
        if let Some(steps) = self.open.remove(correlation) {
            crate::output::human(render(&steps, outcome));
        }
    }
}

fn render(steps: &Steps, outcome: &Outcome) -> String {
    let e = &steps.exchange;
    let who = &steps.requester;
    let width = steps
        .responders
        .iter()
        .map(|(id, _)| id.len())
        .chain([who.len()])
        .max()
        .unwrap_or(0);
    let pad = " ".repeat(width);
    let mut out = format!("exchange {}\n", steps.number);
    let verb = if e.published {
        "PUBLISH"
    } else {
        "would PUBLISH"
    };
    out += &format!(
        "  {who:<width$}  {verb} {}  {}\n",
        e.topic,
        show(&e.payload)
    );
    out += &format!("  {pad}    Response Topic    {}\n", e.response_topic);
    out += &format!("  {pad}    Correlation Data  {}\n", show(&e.correlation));
    for (responder, handled) in &steps.responders {
        let answer = handled.answer.as_ref().map_or_else(
            || "no Response Topic, so no answer".to_owned(),
            |a| format!("answers {} on the Response Topic", show(a)),
        );
        out += &format!(
            "  {responder:<width$}  got {} on {}, {answer}, Correlation Data copied\n",
            show(&handled.payload),
            handled.topic
        );
    }
    let end = match outcome {
        Outcome::Matched { latency, payload } => format!(
            "got {} on {}: Correlation Data {} matches request {}, {:.2} ms after sending",
            show(payload),
            e.response_topic,
            show(&e.correlation),
            steps.number,
            latency.as_secs_f64() * 1000.0
        ),
        Outcome::TimedOut { after } => format!("no answer within {after:?}: timed out"),
        Outcome::Late { latency } => format!(
            "got the answer {:.2} ms after sending, past its timeout: late",
            latency.as_secs_f64() * 1000.0
        ),
        Outcome::Failed { reason } => format!("the request failed: {reason}"),
    };
    out += &format!("  {who:<width$}  {end}");
    out
}

/// Payloads and correlation data as a person reads them: quoted text when printable, hex if not.
pub fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn exchange(correlation: &'static str) -> Arc<Exchange> {
        Arc::new(Exchange {
            published: true,
            topic: "cmnd/light-in-bedroom/power".into(),
            response_topic: "state/light-in-bedroom/power".into(),
            correlation: Bytes::from_static(correlation.as_bytes()),
            payload: Bytes::from_static(b"ON"),
        })
    }

    #[test]
    fn show_quotes_text_and_hexes_binary() {
        assert_eq!(show(b"phone:1"), "\"phone:1\"");
        assert_eq!(show(&[0x00, 0xff]), "0x00ff");
        assert_eq!(show(b"a\nb"), "0x610a62");
    }

    #[test]
    fn render_names_every_step_of_a_matched_exchange() {
        let e = exchange("phone:1");
        let steps = Steps {
            number: 1,
            requester: "phone".into(),
            exchange: e.clone(),
            responders: vec![(
                "light-in-bedroom".into(),
                Arc::new(Handled {
                    topic: e.topic.to_string(),
                    payload: e.payload.clone(),
                    response_topic: Some(e.response_topic.to_string()),
                    correlation: Some(e.correlation.clone()),
                    answer: Some(Bytes::from_static(b"{\"power\":\"ON\"}")),
                    rejected: false,
                    withheld: false,
                }),
            )],
        };
        let text = render(
            &steps,
            &Outcome::Matched {
                latency: Duration::from_micros(1500),
                payload: Bytes::from_static(b"{\"power\":\"ON\"}"),
            },
        );
        assert!(text.contains("PUBLISH cmnd/light-in-bedroom/power  \"ON\""));
        assert!(text.contains("Response Topic    state/light-in-bedroom/power"));
        assert!(text.contains("Correlation Data  \"phone:1\""));
        assert!(text.contains("light-in-bedroom  got \"ON\""));
        assert!(text.contains("matches request 1, 1.50 ms"));
    }

    #[test]
    fn only_the_first_limit_exchanges_are_kept() {
        let mut trace = ExchangeTrace::new(1);
        trace.request("phone", exchange("phone:1"));
        trace.request("phone", exchange("phone:2"));
        assert_eq!(trace.open.len(), 1);
        assert!(trace.open.contains_key(&Bytes::from_static(b"phone:1")));
    }
}
