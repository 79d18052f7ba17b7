//! Tests of the whole path text -> `Fleet`: good files and their expansion, a table of bad files
//! and their messages, and inputs that must fail cleanly rather than panic.

use std::time::Duration;

use super::*;

const HOME: &str = "\
name: home
broker: mqtt://broker.local
duration: 1m30s
seed: 42
devices:
  - kind: light
    id: light-{n}
    count: 2
    qos: 2
    delay: 50ms
    initial: ON
  - kind: sensor
    id: sensor-kitchen
    unit: \"°C\"
    every: 500ms
    signal: { walk: { start: 21.0, step: 0.2, min: 15, max: 30 } }
  - kind: phone
    id: phone-{n}
    count: 2
    targets: [light-2, \"*\", \"light-{n}\"]
    response_topic: resp/{id}/{target}
    jitter: 100ms
    requests: 5
  - kind: phone
    id: hub-client
    request_topic: home/hub/cmd
    keepalive: 0s
    session_expiry: 1h
    clean_start: false
    receive_maximum: 10
";

fn fleet(yaml: &str) -> Fleet {
    match parse(yaml, "test.yaml") {
        Ok(f) => f,
        Err(e) => panic!("expected a valid fleet, got:\n{e}"),
    }
}

fn device<'a>(fleet: &'a Fleet, id: &str) -> &'a Device {
    fleet
        .devices
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no device {id}"))
}

fn phone(d: &Device) -> &Phone {
    match &d.role {
        Role::Phone(p) => p,
        other => panic!("{} is not a phone: {other:?}", d.id),
    }
}

#[test]
fn home_fleet_expands_ids_in_file_order() {
    let f = fleet(HOME);
    assert_eq!(f.name, "home");
    assert_eq!(
        f.broker,
        BrokerTarget::External {
            host: "broker.local".into(),
            port: 1883
        }
    );
    assert_eq!(f.duration, Duration::from_secs(90));
    assert_eq!(f.seed, 42);
    let ids: Vec<_> = f.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "light-1",
            "light-2",
            "sensor-kitchen",
            "phone-1",
            "phone-2",
            "hub-client"
        ]
    );
    let groups_and_ns: Vec<_> = f.devices.iter().map(|d| (d.group, d.n)).collect();
    assert_eq!(
        groups_and_ns,
        [(0, 1), (0, 2), (1, 1), (2, 1), (2, 2), (3, 1)]
    );
}

#[test]
fn lights_and_sensors_get_default_topics_and_given_settings() {
    let f = fleet(HOME);
    let light = device(&f, "light-2");
    assert_eq!(light.kind(), Kind::Light);
    assert_eq!(light.connection.qos, Qos::ExactlyOnce);
    assert_eq!(
        light.role,
        Role::Light(Light {
            command_topic: "cmnd/light-2/power".into(),
            delay: Duration::from_millis(50),
            initially_on: true,
        })
    );
    let sensor = device(&f, "sensor-kitchen");
    assert_eq!(
        sensor.role,
        Role::Sensor(Sensor {
            telemetry_topic: "tele/sensor-kitchen/reading".into(),
            every: Duration::from_millis(500),
            request_topic: "cmnd/sensor-kitchen/get".into(),
            unit: "°C".into(),
            signal: Signal::Walk {
                start: 21.0,
                step: 0.2,
                min: 15.0,
                max: 30.0
            },
        })
    );
}

#[test]
fn connection_defaults_and_overrides() {
    let f = fleet(HOME);
    assert_eq!(
        device(&f, "light-1").connection,
        Connection {
            keepalive: Duration::from_secs(30),
            clean_start: true,
            session_expiry: 0,
            qos: Qos::ExactlyOnce,
            receive_maximum: 100,
        }
    );
    assert_eq!(
        device(&f, "hub-client").connection,
        Connection {
            keepalive: Duration::ZERO,
            clean_start: false,
            session_expiry: 3600,
            qos: Qos::AtLeastOnce,
            receive_maximum: 10,
        }
    );
}

