//! The narration: the first few request/response exchanges of a run, told step by step as they
//! happen, so a newcomer sees Response Topic and Correlation Data doing their work. In a small
//! fleet the devices' connection set-up is told too (CONNECT with Request Response Information
//! and the Will, CONNACK with Response Information, SUBSCRIBE before the first PUBLISH), and
//! every step can also be drawn as a Mermaid sequence diagram (`--sequence`).
//!
//! Every line names the exchange (the request's Correlation Data, so `phone:2` is the phone's
//! second request), the client, and the direction: `->` a packet the client sent to the
//! broker, `<-` one the broker delivered to it.

mod diagram;

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;

pub use diagram::Diagram;

use crate::events::{Exchange, Handled, Outcome};
use crate::output::{Escaped, VALUE_CHARS};

/// Fleets up to this many devices have their connection set-up told: beyond it the set-up of
/// every device would bury the exchanges.
pub const SETUP_DEVICES: usize = 32;

/// Requests from outside the fleet told in a run (`fleetsim broker` tells them all).
pub const OUTSIDE_TOLD: usize = 20;

/// How much to tell, decided once per run.
#[derive(Debug, Clone, Default)]
pub struct NarrationOptions {
    /// Requests whose exchange is told (0: no narration at all).
    pub exchanges: usize,
    /// Tell the devices' connection set-up as well.
    pub setup: bool,
    /// Width of the client column: the longest device id, capped.
    pub width: usize,
    /// Also record the steps as a sequence diagram.
    pub diagram: bool,
    /// Requests from clients outside the fleet to tell (see [`crate::shared::Outside`]).
    pub outside: usize,
}

impl NarrationOptions {
    /// The narration for a fleet with these device ids.
    pub fn for_fleet<'a>(
        exchanges: usize,
        ids: impl ExactSizeIterator<Item = &'a str>,
        diagram: bool,
    ) -> Self {
        let devices = ids.len();
        let width = ids.map(|id| id.chars().count()).max().unwrap_or(0);
        Self {
            exchanges,
            setup: exchanges > 0 && devices <= SETUP_DEVICES,
            width: width.clamp(6, 24),
            diagram: exchanges > 0 && diagram,
            outside: OUTSIDE_TOLD,
        }
    }
}

/// What a device put in its CONNECT that the lessons are about.
#[derive(Debug, Clone, Default)]
pub struct ConnectFacts {
    pub clean_start: bool,
    pub keepalive_s: u16,
    pub request_response_information: bool,
    pub username: Option<String>,
    pub will: Option<WillFacts>,
}

#[derive(Debug, Clone)]
pub struct WillFacts {
    pub topic: String,
    pub response_topic: String,
    pub correlation: Bytes,
    pub delay_s: u64,
}

/// What the broker said in CONNACK.
#[derive(Debug, Clone, Default)]
pub struct ConnackFacts {
    pub session_present: bool,
    pub response_information: Option<String>,
    pub receive_maximum: u16,
    /// Set when the connection was refused: the reason.
    pub refused: Option<String>,
}

/// One filter of a SUBSCRIBE, with what it is for.
#[derive(Debug, Clone)]
pub struct Filter {
    pub filter: String,
    pub purpose: &'static str,
}

#[derive(Debug)]
struct Open {
    requester: String,
    seq: u64,
    without_correlation: bool,
}

/// Tells the steps of the first `exchanges` requests as they happen.
#[derive(Debug)]
pub struct Narrator {
    options: NarrationOptions,
    started: usize,
    open: HashMap<Bytes, Open>,
    heading_told: bool,
    /// Answers to nobody's request told so far, bounded like the exchanges.
    strays: usize,
    /// Requests from outside the fleet told so far.
    outside_told: usize,
    diagram: Option<Diagram>,
    /// Lines kept instead of printed (tests).
    captured: Option<Vec<String>>,
}

impl Narrator {
    pub fn new(options: NarrationOptions) -> Self {
        Self {
            diagram: options.diagram.then(Diagram::default),
            options,
            started: 0,
            open: HashMap::new(),
            heading_told: false,
            strays: 0,
            outside_told: 0,
            captured: None,
        }
    }

