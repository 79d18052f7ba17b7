//! Tests of the text a fleet may hold: ids, topics, filters and names refuse control and
//! bidirectional-text characters, and the message shows the value escaped.

use super::test_support::{fleet, problems};

/// One light with `extra` fields, `name` as given; the group's fields start on line 5.
fn with_light(name: &str, extra: &str) -> String {
    format!("name: {name}\ndevices:\n  - kind: light\n    id: lamp\n{extra}")
}

#[test]
fn control_and_bidi_characters_are_refused_with_the_value_escaped() {
    let cases = [
        (
            with_light("t", "    command_topic: \"cmnd/\\e[2J/power\"\n"),
            "5:20: devices[0].command_topic: topic `cmnd/\\u{1b}[2J/power` contains the control character U+001B",
        ),
        (
            with_light("t", "    command_topic: \"cmnd/\\u202Eevil\"\n"),
            "devices[0].command_topic: topic `cmnd/\\u{202e}evil` contains the invisible formatting character U+202E",
        ),
        (
            with_light("t", "    command_topic: \"a\\x85b\"\n"),
            "topic `a\\u{85}b` contains the control character U+0085",
        ),
        (
            with_light("t", "    consume_wills: \"status/\\u2066+\"\n"),
            "devices[0].consume_wills: topic filter `status/\\u{2066}+` contains the invisible formatting character U+2066",
        ),
        (
            with_light("t", "    username: \"u\\tv\"\n"),
            "devices[0].username: username `u\\tv` contains the control character U+0009",
        ),
        (
            with_light("\"home\\e]0;pwned\\a\"", ""),
            "1:7: name: name `home\\u{1b}]0;pwned\\u{7}` contains the control character U+001B",
        ),
        (
            "name: t\nbroker: {embedded: {users: [{name: \"a\\u200Fb\", password: x}]}}\ndevices:\n  - {kind: light, id: lamp, username: a}\n".to_string(),
            "broker.embedded.users[0].name: user name `a\\u{200f}b` contains the invisible formatting character U+200F",
        ),
        (
            "name: t\nbroker: {embedded: {response_information: \"r\\u061C/\"}}\ndevices:\n  - {kind: light, id: lamp}\n".to_string(),
            "broker.embedded.response_information: `r\\u{61c}/` contains the invisible formatting character U+061C",
        ),
        (
            "name: t\nsupervisor: {username: \"w\\x7f\"}\ndevices:\n  - {kind: light, id: lamp}\n".to_string(),
            "supervisor.username: user name `w\\u{7f}` contains the control character U+007F",
        ),
    ];
    for (yaml, want) in cases {
        let p = problems(&yaml);
        assert!(
            p.iter().any(|p| p.contains(want)),
            "{yaml}\nwant {want}\nin {p:#?}"
        );
        for problem in &p {
            assert!(
                !problem.chars().any(crate::output::is_unsafe),
                "raw character in {problem:?}"
            );
        }
    }
    // An id is refused by its character rule already; the message shows it escaped too.
    let p = problems("name: t\ndevices:\n  - {kind: light, id: \"a\\e[2Jb\"}\n");
    assert!(
        p.iter()
            .any(|p| p.contains("devices[0].id") && p.contains("a\\u{1b}[2Jb")),
        "{p:#?}"
    );
    // Text elsewhere is free: payloads, units and user properties may hold any character.
    fleet(&with_light(
        "\"home ✓ °C\"",
        "    will: {payload: \"gone\\e!\", user_properties: {why: \"a\\tb\"}}\n",
    ));
}
