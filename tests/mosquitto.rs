//! Interoperability: the same fleets against a real Mosquitto on a free loopback port.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;

#[test]
fn home_fleet_on_mosquitto_matches_every_request() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let report = run_fleet(repo_fleet(
        "fleets/home.yaml",
        mosquitto.target(),
        Duration::from_secs(3),
    ));
    assert_adds_up(&report);
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.devices.connected, 5);
    let q = &report.requests;
    assert!(q.sent >= 2, "{q:?}");
    assert_eq!(q.matched, q.sent);
    assert_eq!(report.responders.answered, q.sent);
    assert!(report.telemetry.published >= 4);
}

#[test]
fn multi_fleet_on_mosquitto_keeps_answers_apart() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let report = run_fleet(repo_fleet(
        "fleets/multi.yaml",
        mosquitto.target(),
        Duration::from_secs(2),
    ));
    assert_adds_up(&report);
    assert!(report.ok, "{:?}", report.problems);
    let q = &report.requests;
    assert!(q.sent >= 12, "{q:?}");
    assert_eq!(q.matched, q.sent);
    assert_eq!((q.unmatched_responses, q.duplicate_responses), (0, 0));
}

#[test]
fn a_mosquitto_client_responder_is_matched() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let _responder = ShellResponder::start(mosquitto.port, "hub/+/cmd", r#"{"ok":true}"#);
    let mut fleet = fleet_from(
        r#"
name: third-party
duration: 2s
devices:
  - kind: phone
    id: phone-{n}
    count: 2
    request_topic: hub/{id}/cmd
    every: 150ms
    requests: 5
"#,
    );
    fleet.broker = mosquitto.target();
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    assert_eq!(report.requests.sent, 10);
    assert_eq!(report.requests.matched, 10, "{:?}", report.requests);
}

#[test]
fn devices_reconnect_after_the_broker_restarts() {
    let Some(mut mosquitto) = Mosquitto::start() else {
        return;
    };
    let fleet = repo_fleet(
        "fleets/multi.yaml",
        mosquitto.target(),
        Duration::from_secs(3),
    );
    let total = fleet.devices.len() as u64;
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(1200));
    mosquitto.restart(Duration::from_millis(300));
    let report = runner.join().expect("run thread");
    assert_adds_up(&report);
    // Every device lost its connection once and came back; the run says it was not clean.
    let d = &report.devices;
    assert_eq!((d.reconnects, d.unplanned_drops), (total, total), "{d:?}");
    assert_eq!(d.offline_at_end, 0, "{d:?}");
    assert!(d.disconnected_s > 0.0, "{d:?}");
    assert!(!report.ok);
    let q = &report.requests;
    // Requests keep being answered after the restart: 4 phones at ~3/s for 3 s, minus the few
    // caught by the outage (Mosquitto without persistence forgets them).
    assert!(q.matched >= 20, "{q:?}");
    assert!(q.timed_out <= 8, "{q:?}");
}