    /// A narrator that keeps its lines for [`Narrator::lines`] instead of printing them.
    #[cfg(test)]
    pub fn capturing(options: NarrationOptions) -> Self {
        Self {
            captured: Some(Vec::new()),
            ..Self::new(options)
        }
    }

    #[cfg(test)]
    pub fn lines(&self) -> &[String] {
        self.captured.as_deref().unwrap_or_default()
    }

    /// Every exchange it will tell has been told.
    pub fn finished(&self) -> bool {
        self.started >= self.options.exchanges && self.open.is_empty()
    }

    pub fn tells_setup(&self) -> bool {
        self.options.setup
    }

    /// The sequence diagram of what was told, if one was asked for.
    pub fn take_diagram(&mut self) -> Option<String> {
        self.diagram.take().map(|d| d.render())
    }

    fn say(&mut self, text: String) {
        if !self.heading_told {
            self.heading_told = true;
            let heading = format!(
                "narration: the first {} request{}, step by step (-> a packet sent to the broker, <- one the broker delivered)",
                self.options.exchanges,
                if self.options.exchanges == 1 { "" } else { "s" }
            );
            self.emit(heading);
        }
        self.emit(text);
    }

    fn emit(&mut self, text: String) {
        match &mut self.captured {
            Some(lines) => lines.extend(text.lines().map(str::to_owned)),
            None => crate::output::human(text),
        }
    }

    /// The label column holds a client id and `:N` (the Correlation Data of its requests).
    fn label_width(&self) -> usize {
        (self.options.width + 3).max(10)
    }

    /// One line: exchange label, client, arrow, packet, what it carries.
    fn line(&self, label: &str, client: &str, arrow: &str, packet: &str, rest: &str) -> String {
        let (width, labels) = (self.options.width, self.label_width());
        let client = Escaped::value(client).to_string();
        format!("{label:<labels$} {client:<width$} {arrow} {packet:<9} {rest}")
    }

    /// Further lines of the step above, aligned under its text.
    fn more(&self, rest: &str) -> String {
        let indent = self.label_width() + 1 + self.options.width + 1 + 2 + 1 + 9 + 1;
        format!("{:indent$}{rest}", "")
    }

    // ----- connection set-up --------------------------------------------------------------

    pub fn connect(&mut self, client: &str, facts: &ConnectFacts) {
        let mut rest = format!(
            "{}, keepalive {} s",
            if facts.clean_start {
                "clean start"
            } else {
                "resume the session"
            },
            facts.keepalive_s
        );
        if let Some(user) = &facts.username {
            let _ = write!(rest, ", user {}", Escaped::value(user));
        }
        let mut lines = vec![self.line("connect", client, "->", "CONNECT", &rest)];
        if facts.request_response_information {
            lines.push(self.more(
                "Request Response Information = 1: asks the broker for a Response Topic it will allow",
            ));
        }
        if let Some(will) = &facts.will {
            lines.push(self.more(&format!(
                "Will on {}{}, with Response Topic {} and Correlation Data {}: whoever consumes it can say so",
                Escaped::value(&will.topic),
                if will.delay_s > 0 {
                    format!(" after {} s", will.delay_s)
                } else {
                    String::new()
                },
                Escaped::value(&will.response_topic),
                show(&will.correlation)
            )));
        }
        self.say(lines.join("\n"));
        if let Some(d) = &mut self.diagram {
            let mut text = format!(
                "CONNECT ({})",
                if facts.clean_start {
                    "clean start"
                } else {
                    "resume"
                }
            );
            if facts.request_response_information {
                text += "<br/>Request Response Information = 1";
            }
            if let Some(will) = &facts.will {
                let _ = write!(
                    text,
                    "<br/>Will {} · Response Topic {} · Correlation Data {}",
                    will.topic,
                    will.response_topic,
                    show(&will.correlation)
                );
            }
            d.to_broker(client, text);
        }
    }

