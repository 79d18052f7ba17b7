//! Response Information and access control: users, passwords, ACLs, and what is refused.

mod common;

use std::time::Duration;

use common::*;
use fleetsim::report::Report;

/// The response-info demo's two phones, side by side: phone-ri's requests are all matched;
/// phone-guess's made-up Response Topic never gets an answer.
fn assert_refused_and_allowed_side_by_side(report: &Report) {
    assert_adds_up(report);
    let q = &report.requests;
    assert!(q.matched >= 2, "{q:?}");
    assert_eq!(
        q.matched * 2,
        q.sent,
        "half the requests are phone-ri's: {q:?}"
    );
    assert!(!report.ok);
}

/// A broker that refuses the subscription says so (SUBACK 0x87): phone-guess's requests then
/// fail at once, never sent, instead of timing out.
fn assert_made_up_topic_refused_visibly(report: &Report) {
    let q = &report.requests;
    assert_eq!((q.failed, q.timed_out), (q.matched, 0), "{q:?}");
    let r = &report.refusals;
    assert_eq!((r.connect, r.subscribe, r.publish), (0, 1, 0), "{r:?}");
    let refusal = &r.events[0];
    assert_eq!(refusal.device, "phone-guess");
    assert_eq!(refusal.what, "subscribe");
    assert_eq!(refusal.topic.as_deref(), Some("replies/phone-guess"));
    assert!(refusal.reason.contains("0x87"), "{refusal:?}");
}

#[test]
fn response_information_is_received_and_used_and_a_made_up_topic_is_refused() {
    let report = run_fleet(repo_fleet(
        "fleets/response-info.yaml",
        embedded(),
        Duration::from_secs(2),
    ));
    assert_refused_and_allowed_side_by_side(&report);
    assert_made_up_topic_refused_visibly(&report);
    let ri = &report.response_info;
    assert_eq!((ri.requested, ri.received, ri.fallback), (1, 1, 0));
    assert_eq!(ri.devices[0].device, "phone-ri");
    assert_eq!(ri.devices[0].received.as_deref(), Some("resp/"));
    assert_eq!(ri.devices[0].topics, ["resp/phone-ri"]);
}

#[test]
fn on_mosquitto_the_fallback_prefix_is_used_and_counted() {
    let Some(mosquitto) = Mosquitto::start_with(|dir, _| mosquitto_users_and_acl(dir)) else {
        return;
    };
    let report = run_fleet(repo_fleet(
        "fleets/response-info.yaml",
        mosquitto.target(),
        Duration::from_secs(2),
    ));
    assert_refused_and_allowed_side_by_side(&report);
    // Mosquitto 2.0 grants a subscription its ACL denies (SUBACK 0x00) and then delivers
    // nothing, so phone-guess's requests go out and time out. The refusal shows one hop later:
    // the lamp's answers to that topic get PUBACK 0x87.
    let q = &report.requests;
    assert_eq!((q.failed, q.timed_out), (0, q.matched), "{q:?}");
    let r = &report.refusals;
    assert_eq!((r.subscribe, r.publish), (0, q.timed_out), "{r:?}");
    assert_eq!(r.events[0].device, "lamp");
    assert_eq!(r.events[0].topic.as_deref(), Some("replies/phone-guess"));
    assert!(r.events[0].reason.contains("0x87"), "{r:?}");
    let ri = &report.response_info;
    assert_eq!((ri.requested, ri.received, ri.fallback), (1, 0, 1));
    assert_eq!(ri.devices[0].topics, ["resp/phone-ri"]);
}

#[test]
fn a_publish_the_acl_forbids_fails_its_request_with_the_reason() {
    let fleet = fleet_from(
        r#"
name: no-commands
duration: 1s
broker:
  embedded:
    users: [{ name: phone, password: p }, { name: lamp, password: l }]
    acl:
      - { user: "*", topic: "resp/%u", access: readwrite }
      - { user: lamp, topic: "cmnd/#", access: read }
devices:
  - kind: light
    id: lamp
    username: lamp
    password: l
  - kind: phone
    id: phone
    username: phone
    password: p
    targets: [lamp]
    every: 200ms
    requests: 3
"#,
    );
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    assert_eq!(report.requests.sent, 3);
    assert_eq!(report.requests.failed, 3, "{:?}", report.requests);
    let r = &report.refusals;
    assert_eq!(r.publish, 3, "{r:?}");
    assert_eq!(r.events[0].topic.as_deref(), Some("cmnd/lamp/power"));
    assert_eq!(r.by_reason.values().sum::<u64>(), 3);
}

