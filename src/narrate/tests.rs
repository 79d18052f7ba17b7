use std::time::Duration;

use super::*;

fn options(exchanges: usize) -> NarrationOptions {
    NarrationOptions {
        exchanges,
        setup: true,
        width: 16,
        diagram: true,
        lang: Lang::En,
    }
}

fn exchange(correlation: &'static str) -> Exchange {
    Exchange {
        published: true,
        topic: "cmnd/light-in-bedroom/power".into(),
        response_topic: "state/light-in-bedroom/power".into(),
        correlation: Bytes::from_static(correlation.as_bytes()),
        payload: Bytes::from_static(b"ON"),
        without_correlation: false,
    }
}

fn handled(e: &Exchange) -> Handled {
    Handled {
        topic: e.topic.to_string(),
        payload: e.payload.clone(),
        response_topic: Some(e.response_topic.to_string()),
        correlation: Some(e.correlation.clone()),
        tag: None,
        answer: Some(Bytes::from_static(b"{\"power\":\"ON\"}")),
        rejected: false,
        withheld: false,
    }
}

fn matched(ms: u64) -> Outcome {
    Outcome::Matched {
        latency: Duration::from_millis(ms),
        payload: Bytes::from_static(b"{\"power\":\"ON\"}"),
    }
}

fn text(n: &Narrator) -> String {
    n.lines().join("\n")
}