    pub fn connack(&mut self, client: &str, facts: &ConnackFacts) {
        let rest = match &facts.refused {
            Some(reason) => format!("refused: {}", Escaped::value(reason)),
            None => {
                let mut rest = String::from("accepted");
                if facts.session_present {
                    rest += ", session resumed";
                }
                if let Some(info) = &facts.response_information {
                    let _ = write!(
                        rest,
                        ", Response Information {}: the prefix to build its Response Topic on",
                        show(info.as_bytes())
                    );
                }
                if facts.receive_maximum < u16::MAX {
                    let _ = write!(rest, ", Receive Maximum {}", facts.receive_maximum);
                }
                rest
            }
        };
        let line = self.line("connect", client, "<-", "CONNACK", &rest);
        self.say(line);
        if let Some(d) = &mut self.diagram {
            let text = match (&facts.refused, &facts.response_information) {
                (Some(reason), _) => format!("CONNACK refused: {reason}"),
                (None, Some(info)) => {
                    format!("CONNACK<br/>Response Information {}", show(info.as_bytes()))
                }
                (None, None) => "CONNACK".to_owned(),
            };
            d.from_broker_ack(client, text);
        }
    }

    pub fn subscribe(&mut self, client: &str, filters: &[Filter]) {
        let mut lines = Vec::new();
        for (i, f) in filters.iter().enumerate() {
            let rest = format!("{}  ({})", Escaped::value(&f.filter), f.purpose);
            lines.push(if i == 0 {
                self.line("connect", client, "->", "SUBSCRIBE", &rest)
            } else {
                self.more(&rest)
            });
        }
        self.say(lines.join("\n"));
        if let Some(d) = &mut self.diagram {
            let names: Vec<&str> = filters.iter().map(|f| f.filter.as_str()).collect();
            d.to_broker(client, format!("SUBSCRIBE {}", names.join(", ")));
        }
    }

    /// The SUBACK: one result per filter, in order (`granted QoS 1`, `refused: ...`).
    pub fn suback(&mut self, client: &str, results: &[(String, String)]) {
        let mut lines = Vec::new();
        for (i, (filter, result)) in results.iter().enumerate() {
            let rest = format!("{}: {result}", Escaped::value(filter));
            lines.push(if i == 0 {
                self.line("connect", client, "<-", "SUBACK", &rest)
            } else {
                self.more(&rest)
            });
        }
        self.say(lines.join("\n"));
        if let Some(d) = &mut self.diagram {
            let results: Vec<&str> = results.iter().map(|(_, r)| r.as_str()).collect();
            d.from_broker_ack(client, format!("SUBACK {}", results.join(", ")));
        }
    }

    /// A packet outside any request: a Will delivered, its ack, the ack learned. `sent`: the
    /// client sent it to the broker (else the broker delivered it to the client).
    pub fn packet(&mut self, label: &str, client: &str, sent: bool, rest: &str, drawn: &str) {
        let arrow = if sent { "->" } else { "<-" };
        let line = self.line(label, client, arrow, "PUBLISH", rest);
        self.say(line);
        if let Some(d) = &mut self.diagram {
            let text = format!("PUBLISH {drawn}");
            if sent {
                d.to_broker(client, text);
            } else {
                d.from_broker(client, text);
            }
        }
    }

    // ----- exchanges ----------------------------------------------------------------------

    /// A phone sent (or, its Response Topic refused, held back) request number `seq`.
    pub fn request(&mut self, requester: &str, seq: u64, exchange: &Exchange) {
        if self.started >= self.options.exchanges {
            return;
        }
        self.started += 1;
        self.open.insert(
            exchange.correlation.clone(),
            Open {
                requester: requester.to_owned(),
                seq,
                without_correlation: exchange.without_correlation,
            },
        );
        let label = label(&exchange.correlation);
        let packet = if exchange.published {
            "PUBLISH"
        } else {
            "(held)"
        };
        let first = format!(
            "{} {}",
            Escaped::value(&exchange.topic),
            show(&exchange.payload)
        );
        let lines = [
            self.line(&label, requester, "->", packet, &first),
            self.more(&format!(
                "Response Topic    {}   (where the answer must go)",
                Escaped::value(&exchange.response_topic)
            )),
            if exchange.without_correlation {
                self.more("Correlation Data  none, as before MQTT 5: nothing ties the answer to this request")
            } else {
                self.more(&format!(
                    "Correlation Data  {}   (the answer must carry it back)",
                    show(&exchange.correlation)
                ))
            },
        ];
        self.say(lines.join("\n"));
        if exchange.published
            && let Some(d) = &mut self.diagram
        {
            let correlation = if exchange.without_correlation {
                "none".to_owned()
            } else {
                show(&exchange.correlation)
            };
            d.to_broker(
                requester,
                format!(
                    "PUBLISH {} {}<br/>Response Topic {}<br/>Correlation Data {correlation}",
                    exchange.topic,
                    show(&exchange.payload),
                    exchange.response_topic,
                ),
            );
        }
    }