fn fleetsim_with_env(fleet: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    std::fs::write(&path, fleet).unwrap();
    let mut command = common::fleetsim_command();
    command.arg(&path).arg("-q");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run fleetsim")
}

const LOCKED: &str = r#"
name: locked
duration: 1s
broker:
  embedded:
    users: [{ name: lamp, password: "${FLEETSIM_TEST_LAMP_PASSWORD}" }]
devices:
  - kind: light
    id: lamp
    username: lamp
    password: "${FLEETSIM_TEST_DEVICE_PASSWORD}"
"#;

#[test]
fn passwords_from_the_environment_let_a_device_in() {
    let out = fleetsim_with_env(
        LOCKED,
        &[
            ("FLEETSIM_TEST_LAMP_PASSWORD", "s3cret-from-env"),
            ("FLEETSIM_TEST_DEVICE_PASSWORD", "s3cret-from-env"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
}

#[test]
fn a_wrong_password_exits_3_with_a_clear_message_and_no_secret() {
    let out = fleetsim_with_env(
        LOCKED,
        &[
            ("FLEETSIM_TEST_LAMP_PASSWORD", "the-right-one"),
            ("FLEETSIM_TEST_DEVICE_PASSWORD", "a-wrong-one"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("refused the connection"), "{stderr}");
    assert!(stderr.contains("lamp"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:"), "{stderr}");
    assert!(
        !stderr.contains("the-right-one") && !stderr.contains("a-wrong-one"),
        "{stderr}"
    );
}

#[test]
fn a_missing_environment_variable_exits_2_naming_it() {
    let out = fleetsim_with_env(LOCKED, &[("FLEETSIM_TEST_LAMP_PASSWORD", "x")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FLEETSIM_TEST_DEVICE_PASSWORD"), "{stderr}");
}

/// A Mosquitto listening with TLS only, and the CA files to trust it (or not).
fn mosquitto_with_tls() -> Option<(Mosquitto, Pki)> {
    let mut pki = None;
    let mosquitto = Mosquitto::start_with(|dir, _| {
        let files = Pki::write_to(dir);
        let conf = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            files.ca.display(),
            files.server_cert.display(),
            files.server_key.display()
        );
        pki = Some(files);
        conf
    })?;
    Some((mosquitto, pki.expect("PEM files written")))
}

#[test]
fn requests_go_through_mosquitto_over_tls() {
    let Some((mosquitto, pki)) = mosquitto_with_tls() else {
        return;
    };
    let report_path = tempfile::NamedTempFile::new().unwrap();
    let out = common::fleetsim_command()
        .arg(common::repo_file("fleets/home.yaml"))
        .args(["--broker", &format!("mqtts://127.0.0.1:{}", mosquitto.port)])
        .arg("--ca-file")
        .arg(&pki.ca)
        .args(["--duration", "2s", "-q", "--report"])
        .arg(report_path.path())
        .output()
        .expect("run fleetsim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_path.path()).unwrap()).unwrap();
    assert!(json["broker"].as_str().unwrap().starts_with("mqtts://"));
    let sent = json["requests"]["sent"].as_u64().unwrap();
    assert!(sent >= 2);
    assert_eq!(json["requests"]["matched"].as_u64(), Some(sent));
}

#[test]
fn a_broker_certificate_from_an_unknown_ca_fails_clearly_with_exit_3() {
    let Some((mosquitto, pki)) = mosquitto_with_tls() else {
        return;
    };
    let out = common::fleetsim_command()
        .arg(common::repo_file("fleets/home.yaml"))
        .args(["--broker", &format!("mqtts://127.0.0.1:{}", mosquitto.port)])
        .arg("--ca-file")
        .arg(&pki.other_ca)
        .arg("-q")
        .output()
        .expect("run fleetsim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("TLS handshake"), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", mosquitto.port)),
        "{stderr}"
    );
}

#[test]
fn a_missing_ca_file_exits_2_naming_it() {
    let broker = format!("mqtts://127.0.0.1:{}", free_port());
    let out = common::fleetsim_command()
        .arg(common::repo_file("fleets/home.yaml"))
        .args(["--broker", &broker, "--ca-file", "/no/such/ca.pem", "-q"])
        .output()
        .expect("run fleetsim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/no/such/ca.pem"), "{stderr}");
}

/// The passwords and pattern ACL of the response-info demo, for Mosquitto: each user may use
/// only its own resp/<user>; the lamp may answer anyone.
fn mosquitto_users_and_acl(dir: &std::path::Path) -> String {
    let passwords = password_file(
        dir,
        &[
            ("lamp", "lamp-secret"),
            ("phone-ri", "ri-secret"),
            ("phone-guess", "guess-secret"),
        ],
    );
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "pattern readwrite resp/%u\npattern readwrite cmnd/#\nuser lamp\ntopic write resp/#\n",
    )
    .expect("write acl");
    format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        passwords.display(),
        acl.display()
    )
}

#[test]
fn the_response_info_requests_work_on_mosquitto_over_tls_with_credentials_through_the_fallback() {
    let mut ca = None;
    let Some(mosquitto) = Mosquitto::start_with(|dir, _| {
        let files = Pki::write_to(dir);
        let tls = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            files.ca.display(),
            files.server_cert.display(),
            files.server_key.display()
        );
        ca = Some(files.ca);
        tls + &mosquitto_users_and_acl(dir)
    }) else {
        return;
    };
    let mut fleet = repo_fleet(
        "fleets/response-info.yaml",
        fleetsim::fleet::BrokerTarget::External {
            host: "127.0.0.1".into(),
            port: mosquitto.port,
            tls: true,
        },
        Duration::from_secs(2),
    );
    fleet.tls.ca_file = ca;
    let report = run_fleet(fleet);
    assert_refused_and_allowed_side_by_side(&report);
    let ri = &report.response_info;
    assert_eq!((ri.requested, ri.received, ri.fallback), (1, 0, 1));
    assert_eq!(ri.devices[0].topics, ["resp/phone-ri"]);
    assert!(report.broker.starts_with("mqtts://"), "{}", report.broker);
}

/// The YAML block that follows `<!-- tested: NAME -->` in docs/fleet-format.md.
fn doc_example(name: &str) -> String {
    let doc = std::fs::read_to_string(repo_file("docs/fleet-format.md")).unwrap();
    let marker = format!("<!-- tested: {name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {marker} in docs/fleet-format.md"))
        .1;
    let block = after
        .trim_start()
        .strip_prefix("```yaml\n")
        .unwrap_or_else(|| panic!("{marker} is not followed by a ```yaml block"));
    block
        .split_once("\n```")
        .expect("the block is closed")
        .0
        .to_string()
}

#[test]
fn the_access_control_example_in_the_docs_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("locked-down.yaml");
    std::fs::write(&fleet, doc_example("access-control")).unwrap();
    let report = dir.path().join("report.json");
    let out = common::fleetsim_command()
        .arg(&fleet)
        .args(["-q", "--duration", "2s", "--report"])
        .arg(&report)
        .env("LAMP_PASSWORD", "lamp-secret")
        .env("PHONE_PASSWORD", "phone-secret")
        .output()
        .expect("run fleetsim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["ok"], true, "{json:#}");
    let refusals = &json["refusals"];
    for what in ["connect", "subscribe", "publish"] {
        assert_eq!(refusals[what], 0, "{what}: {refusals:#}");
    }
    let q = &json["requests"];
    let n = |key: &str| q[key].as_u64().unwrap_or_else(|| panic!("requests.{key}"));
    assert!(n("sent") > 0, "{q:#}");
    assert_eq!(n("matched"), n("sent"), "{q:#}");
}
