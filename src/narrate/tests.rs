use std::time::Duration;

use super::*;

fn options(exchanges: usize) -> NarrationOptions {
    NarrationOptions {
        exchanges,
        setup: true,
        width: 16,
        diagram: true,
        lang: Lang::En,
        outside: 2,
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
        from_outside: None,
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
fn requests_from_outside_are_told_with_their_sender_whatever_the_exchanges_and_bounded() {
    // No exchange of the fleet's own is told, yet outside requests are: a trainee's own.
    let mut n = Narrator::capturing(options(0));
    let e = exchange("1");
    let from = |sender: &str| Handled {
        from_outside: Some(sender.into()),
        ..handled(&e)
    };
    n.handled("light-in-bedroom", &from("mqttx_1"));
    let told = text(&n);
    let lines: Vec<&str> = told.lines().collect();
    assert_eq!(lines.len(), 3, "{told}");
    assert!(
        lines[0].starts_with("outside") && lines[0].contains("light-in-bedroom <- PUBLISH")
            && lines[0].contains("cmnd/light-in-bedroom/power \"ON\", Response Topic state/light-in-bedroom/power, Correlation Data \"1\""),
        "{told}"
    );
    assert!(
        lines[1].trim() == "sent by mqttx_1, a client outside the fleet",
        "{told}"
    );
    assert!(lines[2].contains("-> PUBLISH") && lines[2].contains("state/light-in-bedroom/power {\"power\":\"ON\"}, Correlation Data \"1\" copied unchanged"), "{told}");
    n.handled("light-in-bedroom", &from("mqttx_\u{1b}[2J"));
    let told = text(&n);
    assert!(told.contains("sent by mqttx_\\u{1b}[2J"), "escaped: {told}");
    assert!(
        told.contains("the first 2 requests from outside are told"),
        "{told}"
    );
    n.handled("light-in-bedroom", &from("mqttx_3"));
    assert!(!text(&n).contains("mqttx_3"), "bounded: {}", text(&n));
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
    let reason = Failure::PublishRefused("refused: \u{1b}]0;title\u{7}".to_string());
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

/// Every kind of line the narration has, once: set-up, requests and their ends, strays, Wills.
fn every_message(lang: Lang) -> Narrator {
    let mut n = Narrator::capturing(NarrationOptions {
        lang,
        outside: 1,
        ..options(9)
    });
    let will = WillFacts {
        topic: "status/light".into(),
        response_topic: "will-ack/light".into(),
        correlation: Bytes::from_static(b"light#1"),
        delay_s: 2,
    };
    for (clean_start, will) in [(true, Some(will)), (false, None)] {
        let facts = ConnectFacts {
            clean_start,
            keepalive_s: 30,
            request_response_information: true,
            username: Some("alice".into()),
            will,
        };
        n.connect("light", &facts);
    }
    n.connack(
        "phone",
        &ConnackFacts {
            session_present: true,
            response_information: Some("resp/".into()),
            receive_maximum: 20,
            refused: None,
        },
    );
    n.connack(
        "guess",
        &ConnackFacts {
            refused: Some("NotAuthorized".into()),
            ..ConnackFacts::default()
        },
    );
    for purpose in [
        Purpose::WillAcks,
        Purpose::Wills,
        Purpose::Answers,
        Purpose::Commands,
        Purpose::Requests,
    ] {
        let filter = Filter {
            filter: "t".into(),
            purpose,
        };
        n.subscribe("phone", &[filter]);
    }
    n.suback("phone", &[("t".into(), Granted::Qos(1))]);
    n.suback("guess", &[("t".into(), Granted::Refused("x".into()))]);
    let ends = [
        matched(1),
        Outcome::Late {
            latency: Duration::from_millis(9),
        },
        Outcome::TimedOut {
            after: Duration::from_secs(1),
        },
        Outcome::Failed {
            reason: Failure::ResponseTopicRefused {
                topic: "replies/phone".into(),
                reason: "NotAuthorized (0x87)".into(),
            },
        },
    ];
    for (i, end) in ends.iter().enumerate() {
        let e = exchange(["p:1", "p:2", "p:3", "p:4"][i]);
        n.request("phone", i as u64 + 1, &e);
        let mut h = handled(&e);
        match i {
            1 => h.answer = None,
            2 => (h.answer, h.withheld) = (None, true),
            3 => (h.answer, h.response_topic, h.correlation) = (None, None, None),
            _ => {}
        }
        h.tag = Some(e.correlation.clone());
        n.handled("light", &h);
        n.done(&e.correlation, end, "resp/phone");
    }
    let mut held = exchange("p:5");
    (held.published, held.without_correlation) = (false, true);
    n.request("phone", 5, &held);
    n.done(&held.correlation, &matched(2), "resp/phone");
    let mixed_up = Stray::MixedUp {
        taken: "p:1".into(),
        truth: "q:1".into(),
    };
    let strays = [
        Stray::Outsiders,
        Stray::Duplicate,
        Stray::Late { ms: 600.0 },
        Stray::Unmatched,
        Stray::NothingOpen,
        mixed_up,
    ];
    for why in &strays {
        n.stray("phone", "resp/phone", b"{}", Some(b"p:1"), why);
    }
    n.stray("phone", "resp/phone", b"{}", None, &Stray::Unmatched);
    let outsider = Handled {
        from_outside: Some("mqttx_1".into()),
        ..handled(&exchange("req-1"))
    };
    n.handled("light", &outsider);
    n.will_learned("light", "will-ack/light", b"light#1", 1, "phone");
    n.will_consumed(
        "phone",
        ("status/light", b"offline"),
        ("will-ack/light", b"{}"),
        b"light#1",
    );
    n
}

/// The English words of the narration that the Japanese must not keep.
const ENGLISH: [&str; 12] = [
    "Response Topic",
    "Correlation Data",
    "Response Information",
    "Will ",
    " answer",
    "request ",
    "accepted",
    "refused",
    "granted",
    "clean start",
    "narration",
    " its ",
];

#[test]
fn every_narration_message_is_said_in_both_languages() {
    let (en, ja) = (every_message(Lang::En), every_message(Lang::Ja));
    let (en, ja) = (en.lines(), ja.lines());
    assert_eq!(en.len(), ja.len(), "{en:#?}\n{ja:#?}");
    assert!(en.len() > 40, "{en:#?}");
    let mut same = 0;
    for (en, ja) in en.iter().zip(ja) {
        // A line with no words at all (a request's topic and payload) is the same in both.
        if en == ja {
            same += 1;
            assert!(!en.contains(", "), "not translated: {en}");
        }
        for word in ENGLISH {
            // "Request Response Information = 1" is the CONNECT property's own name.
            let ja = ja.replace("Request Response Information", "");
            assert!(!ja.contains(word), "{word:?} left in: {ja}");
        }
    }
    assert_eq!(same, 4, "one PUBLISH line per request sent, and no other");
}

#[test]
fn the_japanese_narration_uses_the_articles_terms_and_keeps_the_columns() {
    let n = every_message(Lang::Ja);
    let text = text(&n);
    for term in [
        "レスポンストピック",
        "コリレーションデータ",
        "レスポンス情報",
        "ウィルメッセージ",
    ] {
        assert!(text.contains(term), "{term} missing: {text}");
    }
    // The arrow and packet columns line up as in English: labels and ids are ASCII.
    let en = every_message(Lang::En);
    for (en, ja) in en.lines().iter().zip(n.lines()) {
        assert_eq!(en.find(" -> ").is_some(), ja.find(" -> ").is_some());
        assert_eq!(en.find(" -> "), ja.find(" -> "), "{en}\n{ja}");
    }
    assert!(
        text.contains("(保留)    cmnd/light-in-bedroom/power"),
        "{text}"
    );
}

#[test]
fn an_answer_taken_for_the_wrong_request_is_told_once_with_whose_it_was() {
    let mut n = Narrator::capturing(options(1));
    let e = Exchange {
        without_correlation: true,
        ..exchange("phone-1:1")
    };
    n.request("phone-1", 1, &e);
    let why = Stray::MixedUp {
        taken: "phone-1:1".into(),
        truth: "phone-2:1".into(),
    };
    n.mixed_up("phone-1", "state/lights", b"OFF", b"phone-1:1", &why);
    n.done(&e.correlation, &matched(7), "state/lights");
    let told = text(&n);
    let answers = told.lines().filter(|l| l.contains("<- PUBLISH")).count();
    assert_eq!(answers, 1, "one delivery, one line: {told}");
    assert!(
        told.contains("taken as the answer to its oldest open request, phone-1:1"),
        "{told}"
    );
    assert!(
        told.contains("but it was the answer to phone-2:1: mixed up"),
        "{told}"
    );
    // Not narrated (no exchange open): a line of its own.
    n.mixed_up("phone-1", "state/lights", b"ON", b"phone-1:9", &why);
    let strays: Vec<String> = n
        .lines()
        .iter()
        .filter(|l| l.starts_with("- "))
        .cloned()
        .collect();
    assert_eq!(strays.len(), 1, "{}", text(&n));
    assert!(
        strays[0].contains("\"ON\"") && strays[0].contains("mixed up"),
        "{strays:?}"
    );
}
