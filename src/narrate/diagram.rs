//! The narrated steps as a Mermaid `sequenceDiagram`: one participant per client and the
//! broker between the requesters and the rest, one arrow per packet (solid for PUBLISH,
//! SUBSCRIBE and CONNECT, dashed for the broker's acks), notes for what a phone concluded.

use std::fmt::Write as _;

/// Arrows kept at most: a diagram past this is no longer read, only scrolled.
const MAX_STEPS: usize = 400;

#[derive(Debug, Default)]
pub struct Diagram {
    /// Client ids in order of first appearance, with whether each sent a request.
    participants: Vec<(String, bool)>,
    steps: Vec<Step>,
    cut: usize,
}

#[derive(Debug)]
enum Step {
    ToBroker(usize, String),
    FromBroker(usize, String),
    Ack(usize, String),
    Note(usize, String),
}

impl Diagram {
    fn participant(&mut self, client: &str) -> usize {
        match self.participants.iter().position(|(id, _)| id == client) {
            Some(i) => i,
            None => {
                self.participants.push((client.to_owned(), false));
                self.participants.len() - 1
            }
        }
    }

    fn push(&mut self, step: impl FnOnce(&mut Self) -> Step) {
        if self.steps.len() >= MAX_STEPS {
            self.cut += 1;
            return;
        }
        let step = step(self);
        self.steps.push(step);
    }

    /// A packet `client` sent to the broker.
    pub fn to_broker(&mut self, client: &str, text: String) {
        self.push(|d| {
            let i = d.participant(client);
            if text.starts_with("PUBLISH") && text.contains("Response Topic") {
                d.participants[i].1 = true;
            }
            Step::ToBroker(i, text)
        });
    }

    /// A PUBLISH the broker delivered to `client`.
    pub fn from_broker(&mut self, client: &str, text: String) {
        self.push(|d| Step::FromBroker(d.participant(client), text));
    }

    /// An ack (CONNACK, SUBACK) the broker sent `client`.
    pub fn from_broker_ack(&mut self, client: &str, text: String) {
        self.push(|d| Step::Ack(d.participant(client), text));
    }

    pub fn note(&mut self, client: &str, text: String) {
        self.push(|d| Step::Note(d.participant(client), text));
    }

    /// The diagram in Mermaid's syntax. Participants get short aliases (`c1`, `c2`, ...) so any
    /// client id works; the requesters stand left of the broker, the others right of it.
    pub fn render(&self) -> String {
        let mut out = String::from("sequenceDiagram\n");
        let alias = |i: usize| format!("c{}", i + 1);
        // By name on each side, so the same fleet draws the same columns whatever order its
        // devices happened to connect in.
        let mut sorted: Vec<(usize, &(String, bool))> =
            self.participants.iter().enumerate().collect();
        sorted.sort_by(|a, b| a.1.0.cmp(&b.1.0));
        let requesters = sorted.iter().copied().filter(|(_, p)| p.1);
        let others = sorted.iter().copied().filter(|(_, p)| !p.1);
        for (i, (id, _)) in requesters {
            let _ = writeln!(out, "    participant {} as {}", alias(i), escape(id));
        }
        out += "    participant broker as broker\n";
        for (i, (id, _)) in others {
            let _ = writeln!(out, "    participant {} as {}", alias(i), escape(id));
        }
        for step in &self.steps {
            let _ = match step {
                Step::ToBroker(i, text) => {
                    writeln!(out, "    {}->>broker: {}", alias(*i), escape(text))
                }
                Step::FromBroker(i, text) => {
                    writeln!(out, "    broker->>{}: {}", alias(*i), escape(text))
                }
                Step::Ack(i, text) => {
                    writeln!(out, "    broker-->>{}: {}", alias(*i), escape(text))
                }
                Step::Note(i, text) => {
                    writeln!(out, "    Note over {}: {}", alias(*i), escape(text))
                }
            };
        }
        if self.cut > 0 {
            let _ = writeln!(
                out,
                "    Note over broker: {} more steps not drawn",
                self.cut
            );
        }
        out
    }
}

/// Text Mermaid shows as written: its own syntax characters as entity codes (`#35;` is `#`,
/// `#59;` is `;`), control characters dropped; the `<br/>` line breaks this module puts in are
/// kept.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split("<br/>").enumerate() {
        if i > 0 {
            out += "<br/>";
        }
        for c in part.chars() {
            match c {
                '#' => out += "#35;",
                ';' => out += "#59;",
                '"' => out += "#quot;",
                '<' => out += "#lt;",
                '>' => out += "#gt;",
                '{' => out += "#123;",
                '}' => out += "#125;",
                c if crate::output::is_unsafe(c) || c.is_control() => {}
                c => out.push(c),
            }
        }
    }
    out
}