#[test]
fn phone_targets_are_resolved_in_list_order_without_duplicates() {
    let f = fleet(HOME);
    let p = phone(device(&f, "phone-1"));
    let summary: Vec<_> = p
        .targets
        .iter()
        .map(|t| {
            (
                t.device.as_deref().unwrap_or("-"),
                t.request_topic.as_str(),
                t.response_topic.as_str(),
                t.payloads.join(","),
            )
        })
        .collect();
    // light-2 first (listed first), then the rest of `*` in fleet order; `light-{n}` adds
    // nothing new for phone-1.
    assert_eq!(
        summary,
        [
            (
                "light-2",
                "cmnd/light-2/power",
                "resp/phone-1/light-2",
                "ON,OFF,TOGGLE".to_string()
            ),
            (
                "light-1",
                "cmnd/light-1/power",
                "resp/phone-1/light-1",
                "ON,OFF,TOGGLE".to_string()
            ),
            (
                "sensor-kitchen",
                "cmnd/sensor-kitchen/get",
                "resp/phone-1/sensor-kitchen",
                "get".to_string()
            ),
        ]
    );
    assert_eq!(p.every, Duration::from_secs(1));
    assert_eq!(p.jitter, Duration::from_millis(100));
    assert_eq!(p.timeout, Duration::from_secs(2));
    assert_eq!(p.max_requests, Some(5));
}

#[test]
fn per_phone_targets_pair_phone_n_with_device_n() {
    let f = fleet(
        "name: pairs\ndevices:\n  - {kind: light, id: \"l-{n}\", count: 3}\n  - {kind: phone, id: \"p-{n}\", count: 3, targets: [\"l-{n}\"]}\n",
    );
    for n in 1..=3 {
        let p = phone(device(&f, &format!("p-{n}")));
        let devices: Vec<_> = p.targets.iter().map(|t| t.device.clone()).collect();
        assert_eq!(devices, [Some(format!("l-{n}"))]);
        assert_eq!(p.targets[0].response_topic, format!("resp/p-{n}"));
    }
}

#[test]
fn plain_request_topic_phone_gets_one_outside_target() {
    let f = fleet(HOME);
    let p = phone(device(&f, "hub-client"));
    assert_eq!(
        p.targets,
        [Target {
            device: None,
            request_topic: "home/hub/cmd".into(),
            response_topic: "resp/hub-client".into(),
            payloads: vec!["ping".into()],
        }]
    );
    assert_eq!(p.max_requests, None);
}

#[test]
fn minimal_file_takes_every_default() {
    let f = fleet("name: m\ndevices:\n  - kind: sensor\n    id: s\n");
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 0 });
    assert_eq!(f.duration, Duration::from_secs(10));
    assert_eq!(f.seed, 0);
    assert_eq!(
        f.devices[0].role,
        Role::Sensor(Sensor {
            telemetry_topic: "tele/s/reading".into(),
            every: Duration::from_secs(1),
            request_topic: "cmnd/s/get".into(),
            unit: String::new(),
            signal: Signal::Walk {
                start: 20.0,
                step: 0.5,
                min: 0.0,
                max: 40.0
            },
        })
    );
    assert_eq!(f.devices[0].n, 1);
}

#[test]
fn broker_forms_and_custom_topics() {
    let f = fleet(
        "name: b\nbroker: {embedded: {port: 1999}}\ndevices:\n  - kind: light\n    id: l{n}\n    command_topic: x/{n}/{id}\n    initial: off\n  - kind: sensor\n    id: s\n    signal: {range: {min: -5, max: 5}}\n",
    );
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 1999 });
    assert_eq!(
        f.devices[0].role,
        Role::Light(Light {
            command_topic: "x/1/l1".into(),
            delay: Duration::ZERO,
            initially_on: false,
        })
    );
    let Role::Sensor(s) = &f.devices[1].role else {
        panic!("not a sensor")
    };
    assert_eq!(
        s.signal,
        Signal::Range {
            min: -5.0,
            max: 5.0
        }
    );
    let f = fleet("name: b\nbroker: embedded\ndevices: [{kind: light, id: l}]\n");
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 0 });
    let f = fleet("name: b\nbroker: {embedded: }\ndevices: [{kind: light, id: l}]\n");
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 0 });
}

#[test]
fn two_lights_on_one_command_topic_are_allowed() {
    let f = fleet(
        "name: s\ndevices:\n  - {kind: light, id: a, command_topic: shared}\n  - {kind: light, id: b, command_topic: shared}\n",
    );
    assert_eq!(f.devices.len(), 2);
}

/// What kind of error a bad file must produce.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Yaml,
    Invalid,
}

/// A valid prefix to build bad files on: line 1 is `name`, line 2 `devices:`.
const HEAD: &str = "name: t\ndevices:\n";

