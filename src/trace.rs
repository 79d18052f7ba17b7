//! The exchange trace: the first few request/response exchanges of a run, printed step by step
//! so a newcomer sees Response Topic and Correlation Data doing their work.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::events::{Exchange, Handled, Outcome};
use crate::output::{Escaped, VALUE_CHARS};

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

/// Topics, ids and reasons come from the fleet file and the broker: each is [`Escaped`], and
/// payloads go through [`show`].
fn render(steps: &Steps, outcome: &Outcome) -> String {
    let e = &steps.exchange;
    let who = &Escaped::value(&steps.requester).to_string();
    let width = steps
        .responders
        .iter()
        .map(|(id, _)| Escaped::value(id).to_string().len())
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
        Escaped::value(&e.topic),
        show(&e.payload)
    );
    out += &format!(
        "  {pad}    Response Topic    {}\n",
        Escaped::value(&e.response_topic)
    );
    out += &format!("  {pad}    Correlation Data  {}\n", show(&e.correlation));
    for (responder, handled) in &steps.responders {
        let answer = handled.answer.as_ref().map_or_else(
            || "no Response Topic, so no answer".to_owned(),
            |a| format!("answers {} on the Response Topic", show(a)),
        );
        out += &format!(
            "  {:<width$}  got {} on {}, {answer}, Correlation Data copied\n",
            Escaped::value(responder).to_string(),
            show(&handled.payload),
            Escaped::value(&handled.topic)
        );
    }
    let end = match outcome {
        Outcome::Matched { latency, payload } => format!(
            "got {} on {}: Correlation Data {} matches request {}, {:.2} ms after sending",
            show(payload),
            Escaped::value(&e.response_topic),
            show(&e.correlation),
            steps.number,
            latency.as_secs_f64() * 1000.0
        ),
        Outcome::TimedOut { after } => format!("no answer within {after:?}: timed out"),
        Outcome::Late { latency } => format!(
            "got the answer {:.2} ms after sending, past its timeout: late",
            latency.as_secs_f64() * 1000.0
        ),
        Outcome::Failed { reason } => {
            format!("the request failed: {}", Escaped::value(reason))
        }
    };
    out += &format!("  {who:<width$}  {end}");
    out
}

/// Payloads and correlation data as a person reads them: quoted text when printable, hex if not
/// (a control or bidi character makes it binary), cut after [`VALUE_CHARS`] characters or
/// half as many bytes.
pub fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(crate::output::is_unsafe) => {
            let shown: String = text.chars().take(VALUE_CHARS).collect();
            let cut = text.chars().count() - shown.chars().count();
            format!("{shown:?}{}", more(cut, "characters"))
        }
        _ => {
            let shown = &bytes[..bytes.len().min(VALUE_CHARS / 2)];
            let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}{}", more(bytes.len() - shown.len(), "bytes"))
        }
    }
}

/// "... (N more characters)" after a cut, or nothing.
fn more(cut: usize, unit: &str) -> String {
    if cut == 0 {
        String::new()
    } else {
        format!("... ({cut} more {unit})")
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
        assert_eq!(show("\u{202e}ab".as_bytes()), "0xe280ae6162");
        let long = show(&[b'x'; 200]);
        assert!(long.ends_with("x\"... (80 more characters)"), "{long}");
        let binary = show(&[0u8; 100]);
        assert_eq!(binary, format!("0x{}... (40 more bytes)", "00".repeat(60)));
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
    fn render_escapes_topics_ids_and_reasons() {
        let mut e = (*exchange("phone:1")).clone();
        e.topic = "cmnd/\u{1b}[2J".into();
        e.response_topic = "resp/\u{202e}x".into();
        let steps = Steps {
            number: 1,
            requester: "phone\u{7}".into(),
            exchange: Arc::new(e),
            responders: Vec::new(),
        };
        let reason = "refused: \u{1b}]0;title\u{7}".to_string();
        let text = render(&steps, &Outcome::Failed { reason });
        assert!(
            !text.contains(|c: char| c != '\n' && crate::output::is_unsafe(c)),
            "{text:?}"
        );
        assert!(text.contains("PUBLISH cmnd/\\u{1b}[2J"), "{text}");
        assert!(text.contains("Response Topic    resp/\\u{202e}x"), "{text}");
        assert!(text.contains("refused: \\u{1b}]0;title\\u{7}"), "{text}");
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