    /// A responder got a request and (maybe) answered it. Told when the request is one being
    /// narrated.
    pub fn handled(&mut self, responder: &str, handled: &Handled) {
        if let Some(sender) = &handled.from_outside {
            return self.outside(responder, sender, handled);
        }
        let Some(key) = handled.correlation.as_ref().or(handled.tag.as_ref()) else {
            return;
        };
        if !self.open.contains_key(key) {
            return;
        }
        let lines = self.handled_lines(&label(key), responder, handled);
        self.say(lines.join("\n"));
    }

    /// A request from a client outside the fleet, and the answer: told for the first
    /// `options.outside` of them, with no exchange to belong to.
    fn outside(&mut self, responder: &str, sender: &str, handled: &Handled) {
        if self.outside_told >= self.options.outside {
            return;
        }
        self.outside_told += 1;
        let mut lines = self.handled_lines("outside", responder, handled);
        lines.insert(
            1,
            self.more(&format!(
                "sent by {}, a client outside the fleet",
                Escaped::value(sender)
            )),
        );
        if self.outside_told == self.options.outside {
            lines.push(self.more(&format!(
                "(the first {} requests from outside are told; the report counts them all)",
                self.options.outside
            )));
        }
        self.emit(lines.join("\n"));
    }

    /// What a responder got and what it sent back, under `label`; drawn in the diagram too.
    fn handled_lines(&mut self, label: &str, responder: &str, handled: &Handled) -> Vec<String> {
        let label = label.to_owned();
        let correlation = &match &handled.correlation {
            Some(c) => show(c),
            None => "none".to_owned(),
        };
        let got = format!(
            "{} {}, Response Topic {}, Correlation Data {}",
            Escaped::value(&handled.topic),
            show(&handled.payload),
            handled
                .response_topic
                .as_deref()
                .map_or_else(|| "none".to_owned(), |t| Escaped::value(t).to_string()),
            correlation
        );
        let mut lines = vec![self.line(&label, responder, "<-", "PUBLISH", &got)];
        match (&handled.answer, &handled.response_topic) {
            (Some(answer), Some(topic)) => lines.push(self.line(
                &label,
                responder,
                "->",
                "PUBLISH",
                &format!(
                    "{} {}, Correlation Data {}{}",
                    Escaped::value(topic),
                    show(answer),
                    correlation,
                    if handled.correlation.is_some() {
                        " copied unchanged"
                    } else {
                        ""
                    }
                ),
            )),
            _ if handled.withheld => {
                lines.push(self.more("withholds its answer (a no_answer fault)"))
            }
            _ => lines.push(self.more("no Response Topic, so no answer")),
        }
        if let Some(d) = &mut self.diagram {
            d.from_broker(
                responder,
                format!(
                    "PUBLISH {} {}<br/>Response Topic {}<br/>Correlation Data {}",
                    handled.topic,
                    show(&handled.payload),
                    handled.response_topic.as_deref().unwrap_or("none"),
                    correlation
                ),
            );
            if let (Some(answer), Some(topic)) = (&handled.answer, &handled.response_topic) {
                d.to_broker(
                    responder,
                    format!(
                        "PUBLISH {topic} {}<br/>Correlation Data {} (copied)",
                        show(answer),
                        correlation
                    ),
                );
            }
        }
        lines
    }