/// (case, file, expected kind, text the message must contain: field, `:line:`, value).
fn bad_files() -> Vec<(&'static str, String, Expect, [&'static str; 3])> {
    let dev = |rest: &str| format!("{HEAD}  - kind: light\n    id: l\n{rest}");
    let phone = |rest: &str| {
        format!("{HEAD}  - kind: light\n    id: light-1\n  - kind: phone\n    id: p\n{rest}")
    };
    use Expect::*;
    vec![
        (
            "unknown field",
            dev("    colour: red\n"),
            Yaml,
            ["colour", "line 5", "colour"],
        ),
        (
            "unknown top field",
            format!("nme: x\n{HEAD}"),
            Yaml,
            ["nme", "line 1", "nme"],
        ),
        (
            "wrong type",
            dev("    clean_start: maybe\n"),
            Yaml,
            ["line 5", "maybe", "clean_start"],
        ),
        (
            "qos 3",
            dev("    qos: 3\n"),
            Invalid,
            ["devices[0].qos", ":5:10:", "got 3"],
        ),
        (
            "qos -1",
            dev("    qos: -1\n"),
            Invalid,
            ["devices[0].qos", ":5:", "got -1"],
        ),
        (
            "count 0",
            dev("    count: 0\n"),
            Invalid,
            ["devices[0].count", ":5:", "got 0"],
        ),
        (
            "huge count",
            format!("{HEAD}  - kind: light\n    id: l{{n}}\n    count: 1000000000000\n"),
            Invalid,
            [
                "devices[0].count",
                ":5:",
                "count too large (max 1000000), got 1000000000000",
            ],
        ),
        (
            "count without {n}",
            dev("    count: 3\n"),
            Invalid,
            ["devices[0].id", ":4:", "id `l` has no `{n}` but count is 3"],
        ),
        (
            "receive_maximum 0",
            dev("    receive_maximum: 0\n"),
            Invalid,
            ["devices[0].receive_maximum", ":5:", "got 0"],
        ),
        (
            "keepalive too long",
            dev("    keepalive: 65536s\n"),
            Invalid,
            ["devices[0].keepalive", ":5:", "65536s"],
        ),
        (
            "keepalive fraction",
            dev("    keepalive: 1500ms\n"),
            Invalid,
            ["devices[0].keepalive", ":5:", "1500ms"],
        ),
        (
            "session expiry too long",
            dev("    session_expiry: 200years\n"),
            Invalid,
            ["devices[0].session_expiry", ":5:", "200years"],
        ),
        (
            "parsecs",
            format!("duration: 5 parsecs\n{HEAD}  - {{kind: light, id: l}}\n"),
            Invalid,
            ["duration", ":1:11:", "5 parsecs"],
        ),
        (
            "zero duration",
            format!("duration: 0s\n{HEAD}  - {{kind: light, id: l}}\n"),
            Invalid,
            ["duration", ":1:", "0s"],
        ),
        (
            "sensor every 0s",
            format!("{HEAD}  - kind: sensor\n    id: s\n    every: 0s\n"),
            Invalid,
            ["devices[0].every", ":5:", "0s"],
        ),
        (
            "field of another kind",
            dev("    every: 1s\n"),
            Invalid,
            [
                "devices[0].every",
                ":5:",
                "field `every` is not valid for a light",
            ],
        ),
        (
            "bad kind",
            format!("{HEAD}  - kind: lamp\n    id: l\n"),
            Invalid,
            ["devices[0].kind", ":3:11:", "lamp"],
        ),
        (
            "missing kind",
            format!("{HEAD}  - id: l\n"),
            Invalid,
            ["devices[0].kind", ":3:", "missing required field `kind`"],
        ),
        (
            "missing id",
            format!("{HEAD}  - kind: light\n"),
            Invalid,
            ["devices[0].id", ":3:", "missing required field `id`"],
        ),
        (
            "bad id char",
            format!("{HEAD}  - kind: light\n    id: my light\n"),
            Invalid,
            ["devices[0].id", ":4:", "my light"],
        ),
        (
            "id too long",
            format!("{HEAD}  - kind: light\n    id: {}\n", "x".repeat(65)),
            Invalid,
            ["devices[0].id", ":4:", "(max 64)"],
        ),
        (
            "initial",
            dev("    initial: DIM\n"),
            Invalid,
            ["devices[0].initial", ":5:", "DIM"],
        ),
        (
            "unknown variable",
            dev("    command_topic: cmnd/{foo}\n"),
            Invalid,
            ["devices[0].command_topic", ":5:", "{foo}"],
        ),
        (
            "unclosed brace",
            dev("    command_topic: cmnd/{id\n"),
            Invalid,
            ["devices[0].command_topic", ":5:", "cmnd/{id"],
        ),
        (
            "target outside phone",
            dev("    command_topic: c/{target}\n"),
            Invalid,
            ["devices[0].command_topic", ":5:", "{target}"],
        ),
        (
            "wildcard topic",
            dev("    command_topic: cmnd/+/power\n"),
            Invalid,
            ["devices[0].command_topic", ":5:", "cmnd/+/power"],
        ),
        (
            "hash topic",
            dev("    command_topic: cmnd/#\n"),
            Invalid,
            ["devices[0].command_topic", ":5:", "cmnd/#"],
        ),
        (
            "empty topic",
            dev("    command_topic: \"\"\n"),
            Invalid,
            ["devices[0].command_topic", ":5:", "must not be empty"],
        ),
        (
            "nul topic",
            dev("    command_topic: \"a\\0b\"\n"),
            Invalid,
            ["devices[0].command_topic", ":5:", "a\\0b"],
        ),
        (
            "duplicate ids",
            format!(
                "{HEAD}  - {{kind: light, id: \"x-{{n}}\", count: 3}}\n  - {{kind: sensor, id: x-2}}\n"
            ),
            Invalid,
            [
                "devices[1].id",
                ":4:",
                "duplicate device id `x-2`, also made by devices[0] (line 3)",
            ],
        ),
        (
            "target matches nothing",
            phone("    targets: [lamp-1]\n"),
            Invalid,
            ["devices[1].targets[0]", ":7:15:", "lamp-1"],
        ),
        (
            "glob matches nothing",
            phone("    targets: [\"sensor-*\"]\n"),
            Invalid,
            ["devices[1].targets[0]", ":7:", "sensor-*"],
        ),
        (
            "phone targets phone",
            phone("    targets: [p]\n"),
            Invalid,
            ["devices[1].targets[0]", ":7:", "`p` is a phone"],
        ),
        (
            "both targets and request_topic",
            phone("    targets: [light-1]\n    request_topic: x\n"),
            Invalid,
            ["devices[1].request_topic", ":8:", "not both"],
        ),
        (
            "neither targets nor request_topic",
            phone(""),
            Invalid,
            ["devices[1]", ":5:", "a phone needs `targets`"],
        ),
        (
            "{target} with request_topic",
            phone("    request_topic: x\n    response_topic: r/{target}\n"),
            Invalid,
            ["devices[1].response_topic", ":8:", "r/{target}"],
        ),
        (
            "wildcard response topic",
            phone("    targets: [light-1]\n    response_topic: r/#\n"),
            Invalid,
            ["devices[1].response_topic", ":8:", "r/#"],
        ),
        (
            "jitter >= every",
            phone("    targets: [light-1]\n    every: 1s\n    jitter: 1s\n"),
            Invalid,
            [
                "devices[1].jitter",
                ":9:",
                "jitter must be less than every (1s), got `1s`",
            ],
        ),
        (
            "timeout 0",
            phone("    targets: [light-1]\n    timeout: 0ms\n"),
            Invalid,
            ["devices[1].timeout", ":8:", "0ms"],
        ),
        (
            "requests 0",
            phone("    targets: [light-1]\n    requests: 0\n"),
            Invalid,
            ["devices[1].requests", ":8:", "got 0"],
        ),
        (
            "empty payloads",
            phone("    targets: [light-1]\n    payloads: []\n"),
            Invalid,
            ["devices[1].payloads", ":8:", "must not be empty"],
        ),
        (
            "empty targets",
            phone("    targets: []\n"),
            Invalid,
            ["devices[1].targets", ":7:", "must not be empty"],
        ),
        (
            "per-phone target missing",
            format!(
                "{HEAD}  - {{kind: light, id: \"l-{{n}}\", count: 2}}\n  - {{kind: phone, id: \"p-{{n}}\", count: 3, targets: [\"l-{{n}}\"]}}\n"
            ),
            Invalid,
            [
                "devices[1].targets[0]",
                ":4:",
                "for phone `p-3`: target `l-3` matches no device id",
            ],
        ),
        (
            "signal min > max",
            format!(
                "{HEAD}  - kind: sensor\n    id: s\n    signal: {{range: {{min: 5, max: 1}}}}\n"
            ),
            Invalid,
            ["devices[0].signal.range.max", ":5:", "min 5 and max 1"],
        ),
        (
            "signal start outside",
            format!("{HEAD}  - kind: sensor\n    id: s\n    signal: {{walk: {{start: 99}}}}\n"),
            Invalid,
            ["devices[0].signal.walk.start", ":5:", "got 99"],
        ),
        (
            "unsupported scheme",
            format!("broker: mqtts://h:8883\n{HEAD}  - {{kind: light, id: l}}\n"),
            Invalid,
            ["broker", ":1:9:", "mqtts"],
        ),
        (
            "bad broker port",
            format!("broker: mqtt://h:99999\n{HEAD}  - {{kind: light, id: l}}\n"),
            Invalid,
            ["broker", ":1:", "99999"],
        ),
        (
            "embedded port",
            format!("broker: {{embedded: {{port: 70000}}}}\n{HEAD}  - {{kind: light, id: l}}\n"),
            Invalid,
            ["broker.embedded.port", ":1:27:", "got 70000"],
        ),
        (
            "broker map unknown key",
            format!("broker: {{external: 1}}\n{HEAD}  - {{kind: light, id: l}}\n"),
            Yaml,
            ["external", "line 1", "embedded"],
        ),
        (
            "missing name",
            "devices: [{kind: light, id: l}]\n".to_string(),
            Invalid,
            ["name", ":1:1:", "missing required field `name`"],
        ),
        (
            "empty name",
            "name: \"\"\ndevices: [{kind: light, id: l}]\n".to_string(),
            Invalid,
            ["name", ":1:", "must not be empty"],
        ),
        (
            "no devices",
            "name: x\ndevices: []\n".to_string(),
            Invalid,
            ["devices", ":2:", "at least one group"],
        ),
    ]
}

