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
mod words;

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;

pub use diagram::Diagram;
pub use words::{Granted, Purpose, Stray};

use crate::events::{Exchange, Failure, Handled, Outcome};
use crate::lang::{self, Lang};
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
    /// The language of the lines (the diagram stays English).
    pub lang: Lang,
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
            lang: Lang::En,
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
    pub purpose: Purpose,
}

#[derive(Debug)]
struct Open {
    requester: String,
    seq: u64,
    without_correlation: bool,
    /// The answer taken for it was in truth another request's (phones without Correlation
    /// Data): said on the line that ends it, so one delivery is told once.
    mixed_up: Option<Stray>,
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

    /// Requests from outside the fleet are left to tell.
    pub fn tells_outside(&self) -> bool {
        self.outside_told < self.options.outside
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
            let heading = words::heading(self.options.lang, self.options.exchanges);
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
        let packet = lang::pad(packet, 9);
        format!("{label:<labels$} {client:<width$} {arrow} {packet} {rest}")
    }

    /// Further lines of the step above, aligned under its text.
    fn more(&self, rest: &str) -> String {
        let indent = self.label_width() + 1 + self.options.width + 1 + 2 + 1 + 9 + 1;
        format!("{:indent$}{rest}", "")
    }

    // ----- connection set-up --------------------------------------------------------------