/// docs/backend-testing.md, step by step: with the example backend the run passes; without
/// it, it fails naming the expectations.
#[test]
fn the_backend_walkthrough_works_as_written() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let port = mosquitto.port.to_string();
    let backend = std::process::Command::new(repo_file("scripts/example-backend"))
        .arg(&port)
        .process_group(0)
        .spawn()
        .expect("start scripts/example-backend");
    let backend = KillGroup(backend);
    std::thread::sleep(Duration::from_millis(700));
    let run = |duration: &str| {
        common::fleetsim_command()
            .arg(repo_file("fleets/backend.yaml"))
            .args(["--broker", &mosquitto.url(), "--duration", duration, "-q"])
            .args(["--lang", "en"])
            .output()
            .expect("run fleetsim")
    };
    let out = run("5s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok   success_rate >= 0.85"), "{stdout}");
    assert!(
        stdout.contains("no_response_topic: sent without Response Topic"),
        "{stdout}"
    );

    // Step 5: SIGTERM ends the backend's whole pipeline, as `kill %2` does.
    let pid = backend.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    std::thread::sleep(Duration::from_millis(500));
    let left = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!("mosquitto_sub.*-p {port} -i example-backend"),
        ])
        .output()
        .expect("pgrep");
    assert!(
        left.stdout.is_empty(),
        "the backend's mosquitto_sub is still there"
    );
    drop(backend);
    // Long enough for the file's faults (at 3s): a shorter --duration is refused.
    let out = run("4s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("expected success_rate >= 0.85, got 0"),
        "{stdout}"
    );

    // A backend that answers, with errors: caught, and shown as failed tests in JUnit.
    let broken = std::process::Command::new(repo_file("scripts/example-backend"))
        .args([&port, "--broken"])
        .process_group(0)
        .spawn()
        .expect("start scripts/example-backend --broken");
    let _broken = KillGroup(broken);
    std::thread::sleep(Duration::from_millis(700));
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("fleet.xml");
    let out = common::fleetsim_command()
        .arg(repo_file("fleets/backend.yaml"))
        .args(["--broker", &mosquitto.url(), "-q", "--junit"])
        .arg(&junit)
        .args(["--lang", "en"])
        .output()
        .expect("run fleetsim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok   success_rate >= 0.85"), "{stdout}");
    assert!(stdout.contains("FAIL error_answers == 0"), "{stdout}");
    assert!(stdout.contains("FAIL bad_answers == 0"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("the JUnit file");
    assert!(
        xml.contains(r#"<testcase name="expect: error_answers == 0""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"message="expected bad_answers == 0, got "#),
        "{xml}"
    );
}

#[test]
fn a_request_with_a_wildcard_response_topic_is_not_answered_and_loops_nothing() {
    // Mosquitto forwards a request whose Response Topic has a wildcard. Publishing there would
    // get the light thrown out, and its session would resend the answer on every reconnect.
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let mut fleet =
        fleet_from("name: wild\nduration: 2s\ndevices:\n  - { kind: light, id: lamp }\n");
    fleet.broker = mosquitto.target();
    let port = mosquitto.port;
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(700));
    mosquitto_pub(
        port,
        &[
            "-t",
            "cmnd/lamp/power",
            "-m",
            "ON",
            "-D",
            "publish",
            "response-topic",
            "resp/x/#",
        ],
    );
    let report = runner.join().expect("run thread");
    assert_eq!(report.responders.received, 1);
    assert_eq!(report.responders.rejected, 1);
    assert_eq!(report.responders.answered, 0);
    assert_eq!(report.devices.reconnects, 0, "{:?}", report.devices);
}

#[test]
fn while_the_broker_is_dead_nothing_is_sent_and_the_run_is_not_ok() {
    let Some(mut mosquitto) = Mosquitto::start() else {
        return;
    };
    let mut fleet = fleet_from(
        r#"
name: outage
duration: 4s
devices:
  - { kind: sensor, id: "sensor-{n}", count: 3, every: 100ms }
  - { kind: light, id: lamp }
  - { kind: phone, id: phone, targets: [lamp], every: 100ms, timeout: 1s }
"#,
    );
    fleet.broker = mosquitto.target();
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(1000));
    mosquitto.restart(Duration::from_millis(1500));
    let report = runner.join().expect("run thread");
    assert_adds_up(&report);
    let d = &report.devices;
    assert_eq!((d.unplanned_drops, d.reconnects), (5, 5), "{d:?}");
    assert_eq!(d.drops_by_reason.get("broker_closed"), Some(&5), "{d:?}");
    // Five devices down for at least the 1.5 s the broker was.
    assert!(d.disconnected_s >= 5.0 * 1.4, "{d:?}");
    // Readings and requests due meanwhile were skipped, not counted as published or sent:
    // 3 sensors and a phone at 10 a second, over about 1.5 s.
    let t = &report.telemetry;
    assert!(t.skipped_offline >= 30, "{t:?}");
    assert!(
        report.requests.skipped_offline >= 10,
        "{:?}",
        report.requests
    );
    assert!(t.published + t.skipped_offline <= 3 * 40 + 3, "{t:?}");
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("5 broker_closed")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_message_over_the_devices_maximum_packet_size_is_not_sent_to_it() {
    // fleetsim announces its read limit (1 MiB) in CONNECT: Mosquitto must not forward a
    // larger message to it. Were it sent, the light would drop the connection, and with a
    // session the broker would redeliver it on every reconnect.
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let mut fleet = fleet_from(
        "name: big\nduration: 2s\ndevices:\n  - { kind: light, id: lamp, session_expiry: 60s }\n",
    );
    fleet.broker = mosquitto.target();
    let port = mosquitto.port;
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).expect("write a 2 MiB payload");
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(700));
    let big = big.to_string_lossy().into_owned();
    mosquitto_pub(port, &["-t", "cmnd/lamp/power", "-f", &big]);
    mosquitto_pub(port, &["-t", "cmnd/lamp/power", "-m", "ON"]);
    let report = runner.join().expect("run thread");
    let d = &report.devices;
    assert_eq!((d.reconnects, d.unplanned_drops), (0, 0), "{d:?}");
    assert_eq!(report.responders.received, 1, "only the small command");
    assert!(report.ok, "{:?}", report.problems);
}