#[test]
fn bad_files_name_field_line_and_value() {
    let cases = bad_files();
    for (case, yaml, expect, needles) in &cases {
        let err = match parse(yaml, "t.yaml") {
            Ok(f) => panic!("{case}: expected an error, got {f:?}"),
            Err(e) => e,
        };
        let kind = match &err {
            FleetError::Yaml { .. } => Expect::Yaml,
            FleetError::Invalid { .. } => Expect::Invalid,
            FleetError::Read { .. } => panic!("{case}: unexpected read error"),
        };
        let text = err.to_string();
        assert_eq!(kind, *expect, "{case}: wrong error kind:\n{text}");
        assert!(
            text.starts_with("t.yaml"),
            "{case}: origin missing:\n{text}"
        );
        for needle in needles {
            assert!(
                text.contains(needle),
                "{case}: `{needle}` missing from:\n{text}"
            );
        }
    }
    assert!(cases.len() >= 40);
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let yaml = "\
name: t
duration: 0s
devices:
  - kind: light
    id: l
    qos: 7
    every: 2s
  - kind: phone
    id: p
    targets: [nothing-here]
    response_topic: resp/#
    jitter: 2s
";
    let Err(FleetError::Invalid { origin, problems }) = parse(yaml, "home.yaml") else {
        panic!("expected Invalid");
    };
    assert_eq!(origin, "home.yaml");
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "duration",
            "devices[0].qos",
            "devices[0].every",
            "devices[1].targets[0]",
            "devices[1].response_topic",
            "devices[1].jitter",
        ]
    );
    assert_eq!((problems[1].line, problems[1].column), (6, 10));
    let text = FleetError::Invalid { origin, problems }.to_string();
    assert_eq!(text.lines().count(), 6);
    assert!(text.contains("home.yaml:6:10: devices[0].qos: QoS must be 0, 1 or 2, got 7"));
}