    pub fn connect(&mut self, client: &str, facts: &ConnectFacts) {
        let lang = self.options.lang;
        let user = facts
            .username
            .as_deref()
            .map(|u| Escaped::value(u).to_string());
        let rest = words::connect(lang, facts.clean_start, facts.keepalive_s, user.as_deref());
        let mut lines = vec![self.line("connect", client, "->", "CONNECT", &rest)];
        if facts.request_response_information {
            lines.push(self.more(words::request_response_information(lang)));
        }
        if let Some(will) = &facts.will {
            lines.push(self.more(&words::will(
                lang,
                &Escaped::value(&will.topic).to_string(),
                will.delay_s,
                &Escaped::value(&will.response_topic).to_string(),
                &show(&will.correlation),
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
        let lang = self.options.lang;
        let rest = match &facts.refused {
            Some(reason) => words::connack_refused(lang, &Escaped::value(reason).to_string()),
            None => words::connack(
                lang,
                facts.session_present,
                facts
                    .response_information
                    .as_deref()
                    .map(|info| show(info.as_bytes()))
                    .as_deref(),
                (facts.receive_maximum < u16::MAX).then_some(facts.receive_maximum),
            ),
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
            let purpose = words::purpose(self.options.lang, f.purpose);
            let rest = format!("{}  ({purpose})", Escaped::value(&f.filter));
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

    /// The SUBACK: one result per filter, in order.
    pub fn suback(&mut self, client: &str, results: &[(String, Granted)]) {
        let mut lines = Vec::new();
        for (i, (filter, result)) in results.iter().enumerate() {
            let result = words::granted(self.options.lang, result);
            let rest = format!("{}: {result}", Escaped::value(filter));
            lines.push(if i == 0 {
                self.line("connect", client, "<-", "SUBACK", &rest)
            } else {
                self.more(&rest)
            });
        }
        self.say(lines.join("\n"));
        if let Some(d) = &mut self.diagram {
            let results: Vec<String> = results
                .iter()
                .map(|(_, r)| words::granted(Lang::En, r))
                .collect();
            d.from_broker_ack(client, format!("SUBACK {}", results.join(", ")));
        }
    }

    /// A device, back, reads on its Will's Response Topic the ack of the Will of its
    /// connection `incarnation`, sent by `by`.
    pub fn will_learned(
        &mut self,
        client: &str,
        topic: &str,
        correlation: &[u8],
        incarnation: u32,
        by: &str,
    ) {
        let data = show(correlation);
        let rest = words::will_learned(
            self.options.lang,
            &Escaped::value(topic).to_string(),
            &data,
            incarnation,
            &Escaped::value(by).to_string(),
        );
        let drawn = format!("{topic}<br/>Correlation Data {data}");
        self.packet("will", client, false, &rest, &drawn);
    }

    /// A consumer receives a Will (on `will_topic`) and acks it on the Will's Response Topic.
    pub fn will_consumed(
        &mut self,
        client: &str,
        will: (&str, &[u8]),
        ack: (&str, &[u8]),
        correlation: &[u8],
    ) {
        let lang = self.options.lang;
        let data = show(correlation);
        let (will_topic, ack_topic) = (
            Escaped::value(will.0).to_string(),
            Escaped::value(ack.0).to_string(),
        );
        let got = words::will_received(lang, &will_topic, &show(will.1), &ack_topic, &data);
        let acked = words::will_acked(lang, &ack_topic, &show(ack.1), &data);
        let drawn_got = format!(
            "{} (a Will)<br/>Response Topic {}<br/>Correlation Data {data}",
            will.0, ack.0
        );
        let drawn_ack = format!("{} (the ack)<br/>Correlation Data {data}", ack.0);
        self.packet("will", client, false, &got, &drawn_got);
        self.packet("will", client, true, &acked, &drawn_ack);
    }

    /// A packet outside any request. `sent`: the client sent it to the broker (else the
    /// broker delivered it to the client).
    fn packet(&mut self, label: &str, client: &str, sent: bool, rest: &str, drawn: &str) {
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
                mixed_up: None,
            },
        );
        let lang = self.options.lang;
        let label = label(&exchange.correlation);
        let packet = if exchange.published {
            "PUBLISH"
        } else {
            words::held(lang)
        };
        let first = format!(
            "{} {}",
            Escaped::value(&exchange.topic),
            show(&exchange.payload)
        );
        let response_topic = Escaped::value(&exchange.response_topic).to_string();
        let lines = [
            self.line(&label, requester, "->", packet, &first),
            self.more(&words::request_response_topic(lang, &response_topic)),
            if exchange.without_correlation {
                self.more(words::request_without_correlation(lang))
            } else {
                self.more(&words::request_correlation(
                    lang,
                    &show(&exchange.correlation),
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
        let lang = self.options.lang;
        let mut lines = self.handled_lines("outside", responder, handled);
        let sender = Escaped::value(sender).to_string();
        lines.insert(1, self.more(&words::sent_from_outside(lang, &sender)));
        if self.outside_told == self.options.outside {
            lines.push(self.more(&words::outside_bounded(lang, self.options.outside)));
        }
        self.emit(lines.join("\n"));
    }

    /// What a responder got and what it sent back, under `label`; drawn in the diagram too.
    fn handled_lines(&mut self, label: &str, responder: &str, handled: &Handled) -> Vec<String> {
        let lang = self.options.lang;
        let label = label.to_owned();
        // The diagram's words stay English; the line's follow the language.
        let correlation = &match &handled.correlation {
            Some(c) => show(c),
            None => "none".to_owned(),
        };
        let told = match &handled.correlation {
            Some(_) => correlation.as_str(),
            None => words::none(lang),
        };
        let got = words::received(
            lang,
            &Escaped::value(&handled.topic).to_string(),
            &show(&handled.payload),
            &handled.response_topic.as_deref().map_or_else(
                || words::none(lang).to_owned(),
                |t| Escaped::value(t).to_string(),
            ),
            told,
        );
        let mut lines = vec![self.line(&label, responder, "<-", "PUBLISH", &got)];
        match (&handled.answer, &handled.response_topic) {
            (Some(answer), Some(topic)) => lines.push(self.line(
                &label,
                responder,
                "->",
                "PUBLISH",
                &words::answered(
                    lang,
                    &Escaped::value(topic).to_string(),
                    &show(answer),
                    told,
                    handled.correlation.is_some(),
                ),
            )),
            _ if handled.withheld => lines.push(self.more(words::withheld(lang))),
            _ => lines.push(self.more(words::no_response_topic(lang))),
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
        let rest = |lang| {
            let topic = Escaped::value(answer_topic).to_string();
            match outcome {
                Outcome::Matched { latency, payload } if open.without_correlation => {
                    let ms = latency.as_secs_f64() * 1000.0;
                    words::taken_as_oldest(lang, &topic, &show(payload), &label, ms)
                }
                Outcome::Matched { latency, payload } => {
                    let ms = latency.as_secs_f64() * 1000.0;
                    let data = show(correlation);
                    words::matched(lang, &topic, &show(payload), &data, open.seq, ms)
                }
                Outcome::Late { latency } => {
                    let ms = latency.as_secs_f64() * 1000.0;
                    words::late(lang, &topic, &show(correlation), open.seq, ms)
                }
                Outcome::TimedOut { after } => {
                    words::timed_out(lang, open.seq, after.as_secs_f64())
                }
                Outcome::Failed { reason } => words::failed(lang, open.seq, &escaped(reason)),
            }
        };
        let (arrow, packet) = match outcome {
            Outcome::Matched { .. } | Outcome::Late { .. } => ("<-", "PUBLISH"),
            Outcome::TimedOut { .. } | Outcome::Failed { .. } => ("  ", ""),
        };
        let mut line = self.line(
            &label,
            &open.requester,
            arrow,
            packet,
            &rest(self.options.lang),
        );
        if let Some(Stray::MixedUp { truth, .. }) = &open.mixed_up {
            let note = words::mixed_up_note(self.options.lang, truth);
            line = format!("{line}\n{}", self.more(&note));
        }
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
                _ => d.note(&open.requester, rest(Lang::En)),
            }
            if let Some(Stray::MixedUp { truth, .. }) = &open.mixed_up {
                d.note(&open.requester, words::mixed_up_note(Lang::En, truth));
            }
        }
    }

    /// A phone without Correlation Data took an answer for its oldest open request `taken`,
    /// but it was another's: said with that request's end when the request is told, else on
    /// a line of its own.
    pub fn mixed_up(
        &mut self,
        phone: &str,
        topic: &str,
        payload: &[u8],
        taken: &[u8],
        why: &Stray,
    ) {
        match self.open.get_mut(taken) {
            Some(open) => open.mixed_up = Some(why.clone()),
            None => self.stray(phone, topic, payload, None, why),
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
        why: &Stray,
    ) {
        if self.strays >= self.options.exchanges {
            return;
        }
        self.strays += 1;
        let lang = self.options.lang;
        let rest = words::stray(
            lang,
            &Escaped::value(topic).to_string(),
            &show(payload),
            &correlation.map_or_else(|| words::none(lang).to_owned(), show),
            why,
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
            d.note(phone, words::stray_why(Lang::En, why));
        }
    }
}

/// A failure with what it quotes (topics, the broker's reason) escaped for the terminal.
fn escaped(failure: &Failure) -> Failure {
    let e = |text: &str| Escaped::value(text).to_string();
    match failure {
        Failure::ResponseTopicRefused { topic, reason } => Failure::ResponseTopicRefused {
            topic: e(topic),
            reason: e(reason),
        },
        Failure::PublishRefused(reason) => Failure::PublishRefused(e(reason)),
        Failure::NotSent(reason) => Failure::NotSent(e(reason)),
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