/// Two runs of the same fleet on one broker at once, with these id prefixes.
fn two_runs(prefixes: [&str; 2]) -> Vec<fleetsim::report::Report> {
    let Some(mosquitto) = Mosquitto::start() else {
        return Vec::new();
    };
    let runs: Vec<_> = prefixes
        .iter()
        .map(|prefix| {
            let mut fleet = fleet_from(&format!(
                "name: twin\nduration: 2s\nid_prefix: \"{prefix}\"\ndevices:\n  - {{ kind: light, id: lamp }}\n  - {{ kind: phone, id: phone, targets: [lamp], every: 100ms }}\n"
            ));
            fleet.broker = mosquitto.target();
            std::thread::spawn(move || run_fleet(fleet))
        })
        .collect();
    runs.into_iter()
        .map(|r| r.join().expect("run thread"))
        .collect()
}

#[test]
fn two_runs_with_the_same_client_ids_take_each_others_sessions_and_both_say_so() {
    // Mosquitto 2.0 closes the older connection without DISCONNECT 0x8E (the embedded broker
    // sends it: see tests/embedded.rs), so here the takeovers count as `broker_closed`.
    for report in two_runs(["", ""]) {
        assert!(!report.ok, "{:?}", report.devices);
        assert!(report.devices.unplanned_drops >= 1, "{:?}", report.devices);
    }
}

#[test]
fn two_runs_with_their_own_id_prefixes_share_a_broker_cleanly() {
    for report in two_runs(["a-", "b-"]) {
        assert_adds_up(&report);
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!(report.requests.unmatched_responses, 0);
        assert!(report.requests.matched >= 10, "{:?}", report.requests);
    }
}

/// Sockets of `source` (an IPv4 address) in TIME_WAIT, from /proc/net/tcp.
fn time_wait_from(source: std::net::Ipv4Addr) -> usize {
    let local = format!("{:08X}:", u32::from_le_bytes(source.octets()));
    std::fs::read_to_string("/proc/net/tcp")
        .expect("read /proc/net/tcp")
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].starts_with(&local) && fields[3] == "06"
        })
        .count()
}

/// The side that closes a connection first keeps its port in TIME_WAIT for a minute: if that
/// were fleetsim, a second large run on the same broker within the minute would find the
/// ephemeral ports taken. After the goodbye DISCONNECT the broker closes first.
#[test]
fn after_the_goodbye_the_broker_closes_first_so_no_port_is_left_in_time_wait() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    // A source address of this test's own (from the broker's port), so other tests' sockets
    // are not counted.
    let [hi, lo] = mosquitto.port.to_be_bytes().map(|b| b.max(1));
    let source = std::net::Ipv4Addr::new(127, 0, hi, lo);
    let mut fleet = fleet_from(&format!(
        r#"
name: goodbye
duration: 1s
source_addresses: ["{source}"]
devices:
  - {{ kind: light, id: "light-{{n}}", count: 10 }}
  - {{ kind: phone, id: "phone-{{n}}", count: 10, targets: ["light-{{n}}"], every: 200ms }}
"#
    ));
    fleet.broker = mosquitto.target();
    let report = run_fleet(fleet);
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.devices.connected, 20);
    assert_eq!(time_wait_from(source), 0);
}