#[test]
fn a_bad_template_in_a_big_group_is_one_problem() {
    let yaml = format!(
        "{HEAD}  - {{kind: light, id: \"l{{n}}\", count: 5000, command_topic: \"c/+/{{id}}\"}}\n"
    );
    let Err(FleetError::Invalid { problems, .. }) = parse(&yaml, "t") else {
        panic!("expected Invalid");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn too_many_devices_or_targets_are_refused_before_expansion() {
    let yaml = format!(
        "{HEAD}  - {{kind: light, id: \"a{{n}}\", count: 600000}}\n  - {{kind: light, id: \"b{{n}}\", count: 600000}}\n"
    );
    let err = parse(&yaml, "t").unwrap_err().to_string();
    assert!(
        err.contains("devices[1].count") && err.contains("(max 1000000)"),
        "{err}"
    );

    let yaml = format!(
        "{HEAD}  - {{kind: light, id: \"l{{n}}\", count: 2000}}\n  - {{kind: phone, id: \"p{{n}}\", count: 2000, targets: [\"*\"]}}\n"
    );
    let err = parse(&yaml, "t").unwrap_err().to_string();
    assert!(
        err.contains("devices[1].targets") && err.contains("4000000"),
        "{err}"
    );
}

#[test]
fn pathological_inputs_fail_cleanly() {
    let deep = format!(
        "name: x\ndevices: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let junk: String = (0u32..2000)
        .map(|i| char::from_u32((i * 7919) % 0xD7FF).unwrap_or('?'))
        .collect();
    let inputs = [
        "",
        "---\n",
        "~",
        "devices: 5",
        "name: x\ndevices: 5\n",
        "name: x\ndevices: [5]\n",
        "name: x\ndevices: [{}]\n",
        "name: [1, 2]\n",
        "- a\n- b\n",
        "a: &a [*a]\n",
        "name: x\ndevices:\n  - kind: light\n    id: \"{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}{n}\"\n    count: 1000000\n",
        "name: x\ndevices:\n  - kind: sensor\n    id: s\n    signal: {walk: {min: .nan, max: .inf}}\n",
        "name: x\ndevices:\n  - kind: phone\n    id: p\n    targets: [\"{n}*\", \"\", \"a b\", \"{\"]\n",
        "name: x\nseed: -1\ndevices: []\n",
        "name: x\nduration: 99999999999999999999999999years\ndevices: []\n",
        "\u{feff}name: x\n",
        &deep,
        &junk,
    ];
    for input in inputs {
        let result = parse(input, "p.yaml");
        assert!(result.is_err(), "accepted {input:?}");
    }
}

#[test]
fn mutated_good_files_never_panic() {
    // Deterministic xorshift: mutations of a valid file exercise half-valid inputs that a
    // handful of hand-written cases miss.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base: Vec<char> = HOME.chars().collect();
    let alphabet: Vec<char> = "{}[]:-*#+ \n\"'0123456789nsmx&|>".chars().collect();
    for _ in 0..400 {
        let mut chars = base.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % chars.len();
            let c = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => chars[at] = c,
                1 => chars.insert(at, c),
                _ => {
                    chars.remove(at);
                }
            }
        }
        let text: String = chars.into_iter().collect();
        // Any outcome is fine, as long as there is one and errors render.
        if let Err(e) = parse(&text, "m.yaml") {
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn load_reads_files_and_reports_missing_and_binary_ones() {
    let dir = std::env::temp_dir().join(format!("fleetsim-fleet-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("home.yaml");
    std::fs::write(&good, HOME).unwrap();
    assert_eq!(load(&good).unwrap().devices.len(), 6);

    let missing = dir.join("missing.yaml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, FleetError::Read { .. }));
    assert!(err.to_string().contains("missing.yaml"));

    let binary = dir.join("junk.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x9f, 0x92, 0x96]).unwrap();
    let err = load(&binary).unwrap_err();
    assert!(matches!(err, FleetError::Yaml { .. }), "{err:?}");

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "name: x\ndevices: [{kind: light, id: l, qos: 3}]\n").unwrap();
    let err = load(&bad).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:2:", bad.display())), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_repo_fleets_are_valid() {
    let home = fleet(include_str!("../../fleets/home.yaml"));
    let p = phone(device(&home, "phone"));
    assert_eq!(p.targets[0].device.as_deref(), Some("light-in-bedroom"));
    assert_eq!(p.targets[0].request_topic, "cmnd/light-in-bedroom/power");
    assert_eq!(p.targets[0].response_topic, "state/light-in-bedroom/power");
    let tablet = phone(device(&home, "tablet"));
    let asked: Vec<_> = tablet
        .targets
        .iter()
        .map(|t| t.request_topic.as_str())
        .collect();
    assert_eq!(asked, ["cmnd/sensor-1/get", "cmnd/sensor-2/get"]);

    let multi = fleet(include_str!("../../fleets/multi.yaml"));
    assert_eq!(multi.devices.len(), 7);
    let p = phone(device(&multi, "phone-4"));
    assert_eq!(p.targets.len(), 3);
    assert_eq!(p.targets[2].response_topic, "home/replies/phone-4");
    assert_eq!(p.targets[2].request_topic, "home/light-3/set");
}
