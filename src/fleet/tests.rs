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

/// A phone's targets spelled out, as the phone will use them.
#[derive(Debug, PartialEq)]
struct Target {
    device: Option<String>,
    request_topic: String,
    response_topic: String,
    payloads: Vec<String>,
}

fn targets(f: &Fleet, p: &Phone) -> Vec<Target> {
    let t = &p.targets;
    (0..t.len())
        .map(|i| Target {
            device: t.device(i).map(|d| f.devices[d as usize].id.clone()),
            request_topic: t.request_topic(i, f).to_owned(),
            response_topic: t.response_topic(i).to_string(),
            payloads: t
                .payloads(i, f)
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
        })
        .collect()
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
            port: 1883,
            tls: false,
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
            username: None,
            password: None,
            request_response_info: false,
            response_info_fallback: "resp/".into(),
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
            username: None,
            password: None,
            request_response_info: false,
            response_info_fallback: "resp/".into(),
        }
    );
}

#[test]
fn phone_targets_are_resolved_in_list_order_without_duplicates() {
    let f = fleet(HOME);
    let p = phone(device(&f, "phone-1"));
    let summary: Vec<_> = targets(&f, p)
        .into_iter()
        .map(|t| {
            (
                t.device.unwrap_or_else(|| "-".into()),
                t.request_topic,
                t.response_topic,
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
                "ON,OFF,TOGGLE"
            ),
            (
                "light-1",
                "cmnd/light-1/power",
                "resp/phone-1/light-1",
                "ON,OFF,TOGGLE"
            ),
            (
                "sensor-kitchen",
                "cmnd/sensor-kitchen/get",
                "resp/phone-1/sensor-kitchen",
                "get"
            ),
        ]
        .map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned()))
    );
    assert_eq!(
        p.pace,
        Pace::Every {
            every: Duration::from_secs(1),
            jitter: Duration::from_millis(100)
        }
    );
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
        let t = targets(&f, p);
        let devices: Vec<_> = t.iter().map(|t| t.device.clone()).collect();
        assert_eq!(devices, [Some(format!("l-{n}"))]);
        assert_eq!(t[0].response_topic, format!("resp/p-{n}"));
    }
}