#[test]
fn show_quotes_text_and_hexes_binary() {
    assert_eq!(show(b"phone:1"), "\"phone:1\"");
    assert_eq!(show(br#"{"power":"ON"}"#), r#"{"power":"ON"}"#);
    assert_eq!(show(b"{not json"), "\"{not json\"");
    assert_eq!(show(&[0x00, 0xff]), "0x00ff");
    assert_eq!(show(b"a\nb"), "0x610a62");
    assert_eq!(show("\u{202e}ab".as_bytes()), "0xe280ae6162");
    let long = show(&[b'x'; 200]);
    assert!(long.ends_with("x\"... (80 more characters)"), "{long}");
    let binary = show(&[0u8; 100]);
    assert_eq!(binary, format!("0x{}... (40 more bytes)", "00".repeat(60)));
}

#[test]
fn an_exchange_is_told_step_by_step_under_its_correlation_data() {
    let mut n = Narrator::capturing(options(1));
    let e = exchange("phone:1");
    n.request("phone", 1, &e);
    n.handled("light-in-bedroom", &handled(&e));
    n.done(&e.correlation, &matched(6), &e.response_topic);
    let text = text(&n);
    let lines = n.lines();
    assert!(
        lines[0].starts_with("narration: the first 1 request, step by step"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(
            "phone:1             phone            -> PUBLISH   cmnd/light-in-bedroom/power \"ON\""
        ),
        "{text}"
    );
    assert!(
        text.contains("Response Topic    state/light-in-bedroom/power"),
        "{text}"
    );
    assert!(text.contains("Correlation Data  \"phone:1\""), "{text}");
    assert!(text.contains("phone:1             light-in-bedroom <- PUBLISH   cmnd/light-in-bedroom/power \"ON\", Response Topic state/light-in-bedroom/power, Correlation Data \"phone:1\""), "{text}");
    assert!(text.contains("light-in-bedroom -> PUBLISH   state/light-in-bedroom/power {\"power\":\"ON\"}, Correlation Data \"phone:1\" copied unchanged"), "{text}");
    assert!(text.contains("phone            <- PUBLISH   state/light-in-bedroom/power {\"power\":\"ON\"}, Correlation Data \"phone:1\": its request 1, matched in 6.00 ms"), "{text}");
    assert!(n.finished());
}

#[test]
fn answers_out_of_order_are_told_as_they_come() {
    let mut n = Narrator::capturing(options(2));
    let (one, two) = (exchange("phone:1"), exchange("phone:2"));
    n.request("phone", 1, &one);
    n.request("phone", 2, &two);
    n.done(&two.correlation, &matched(1), "resp/phone");
    n.done(&one.correlation, &matched(9), "resp/phone");
    let ends: Vec<&String> = n
        .lines()
        .iter()
        .filter(|l| l.contains("matched in"))
        .collect();
    assert_eq!(ends.len(), 2);
    assert!(
        ends[0].starts_with("phone:2") && ends[0].contains("its request 2"),
        "{ends:?}"
    );
    assert!(
        ends[1].starts_with("phone:1") && ends[1].contains("its request 1"),
        "{ends:?}"
    );
}

#[test]
fn only_the_first_requests_are_told_and_others_steps_are_not() {
    let mut n = Narrator::capturing(options(1));
    let (one, two) = (exchange("phone:1"), exchange("phone:2"));
    n.request("phone", 1, &one);
    n.request("phone", 2, &two);
    n.handled("light", &handled(&two));
    n.done(&two.correlation, &matched(1), "resp/phone");
    assert!(!text(&n).contains("phone:2"), "{}", text(&n));
    assert!(!n.finished());
    n.done(&one.correlation, &matched(1), "resp/phone");
    assert!(n.finished());
}

#[test]
fn setup_tells_request_response_information_the_will_and_the_subscription_before_any_request() {
    let mut n = Narrator::capturing(options(1));
    n.connect(
        "phone",
        &ConnectFacts {
            clean_start: true,
            keepalive_s: 30,
            request_response_information: true,
            username: None,
            will: Some(WillFacts {
                topic: "status/phone".into(),
                response_topic: "will-ack/phone".into(),
                correlation: Bytes::from_static(b"phone#1"),
                delay_s: 2,
            }),
        },
    );
    n.connack(
        "phone",
        &ConnackFacts {
            response_information: Some("resp/".into()),
            receive_maximum: 20,
            ..ConnackFacts::default()
        },
    );
    n.subscribe(
        "phone",
        &[Filter {
            filter: "resp/phone".into(),
            purpose: Purpose::Answers,
        }],
    );
    n.suback("phone", &[("resp/phone".into(), Granted::Qos(1))]);
    let text = text(&n);
    assert!(
        text.contains(
            "connect             phone            -> CONNECT   clean start, keepalive 30 s"
        ),
        "{text}"
    );
    assert!(text.contains("Request Response Information = 1"), "{text}");
    assert!(text.contains("Will on status/phone after 2 s, with Response Topic will-ack/phone and Correlation Data \"phone#1\""), "{text}");
    assert!(text.contains("<- CONNACK   accepted, Response Information \"resp/\": the prefix to build its Response Topic on, Receive Maximum 20"), "{text}");
    assert!(
        text.contains(
            "-> SUBSCRIBE resp/phone  (its Response Topic, subscribed before any request)"
        ),
        "{text}"
    );
    assert!(
        text.contains("<- SUBACK    resp/phone: granted QoS 1"),
        "{text}"
    );
}

#[test]
fn strays_are_told_with_why_and_bounded() {
    let mut n = Narrator::capturing(options(1));
    n.stray(
        "phone",
        "state/x",
        b"{}",
        Some(b"mqttx-1"),
        &Stray::Unmatched,
    );
    n.stray("phone", "state/x", b"{}", None, &Stray::Duplicate);
    let text = text(&n);
    assert!(text.contains("-                   phone            <- PUBLISH   state/x {}, Correlation Data \"mqttx-1\": matches none of its requests: unmatched"), "{text}");
    assert!(!text.contains("duplicate"), "{text}");
}

#[test]
fn topics_ids_and_reasons_are_escaped() {
    let mut n = Narrator::capturing(options(1));
    let mut e = exchange("phone:1");
    e.topic = "cmnd/\u{1b}[2J".into();
    e.response_topic = "resp/\u{202e}x".into();
    n.request("phone\u{7}", 1, &e);
    let reason = "refused: \u{1b}]0;title\u{7}".to_string();
    n.done(&e.correlation, &Outcome::Failed { reason }, "resp/x");
    let text = text(&n);
    assert!(
        !text.contains(|c: char| c != '\n' && crate::output::is_unsafe(c)),
        "{text:?}"
    );
    assert!(text.contains("PUBLISH   cmnd/\\u{1b}[2J"), "{text}");
    assert!(text.contains("Response Topic    resp/\\u{202e}x"), "{text}");
    assert!(text.contains("refused: \\u{1b}]0;title\\u{7}"), "{text}");
}

#[test]
fn the_diagram_draws_each_packet_with_the_requester_left_of_the_broker() {
    let mut n = Narrator::capturing(options(1));
    let clean = ConnectFacts {
        clean_start: true,
        ..ConnectFacts::default()
    };
    n.connect("light", &clean);
    n.connack("light", &ConnackFacts::default());
    let e = exchange("phone:1");
    n.request("phone", 1, &e);
    n.handled("light", &handled(&e));
    n.done(&e.correlation, &matched(2), &e.response_topic);
    let d = n.take_diagram().unwrap();
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(lines[0], "sequenceDiagram");
    assert_eq!(lines[1], "    participant c2 as phone");
    assert_eq!(lines[2], "    participant broker as broker");
    assert_eq!(lines[3], "    participant c1 as light");
    assert!(
        d.contains("    c1->>broker: CONNECT (clean start)\n"),
        "{d}"
    );
    assert!(d.contains("    broker-->>c1: CONNACK\n"), "{d}");
    assert!(d.contains("    c2->>broker: PUBLISH cmnd/light-in-bedroom/power #quot;ON#quot;<br/>Response Topic state/light-in-bedroom/power<br/>Correlation Data #quot;phone:1#quot;\n"), "{d}");
    assert!(
        d.contains("    broker->>c1: PUBLISH cmnd/light-in-bedroom/power"),
        "{d}"
    );
    assert!(
        d.contains("    c1->>broker: PUBLISH state/light-in-bedroom/power"),
        "{d}"
    );
    assert!(
        d.contains("    broker->>c2: PUBLISH state/light-in-bedroom/power"),
        "{d}"
    );
    assert!(
        d.contains("    Note over c2: #quot;phone:1#quot; is request 1: matched, 2.0 ms\n"),
        "{d}"
    );
}

#[test]
fn the_diagram_escapes_what_mermaid_would_read_as_syntax() {
    let mut d = Diagram::default();
    d.note("a#b;c", "x\u{1b}y <b> \"q\"".into());
    let text = d.render();
    assert!(text.contains("participant c1 as a#35;b#59;c"), "{text}");
    assert!(
        text.contains("Note over c1: xy #lt;b#gt; #quot;q#quot;"),
        "{text}"
    );
}