    /// How a narrated request ended, at its phone.
    pub fn done(&mut self, correlation: &Bytes, outcome: &Outcome, answer_topic: &str) {
        let Some(open) = self.open.remove(correlation) else {
            return;
        };
        let label = label(correlation);
        let (arrow, packet, rest) = match outcome {
            Outcome::Matched { latency, payload } if open.without_correlation => (
                "<-",
                "PUBLISH",
                format!(
                    "{} {}, no Correlation Data: taken as the answer to its oldest open request, {label}, in {:.2} ms",
                    Escaped::value(answer_topic),
                    show(payload),
                    latency.as_secs_f64() * 1000.0
                ),
            ),
            Outcome::Matched { latency, payload } => (
                "<-",
                "PUBLISH",
                format!(
                    "{} {}, Correlation Data {}: its request {}, matched in {:.2} ms",
                    Escaped::value(answer_topic),
                    show(payload),
                    show(correlation),
                    open.seq,
                    latency.as_secs_f64() * 1000.0
                ),
            ),
            Outcome::Late { latency } => (
                "<-",
                "PUBLISH",
                format!(
                    "{} Correlation Data {}: its request {}, answered {:.2} ms after sending, past its timeout: late",
                    Escaped::value(answer_topic),
                    show(correlation),
                    open.seq,
                    latency.as_secs_f64() * 1000.0
                ),
            ),
            Outcome::TimedOut { after } => (
                "  ",
                "",
                format!(
                    "no answer to request {} within {:.1} s: timed out",
                    open.seq,
                    after.as_secs_f64()
                ),
            ),
            Outcome::Failed { reason } => (
                "  ",
                "",
                format!("request {} failed: {}", open.seq, Escaped::value(reason)),
            ),
        };
        let line = self.line(&label, &open.requester, arrow, packet, &rest);
        self.say(line);
        if let Some(d) = &mut self.diagram {
            match outcome {
                Outcome::Matched { latency, payload } => {
                    let data = if open.without_correlation {
                        "none".to_owned()
                    } else {
                        show(correlation)
                    };
                    d.from_broker(
                        &open.requester,
                        format!(
                            "PUBLISH {answer_topic} {}<br/>Correlation Data {data}",
                            show(payload),
                        ),
                    );
                    d.note(
                        &open.requester,
                        format!(
                            "{} is request {}: matched, {:.1} ms",
                            show(correlation),
                            open.seq,
                            latency.as_secs_f64() * 1000.0
                        ),
                    );
                }
                _ => d.note(&open.requester, rest.clone()),
            }
        }
    }

    /// An answer that ends none of the phone's requests: `why` says what it was (someone
    /// else's answer on a shared Response Topic, a second answer, ...). Told for as many
    /// answers as exchanges are.
    pub fn stray(
        &mut self,
        phone: &str,
        topic: &str,
        payload: &[u8],
        correlation: Option<&[u8]>,
        why: &str,
    ) {
        if self.strays >= self.options.exchanges {
            return;
        }
        self.strays += 1;
        let rest = format!(
            "{} {}, Correlation Data {}: {why}",
            Escaped::value(topic),
            show(payload),
            correlation.map_or_else(|| "none".to_owned(), show)
        );
        let line = self.line("-", phone, "<-", "PUBLISH", &rest);
        self.say(line);
        if let Some(d) = &mut self.diagram {
            d.from_broker(
                phone,
                format!(
                    "PUBLISH {topic} {}<br/>Correlation Data {}",
                    show(payload),
                    correlation.map_or_else(|| "none".to_owned(), show)
                ),
            );
            d.note(phone, why.to_owned());
        }
    }
}

/// The exchange's name in the narration: its Correlation Data as text (`phone:2`), or hex.
fn label(correlation: &[u8]) -> String {
    match std::str::from_utf8(correlation) {
        Ok(text) if !text.chars().any(crate::output::is_unsafe) && text.len() <= 24 => {
            text.to_owned()
        }
        _ => show(correlation),
    }
}

/// Payloads and correlation data as a person reads them: JSON as it is, other text quoted, hex
/// when not printable
/// (a control or bidi character makes it binary), cut after [`VALUE_CHARS`] characters or
/// half as many bytes.
pub fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        // JSON reads best as it is: quoting it would escape every quote inside.
        Ok(text)
            if text.len() <= VALUE_CHARS
                && text.starts_with(['{', '['])
                && !text.chars().any(crate::output::is_unsafe)
                && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() =>
        {
            text.to_owned()
        }
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
mod tests;