#[test]
fn plain_request_topic_phone_gets_one_outside_target() {
    let f = fleet(HOME);
    let p = phone(device(&f, "hub-client"));
    assert_eq!(
        targets(&f, p),
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
    assert_eq!(f.devices[0].will, None);
    assert_eq!(f.devices[0].consume_wills, None);
    assert_eq!(f.will_ack_timeout, Duration::from_secs(5));
    assert_eq!(f.faults, []);
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
    // Faults start on line 10: light `l` (keepalive 2s, Will delay 2s) and sensor `s` (no Will).
    let fault = |body: &str| {
        format!(
            "{HEAD}  - kind: light\n    id: l\n    keepalive: 2s\n    will: {{delay: 2s}}\n  - kind: sensor\n    id: s\nfaults:\n{body}"
        )
    };
    let stall = |target: &str, down_for: &str| {
        fault(&format!(
            "  - kind: stall\n    target: {target}\n    at: 1s\n    down_for: {down_for}\n"
        ))
    };
    let flap = |target: &str, down_for: &str| {
        fault(&format!(
            "  - kind: flap\n    target: {target}\n    at: 1s\n    down_for: {down_for}\n"
        ))
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
            "timeout under a millisecond",
            phone("    targets: [light-1]\n    timeout: 1ns\n"),
            Invalid,
            ["devices[1].timeout", ":8:", "at least 1ms, got `1ns`"],
        ),
        (
            "two load models",
            phone("    targets: [light-1]\n    every: 1s\n    rate: 10/s\n"),
            Invalid,
            [
                "devices[1].rate",
                ":9:",
                "one of `every`, `rate`, `group_rate` and `in_flight`: `every` is given already",
            ],
        ),
        (
            "rate not a rate",
            phone("    targets: [light-1]\n    rate: fast\n"),
            Invalid,
            [
                "devices[1].rate",
                ":8:",
                "like `500/s` or `30/m`, got `fast`",
            ],
        ),
        (
            "rate of nothing",
            phone("    targets: [light-1]\n    group_rate: 0/s\n"),
            Invalid,
            ["devices[1].group_rate", ":8:", "above 0"],
        ),
        (
            "in_flight 0",
            phone("    targets: [light-1]\n    in_flight: 0\n"),
            Invalid,
            ["devices[1].in_flight", ":8:", "from 1 to 65535, got 0"],
        ),
        (
            "jitter without every",
            phone("    targets: [light-1]\n    in_flight: 2\n    jitter: 1ms\n"),
            Invalid,
            ["devices[1].jitter", ":9:", "jitter goes with `every` only"],
        ),
        (
            "rate on a light",
            format!("{HEAD}  - kind: light\n    id: l\n    rate: 5/s\n"),
            Invalid,
            [
                "devices[0].rate",
                ":5:",
                "field `rate` is not valid for a light",
            ],
        ),
        (
            "ramp not a rate",
            format!("ramp: 5\n{HEAD}  - kind: light\n    id: l\n"),
            Invalid,
            ["ramp", ":1:", "like `500/s`"],
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
            format!("broker: ws://h:8883\n{HEAD}  - {{kind: light, id: l}}\n"),
            Invalid,
            ["broker", ":1:9:", "unsupported scheme `ws`"],
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
        (
            "will unknown field",
            dev("    will: {topik: a}\n"),
            Yaml,
            ["topik", "line 5", "response_topic"],
        ),
        (
            "will qos 3",
            dev("    will: {qos: 3}\n"),
            Invalid,
            ["devices[0].will.qos", ":5:17:", "got 3"],
        ),
        (
            "will delay fraction",
            dev("    will:\n      delay: 1500ms\n"),
            Invalid,
            ["devices[0].will.delay", ":6:14:", "1500ms"],
        ),
        (
            "will delay too long",
            dev("    will:\n      delay: 200years\n"),
            Invalid,
            ["devices[0].will.delay", ":6:", "200years"],
        ),
        (
            "will message_expiry 0",
            dev("    will:\n      message_expiry: 0s\n"),
            Invalid,
            [
                "devices[0].will.message_expiry",
                ":6:",
                "must be greater than 0 (leave it out for no expiry), got `0s`",
            ],
        ),
        (
            "will message_expiry fraction",
            dev("    will:\n      message_expiry: 1.5s\n"),
            Invalid,
            ["devices[0].will.message_expiry", ":6:", "1.5s"],
        ),
        (
            "will topic wildcard",
            dev("    will:\n      topic: status/+\n"),
            Invalid,
            ["devices[0].will.topic", ":6:14:", "status/+"],
        ),
        (
            "will topic unknown variable",
            dev("    will:\n      topic: s/{target}\n"),
            Invalid,
            ["devices[0].will.topic", ":6:", "{target}"],
        ),
        (
            "will response_topic wildcard",
            dev("    will:\n      response_topic: ack/#\n"),
            Invalid,
            ["devices[0].will.response_topic", ":6:", "ack/#"],
        ),
        (
            "will ack topic is the command topic",
            dev("    will:\n      response_topic: cmnd/{id}/power\n"),
            Invalid,
            [
                "devices[0].will.response_topic",
                ":6:23:",
                "will.response_topic `cmnd/l/power` of `l` is also its command topic",
            ],
        ),
        (
            "will ack topic is a response topic",
            phone("    targets: [light-1]\n    will: {response_topic: \"resp/{id}\"}\n"),
            Invalid,
            [
                "devices[1].will.response_topic",
                ":8:",
                "`resp/p` of `p` is also a response topic it subscribes to",
            ],
        ),
        (
            "will ack topic is the request topic",
            format!(
                "{HEAD}  - kind: sensor\n    id: s\n    will: {{response_topic: \"cmnd/{{id}}/get\"}}\n"
            ),
            Invalid,
            [
                "devices[0].will.response_topic",
                ":5:",
                "`cmnd/s/get` of `s` is also its request topic",
            ],
        ),
        (
            "user property with NUL",
            dev("    will:\n      user_properties: {a: \"x\\0y\"}\n"),
            Invalid,
            ["devices[0].will.user_properties.a", ":6:", "x\\0y"],
        ),
        (
            "consume_wills misplaced #",
            dev("    consume_wills: a/#/b\n"),
            Invalid,
            [
                "devices[0].consume_wills",
                ":5:20:",
                "`a/#/b` misplaces `#`",
            ],
        ),
        (
            "consume_wills misplaced +",
            dev("    consume_wills: [ok/+, c+]\n"),
            Invalid,
            [
                "devices[0].consume_wills[1]",
                ":5:27:",
                "`c+` misplaces `+`",
            ],
        ),
        (
            "consume_wills empty filter",
            dev("    consume_wills: {topics: [\"\"]}\n"),
            Invalid,
            [
                "devices[0].consume_wills.topics[0]",
                ":5:",
                "topic filter must not be empty",
            ],
        ),
        (
            "consume_wills empty list",
            dev("    consume_wills: []\n"),
            Invalid,
            ["devices[0].consume_wills", ":5:", "must not be empty"],
        ),
        (
            "consume_wills unquoted #",
            dev("    consume_wills: #\n"),
            Invalid,
            ["devices[0].consume_wills", ":5:", "quote it, \"#\""],
        ),
        (
            "consume_wills without topics",
            dev("    consume_wills: {ack_delay: 1s}\n"),
            Invalid,
            [
                "devices[0].consume_wills.topics",
                ":5:",
                "missing required field `topics`",
            ],
        ),
        (
            "consume_wills unknown variable",
            dev("    consume_wills: s/{nope}\n"),
            Invalid,
            ["devices[0].consume_wills", ":5:", "{nope}"],
        ),
        (
            "ack_drop above 1",
            dev("    consume_wills: {topics: s/+, ack_drop: 1.5}\n"),
            Invalid,
            ["devices[0].consume_wills.ack_drop", ":5:44:", "got 1.5"],
        ),
        (
            "ack_drop NaN",
            dev("    consume_wills: {topics: s/+, ack_drop: .nan}\n"),
            Invalid,
            ["devices[0].consume_wills.ack_drop", ":5:", "got NaN"],
        ),
        (
            "ack_delay",
            dev("    consume_wills: {topics: s/+, ack_delay: soon}\n"),
            Invalid,
            ["devices[0].consume_wills.ack_delay", ":5:", "soon"],
        ),
        (
            "consume_wills unknown key",
            dev("    consume_wills: {topics: s/+, drop: 1}\n"),
            Yaml,
            ["drop", "line 5", "ack_drop"],
        ),
        (
            "consume_wills wrong type",
            dev("    consume_wills: 5\n"),
            Yaml,
            ["line 5", "integer", "a topic filter"],
        ),
        (
            "will_ack_timeout 0",
            format!("will_ack_timeout: 0s\n{HEAD}  - {{kind: light, id: l}}\n"),
            Invalid,
            ["will_ack_timeout", ":1:19:", "0s"],
        ),
        (
            "fault unknown field",
            fault("  - {kind: kill, target: l, at: 1s, down_for: 1s, for: 2s}\n"),
            Yaml,
            ["for", "line 10", "down_for"],
        ),
        (
            "fault kind",
            fault("  - {kind: crash, target: l, at: 1s, down_for: 1s}\n"),
            Invalid,
            ["faults[0].kind", ":10:12:", "got `crash`"],
        ),
        (
            "fault without kind",
            fault("  - {target: l, at: 1s, down_for: 1s}\n"),
            Invalid,
            ["faults[0].kind", ":10:", "missing required field `kind`"],
        ),
        (
            "fault without target",
            fault("  - {kind: kill, at: 1s, down_for: 1s}\n"),
            Invalid,
            [
                "faults[0].target",
                ":10:",
                "missing required field `target`",
            ],
        ),
        (
            "fault target matches nothing",
            stall("lamp-*", "5s"),
            Invalid,
            [
                "faults[0].target",
                ":11:13:",
                "target `lamp-*` matches no device id in this fleet",
            ],
        ),
        (
            "fault target bad char",
            stall("\"l/1\"", "5s"),
            Invalid,
            ["faults[0].target", ":11:", "`l/1` contains `/`"],
        ),
        (
            "fault without schedule",
            fault("  - {kind: kill, target: l, down_for: 1s}\n"),
            Invalid,
            ["faults[0]", ":10:", "needs `at` (fire once) or `every`"],
        ),
        (
            "fault at and every",
            fault("  - {kind: kill, target: l, at: 1s, every: 2s, down_for: 1s}\n"),
            Invalid,
            [
                "faults[0].every",
                ":10:",
                "either `at` or `every`, not both",
            ],
        ),
        (
            "fault after the run",
            fault("  - {kind: kill, target: l, at: 12s, down_for: 1s}\n"),
            Invalid,
            [
                "faults[0].at",
                ":10:",
                "fault at 12s would fire after the run ends at 10s",
            ],
        ),
        (
            "fault every run",
            fault("  - {kind: kill, target: l, every: 10s, down_for: 1s}\n"),
            Invalid,
            [
                "faults[0].every",
                ":10:",
                "fault every 10s would never fire: the run ends at 10s",
            ],
        ),
        (
            "fault every 0",
            fault("  - {kind: kill, target: l, every: 0s, down_for: 1s}\n"),
            Invalid,
            ["faults[0].every", ":10:", "got `0s`"],
        ),
        (
            "fault without down_for",
            fault("  - {kind: kill, target: l, at: 1s}\n"),
            Invalid,
            [
                "faults[0].down_for",
                ":10:",
                "missing required field `down_for`",
            ],
        ),
        (
            "fault down_for 0",
            fault("  - {kind: kill, target: l, at: 1s, down_for: 0s}\n"),
            Invalid,
            ["faults[0].down_for", ":10:", "got `0s`"],
        ),
        (
            "stall shorter than 1.5 x keepalive",
            stall("l", "2s"),
            Invalid,
            [
                "faults[0].down_for",
                ":13:15:",
                "stall needs down_for longer than 1.5 x keepalive (3s for l), got 2s",
            ],
        ),
        (
            "stall of exactly 1.5 x keepalive",
            stall("l", "3s"),
            Invalid,
            ["faults[0].down_for", ":13:", "(3s for l), got 3s"],
        ),
        (
            "stall without keepalive",
            format!(
                "{HEAD}  - {{kind: light, id: l, keepalive: 0s}}\nfaults:\n  - {{kind: stall, target: l, at: 1s, down_for: 9s}}\n"
            ),
            Invalid,
            ["faults[0].target", ":5:", "stall of l needs keepalive > 0"],
        ),
        (
            "flap shorter than the Will Delay",
            flap("l", "3s"),
            Invalid,
            [
                "faults[0].target",
                ":11:13:",
                "flap of l needs will.delay of at least 4s (down_for 3s + 1s), got 2s",
            ],
        ),
        (
            "flap without will",
            flap("s", "1s"),
            Invalid,
            [
                "faults[0].target",
                ":11:",
                "flap of s needs a `will` with delay of at least 2s",
            ],
        ),
        (
            "flap outliving the session",
            format!(
                "{HEAD}  - {{kind: light, id: l, session_expiry: 2s, will: {{delay: 9s}}}}\nfaults:\n  - {{kind: flap, target: l, at: 1s, down_for: 2s}}\n"
            ),
            Invalid,
            [
                "faults[0].target",
                ":5:",
                "flap of l needs session_expiry of at least 3s",
            ],
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
            FleetError::Read { .. } | FleetError::TooLarge { .. } => {
                panic!("{case}: unexpected read error")
            }
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
    assert!(cases.len() >= 90);
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

    // Phones that share one target list cost one list, however many they are.
    let yaml = format!(
        "{HEAD}  - {{kind: light, id: \"l{{n}}\", count: 2000}}\n  - {{kind: phone, id: \"p{{n}}\", count: 2000, targets: [\"*\"]}}\n"
    );
    let f = parse(&yaml, "t").expect("a shared list is cheap");
    let (first, last) = (phone(&f.devices[2000]), phone(&f.devices[3999]));
    assert_eq!(first.targets.devices.len(), 2000);
    assert!(std::sync::Arc::ptr_eq(
        &first.targets.devices,
        &last.targets.devices
    ));
    // A Response Topic per target is made per phone: that is what is counted.
    let yaml = yaml.replace("targets:", "response_topic: \"r/{id}/{target}\", targets:");
    let Err(err) = parse(&yaml, "t") else {
        panic!("4 million Response Topics should be refused");
    };
    let err = err.to_string();
    assert!(
        err.contains("devices[1].targets") && err.contains("4000000"),
        "{}",
        &err[..err.len().min(500)]
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
    let alphabet: Vec<char> = "{}[]:-*#+ \n\"'0123456789nsmx&|>".chars().collect();
    for round in 0..800 {
        let base = if round % 2 == 0 { HOME } else { WILLS };
        let mut chars: Vec<char> = base.chars().collect();
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
    let p = targets(&home, phone(device(&home, "phone")));
    assert_eq!(p[0].device.as_deref(), Some("light-in-bedroom"));
    assert_eq!(p[0].request_topic, "cmnd/light-in-bedroom/power");
    assert_eq!(p[0].response_topic, "state/light-in-bedroom/power");
    let tablet = targets(&home, phone(device(&home, "tablet")));
    let asked: Vec<_> = tablet.iter().map(|t| t.request_topic.as_str()).collect();
    assert_eq!(asked, ["cmnd/sensor-1/get", "cmnd/sensor-2/get"]);

    let multi = fleet(include_str!("../../fleets/multi.yaml"));
    assert_eq!(multi.devices.len(), 7);
    let p = targets(&multi, phone(device(&multi, "phone-4")));
    assert_eq!(p.len(), 3);
    assert_eq!(p[2].response_topic, "home/replies/phone-4");
    assert_eq!(p[2].request_topic, "home/light-3/set");
}

/// Wills, their consumers and faults. Devices in fleet order: light-1 (0), light-2 (1),
/// sensor (2), plain (3), phone-1 (4), phone-2 (5), hub (6), watcher (7).
const WILLS: &str = r##"
name: wills
duration: 20s
will_ack_timeout: 2s
devices:
  - kind: light
    id: light-{n}
    count: 2
    keepalive: 2s
    will:
      topic: home/{id}/status
      payload: '{"id":"{id}","n":{n},"status":"gone"}'
      qos: 2
      retain: true
      delay: 5s
      message_expiry: 1m
      user_properties: {reason: power-loss, attempt: 1}
      response_topic: ack/{n}
  - kind: sensor
    id: sensor
    session_expiry: 10s
    will: {}
  - kind: light
    id: plain
  - kind: phone
    id: phone-{n}
    count: 2
    targets: ["light-*"]
    consume_wills: home/+/status
  - kind: phone
    id: hub
    request_topic: hub/cmd
    consume_wills: ["home/+/status", "status/#"]
  - kind: sensor
    id: watcher
    consume_wills: {topics: "status/{id}/+", ack_delay: 50ms, ack_drop: 0.25}
faults:
  - kind: kill
    target: light-1
    at: 3s
    down_for: 3s
  - kind: flap
    target: "light-*"
    every: 5s
    down_for: 4s
  - kind: stall
    target: "light-*"
    at: 1s
    down_for: 3500ms
  - kind: disconnect_with_will
    target: "*"
    at: 10s
    down_for: 1s
  - kind: disconnect
    target: "phone-*"
    at: 0s
    down_for: 1s
"##;

#[test]
fn wills_expand_their_templates_and_keep_property_order() {
    let f = fleet(WILLS);
    assert_eq!(f.will_ack_timeout, Duration::from_secs(2));
    assert_eq!(
        device(&f, "light-2").will,
        Some(Will {
            topic: "home/light-2/status".into(),
            payload: r#"{"id":"light-2","n":2,"status":"gone"}"#.into(),
            qos: Qos::ExactlyOnce,
            retain: true,
            delay: Duration::from_secs(5),
            message_expiry: Some(Duration::from_secs(60)),
            user_properties: vec![
                ("reason".into(), "power-loss".into()),
                ("attempt".into(), "1".into()),
            ],
            response_topic: "ack/2".into(),
        })
    );
}

#[test]
fn an_empty_or_null_will_takes_every_default() {
    let defaults = |id: &str| Will {
        topic: format!("status/{id}"),
        payload: format!(r#"{{"id":"{id}","status":"offline"}}"#),
        qos: Qos::AtLeastOnce,
        retain: false,
        delay: Duration::ZERO,
        message_expiry: None,
        user_properties: Vec::new(),
        response_topic: format!("will-ack/{id}"),
    };
    let f = fleet(WILLS);
    assert_eq!(device(&f, "sensor").will, Some(defaults("sensor")));
    // `will:` with nothing after it is a Will too, not a silently missing one.
    let f = fleet("name: n\ndevices:\n  - kind: light\n    id: l\n    will:\n");
    assert_eq!(f.devices[0].will, Some(defaults("l")));
}

#[test]
fn a_will_lengthens_the_default_session_expiry_only() {
    let f = fleet(WILLS);
    let expiry = |id: &str| device(&f, id).connection.session_expiry;
    // Default with a Will: 300s; a given value wins; no Will: the old default, 0.
    assert_eq!(expiry("light-1"), 300);
    assert_eq!(expiry("sensor"), 10);
    assert_eq!(expiry("plain"), 0);
    assert_eq!(expiry("hub"), 0);
    assert_eq!(device(&f, "plain").will, None);
}

#[test]
fn consume_wills_takes_a_filter_a_list_or_settings() {
    let f = fleet(WILLS);
    let consumer = |id: &str| device(&f, id).consume_wills.clone();
    assert_eq!(
        consumer("phone-2"),
        Some(WillConsumer {
            filters: vec!["home/+/status".into()],
            ack_delay: Duration::ZERO,
            ack_drop: 0.0,
        })
    );
    assert_eq!(
        consumer("hub"),
        Some(WillConsumer {
            filters: vec!["home/+/status".into(), "status/#".into()],
            ack_delay: Duration::ZERO,
            ack_drop: 0.0,
        })
    );
    assert_eq!(
        consumer("watcher"),
        Some(WillConsumer {
            filters: vec!["status/watcher/+".into()],
            ack_delay: Duration::from_millis(50),
            ack_drop: 0.25,
        })
    );
    assert_eq!(consumer("light-1"), None);
}

#[test]
fn faults_resolve_targets_to_device_indexes_in_fleet_order() {
    let f = fleet(WILLS);
    let summary: Vec<_> = f
        .faults
        .iter()
        .map(|x| (x.kind, x.schedule, x.targets.clone(), x.down_for))
        .collect();
    let s = Duration::from_secs;
    assert_eq!(
        summary,
        [
            (FaultKind::Kill, Schedule::At(s(3)), vec![0], s(3)),
            (FaultKind::Flap, Schedule::Every(s(5)), vec![0, 1], s(4)),
            (
                FaultKind::Stall,
                Schedule::At(s(1)),
                vec![0, 1],
                Duration::from_millis(3500)
            ),
            // Devices of every kind, with or without a Will.
            (
                FaultKind::DisconnectWithWill,
                Schedule::At(s(10)),
                (0..8).collect(),
                s(1)
            ),
            (FaultKind::Disconnect, Schedule::At(s(0)), vec![4, 5], s(1)),
        ]
    );
    for fault in &f.faults {
        for &i in &fault.targets {
            assert!(i < f.devices.len());
        }
    }
}

#[test]
fn a_fault_on_many_devices_reports_each_shortfall_once() {
    let yaml = format!(
        "{HEAD}  - {{kind: light, id: \"a{{n}}\", count: 3, keepalive: 2s}}\n  - {{kind: light, id: \"b{{n}}\", count: 3, keepalive: 10s}}\n  - {{kind: light, id: c, keepalive: 0s}}\nfaults:\n  - {{kind: stall, target: \"*\", at: 1s, down_for: 4s}}\n  - {{kind: flap, target: \"*\", at: 1s, down_for: 4s}}\n"
    );
    let Err(FleetError::Invalid { problems, .. }) = parse(&yaml, "t") else {
        panic!("expected Invalid");
    };
    let messages: Vec<_> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            // The stall names the device needing the longest down_for.
            "stall of c needs keepalive > 0 (a broker never times out a client without one), got 0s",
            "stall needs down_for longer than 1.5 x keepalive (15s for b1), got 4s",
            "flap of a1 (and 6 other targets) needs a `will` with delay of at least 5s (down_for 4s + 1s), it has none",
        ]
    );
}

#[test]
fn flap_rounds_its_need_up_to_whole_seconds() {
    let err = parse(
        &format!(
            "{HEAD}  - {{kind: light, id: l, will: {{delay: 3s}}}}\nfaults:\n  - {{kind: flap, target: l, at: 1s, down_for: 2500ms}}\n"
        ),
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("needs will.delay of at least 4s (down_for 2s 500ms + 1s), got 3s"),
        "{err}"
    );
    // Exactly down_for + 1s is enough.
    fleet(&format!(
        "{HEAD}  - {{kind: light, id: l, will: {{delay: 4s}}}}\nfaults:\n  - {{kind: flap, target: l, at: 1s, down_for: 3s}}\n"
    ));
}

#[test]
fn faults_are_checked_even_when_the_devices_are_bad() {
    // The bad kind still makes id `l`: the fault's target resolves, no second problem.
    let yaml = format!(
        "{HEAD}  - {{kind: lamp, id: l}}\nfaults:\n  - {{kind: kil, target: l, at: 1s, down_for: 1s}}\n"
    );
    let Err(FleetError::Invalid { problems, .. }) = parse(&yaml, "t") else {
        panic!("expected Invalid");
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["devices[0].kind", "faults[0].kind"]);
}

#[test]
fn faults_on_too_many_devices_are_refused() {
    let yaml = format!(
        "{HEAD}  - {{kind: light, id: \"l{{n}}\", count: 600000}}\nfaults:\n  - {{kind: kill, target: \"*\", at: 1s, down_for: 1s}}\n  - {{kind: kill, target: \"*\", at: 2s, down_for: 1s}}\n"
    );
    let err = parse(&yaml, "t").unwrap_err().to_string();
    assert!(
        err.contains("faults[1].target") && err.contains("(max 1000000)"),
        "{err}"
    );
}

#[test]
fn huge_fault_durations_fail_cleanly() {
    for down_for in ["500000000000years", "18446744073709551615s"] {
        let yaml = format!(
            "{HEAD}  - {{kind: light, id: l, will: {{delay: 1s}}}}\nfaults:\n  - {{kind: flap, target: l, at: 1s, down_for: {down_for}}}\n  - {{kind: stall, target: l, at: 1s, down_for: {down_for}}}\n"
        );
        // Any outcome but a panic; the flap cannot be satisfied.
        assert!(parse(&yaml, "t").is_err(), "{down_for}");
    }
}

#[test]
fn a_fault_racing_the_wills_due_time_is_refused() {
    let text = "name: race
duration: 10s
devices:
  - kind: light
    id: lamp
    keepalive: 2s
    will:
      delay: 3s
faults:
  - kind: kill
    target: lamp
    at: 1s
    down_for: 3s
  - kind: stall
    target: lamp
    at: 5s
    down_for: 6500ms
  - kind: kill
    target: lamp
    at: 8s
    down_for: 5s
";
    let err = parse(text, "race.yaml").unwrap_err().to_string();
    assert!(
        err.contains("race.yaml:11:13: faults[0].target: kill of lamp comes back after 3s, within a second of when its Will is due (3s)"),
        "{err}"
    );
    assert!(
        err.contains("at least 4s (Will published) or at most 2s (Will suppressed)"),
        "{err}"
    );
    // Stall: noticed after 3 s, plus the 3 s delay: due at 6 s.
    assert!(err.contains("faults[1].target: stall of lamp comes back after 6s 500ms, within a second of when its Will is due (6s)"), "{err}");
    assert!(
        !err.contains("faults[2]"),
        "5 s is clear of the 3 s due time: {err}"
    );
}

#[test]
fn load_models_parse_and_a_group_rate_staggers_its_phones() {
    let f = fleet(
        "name: r\nramp: 2/m\ndevices:\n  - { kind: light, id: l }\n  - { kind: phone, id: \"p-{n}\", count: 4, targets: [l], group_rate: 400/s }\n  - { kind: phone, id: q, targets: [l], rate: 30/m }\n  - { kind: phone, id: w, targets: [l], in_flight: 8 }\n",
    );
    assert_eq!(f.ramp, Some(2.0 / 60.0));
    let paces: Vec<Pace> = f.devices[1..].iter().map(|d| phone(d).pace).collect();
    assert_eq!(
        paces[1],
        Pace::Rate {
            per_second: 100.0,
            offset: Some(Duration::from_micros(2500))
        },
        "phone 2 of the group: 400/s over 4 phones, one group interval after phone 1"
    );
    assert_eq!(
        paces[4],
        Pace::Rate {
            per_second: 0.5,
            offset: None
        }
    );
    assert_eq!(paces[5], Pace::InFlight(8));
    assert_eq!(paces[5].offered_rate(), None);
    assert_eq!(paces[0].offered_rate(), Some(100.0));
}

#[test]
fn an_id_prefix_goes_in_front_of_client_ids_and_topics_but_targets_match_ids_as_written() {
    let f = fleet(
        "name: p\nid_prefix: run7-\ndevices:\n  - { kind: light, id: lamp, username: '{id}', will: {} }\n  - { kind: phone, id: phone, targets: [lamp] }\nfaults:\n  - { kind: kill, target: lamp, at: 1s, down_for: 2s }\n",
    );
    let lamp = &f.devices[0];
    assert_eq!(lamp.id, "run7-lamp");
    assert_eq!(
        lamp.connection.username.as_deref(),
        Some("lamp"),
        "accounts keep their names"
    );
    assert_eq!(lamp.will.as_ref().unwrap().topic, "status/run7-lamp");
    let Role::Phone(phone) = &f.devices[1].role else {
        panic!("phone");
    };
    let t = targets(&f, phone);
    assert_eq!(t[0].request_topic, "cmnd/run7-lamp/power");
    assert_eq!(t[0].device.as_deref(), Some("run7-lamp"));
    assert_eq!(f.faults[0].targets, [0]);
    assert_eq!(f.supervisor_id(), "run7-fleetsim-supervisor");
    for bad in ["a/b", "a+", "#", "a b", "\\x1bx"] {
        let text =
            format!("name: p\nid_prefix: \"{bad}\"\ndevices:\n  - {{ kind: light, id: lamp }}\n");
        let problems = crate::fleet::test_support::problems(&text);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("id_prefix may not contain")),
            "{bad:?}: {problems:?}"
        );
    }
}
