//! Tests of access control, Response Information, TLS files and secrets in fleet files: what a
//! good file becomes, a table of bad files and their messages, and that no password ever shows
//! in an error or a debug print.
//!
//! Environment variables come from a closure (`parse_in`), never from `std::env::set_var`: tests
//! run in parallel threads of one process.

use std::env::VarError;
use std::path::PathBuf;

use super::*;

fn env(name: &str) -> Result<String, VarError> {
    match name {
        "ACCESS_T_PHONE" => Ok("pw-phone".to_string()),
        "ACCESS_T_SUFFIX" => Ok("sfx".to_string()),
        "ACCESS_T_EMPTY" => Ok(String::new()),
        _ => Err(VarError::NotPresent),
    }
}

fn parse_env(yaml: &str) -> Result<Fleet, FleetError> {
    let ctx = Context {
        base: None,
        env: &env,
        overrides: &super::Overrides::default(),
    };
    parse_in(yaml, "t.yaml", &ctx)
}

fn fleet(yaml: &str) -> Fleet {
    match parse_env(yaml) {
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

/// Devices: lamp (0), phone-1 (1), phone-2 (2).
const ACCESS: &str = r##"
name: access
broker:
  embedded:
    port: 1999
    response_information: "ri/"
    users:
      - { name: phone-1, password: "${ACCESS_T_PHONE}" }
      - { name: phone-2, password: "${ACCESS_T_PHONE}" }
      - { name: light, password: "lit-${ACCESS_T_SUFFIX}$" }
      - { name: nobody, password: "${ACCESS_T_EMPTY}" }
    acl:
      - { user: "*", topic: "ri/%u/#", access: readwrite }
      - { user: light, topic: "cmnd/+/power", access: read }
      - { user: phone-1, topic: "pre%u/x", access: write }
      - { user: nobody, topic: "#", access: deny }
tls:
  ca_file: certs/ca.pem
  cert_file: /etc/fleet/client.pem
  key_file: ./client.key
devices:
  - kind: light
    id: lamp
    username: light
    password: "lit-${ACCESS_T_SUFFIX}$"
  - kind: phone
    id: phone-{n}
    count: 2
    username: "{id}"
    password: "${ACCESS_T_PHONE}"
    request_response_info: true
    response_info_fallback: "fallback/"
    targets: [lamp]
    response_topic: "{response_info}{id}/{target}"
"##;

#[test]
fn embedded_users_acl_and_response_information_are_read() {
    let f = fleet(ACCESS);
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 1999 });
    let e = &f.embedded;
    assert_eq!(e.response_information.as_deref(), Some("ri/"));
    assert!(!e.allow_anonymous, "users given: anonymous off by default");
    let users: Vec<_> = e
        .users
        .iter()
        .map(|u| (u.name.as_str(), u.password.expose()))
        .collect();
    assert_eq!(
        users,
        [
            ("phone-1", "pw-phone"),
            ("phone-2", "pw-phone"),
            ("light", "lit-sfx$"),
            ("nobody", ""),
        ]
    );
    assert_eq!(
        e.acl[0],
        AclRule {
            user: "*".into(),
            topic: "ri/%u/#".into(),
            access: Access::ReadWrite,
        }
    );
    let access: Vec<_> = e.acl.iter().map(|r| r.access).collect();
    assert_eq!(
        access,
        [Access::ReadWrite, Access::Read, Access::Write, Access::Deny]
    );
}

#[test]
fn devices_get_their_login_and_response_information_settings() {
    let f = fleet(ACCESS);
    let lamp = &device(&f, "lamp").connection;
    assert_eq!(lamp.username.as_deref(), Some("light"));
    assert_eq!(lamp.password.as_ref().map(Secret::expose), Some("lit-sfx$"));
    assert!(!lamp.request_response_info);
    assert_eq!(lamp.response_info_fallback, "resp/");

    let phone = device(&f, "phone-2");
    let c = &phone.connection;
    assert_eq!(c.username.as_deref(), Some("phone-2"));
    assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw-phone"));
    assert!(c.request_response_info);
    assert_eq!(c.response_info_fallback, "fallback/");
    let Role::Phone(p) = &phone.role else {
        panic!("not a phone")
    };
    // Kept for the device to fill in after CONNACK.
    assert_eq!(
        &**p.targets.response_topic(0),
        "{response_info}phone-2/lamp"
    );
}

#[test]
fn tls_paths_stay_as_written_without_a_file_and_mqtts_defaults_to_8883() {
    let f = fleet(ACCESS);
    assert_eq!(
        f.tls,
        TlsFiles {
            ca_file: Some(PathBuf::from("certs/ca.pem")),
            cert_file: Some(PathBuf::from("/etc/fleet/client.pem")),
            key_file: Some(PathBuf::from("./client.key")),
        }
    );
    let f = fleet(
        "name: s\nbroker: mqtts://broker.example\ntls: {ca_file: ca.pem}\ndevices: [{kind: light, id: l}]\n",
    );
    assert_eq!(
        f.broker,
        BrokerTarget::External {
            host: "broker.example".into(),
            port: 8883,
            tls: true,
        }
    );
    let f = fleet("name: s\nbroker: mqtt://h\ndevices: [{kind: light, id: l}]\n");
    assert_eq!(f.tls, TlsFiles::default());
    assert!(matches!(
        f.broker,
        BrokerTarget::External { tls: false, .. }
    ));
}

#[test]
fn load_resolves_tls_paths_against_the_fleet_files_directory() {
    let dir = std::env::temp_dir().join(format!("fleetsim-access-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secure.yaml");
    std::fs::write(
        &path,
        "name: s\nbroker: mqtts://h\ntls:\n  ca_file: ./certs/ca.pem\n  cert_file: /abs/c.pem\n  key_file: ../k.key\ndevices: [{kind: light, id: l}]\n",
    )
    .unwrap();
    let f = load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = std::path::absolute(&dir).unwrap();
    assert_eq!(f.tls.ca_file, Some(dir.join("certs/ca.pem")));
    assert_eq!(f.tls.cert_file, Some(PathBuf::from("/abs/c.pem")));
    assert_eq!(f.tls.key_file, Some(dir.join("../k.key")));
}

#[test]
fn anonymous_access_defaults_to_whether_there_are_users() {
    let light = "devices: [{kind: light, id: l}]\n";
    let f = fleet(&format!("name: a\n{light}"));
    assert_eq!(
        f.embedded,
        EmbeddedSettings {
            allow_anonymous: true,
            ..EmbeddedSettings::default()
        }
    );
    let f = fleet(&format!(
        "name: a\nbroker: {{embedded: {{port: 0}}}}\n{light}"
    ));
    assert!(f.embedded.allow_anonymous);
    let f = fleet(&format!(
        "name: a\nbroker: {{embedded: {{users: [{{name: u, password: p}}], allow_anonymous: true}}}}\n{light}"
    ));
    assert!(f.embedded.allow_anonymous);
    let f = fleet(&format!(
        "name: a\nbroker: {{embedded: {{allow_anonymous: false}}}}\n{light}"
    ));
    assert!(!f.embedded.allow_anonymous);
}

#[test]
fn user_names_are_only_checked_against_an_embedded_broker_with_users() {
    let device = "devices: [{kind: light, id: l, username: anyone, password: x}]\n";
    for broker in ["mqtt://h", "embedded", "{embedded: {port: 0}}"] {
        let f = fleet(&format!("name: a\nbroker: {broker}\n{device}"));
        assert_eq!(f.devices[0].connection.username.as_deref(), Some("anyone"));
    }
}

#[test]
fn process_environment_is_read_by_parse() {
    // A variable no environment sets: proves `parse` looks it up without setting one.
    let err = parse(
        "name: a\ndevices: [{kind: light, id: l, username: u, password: \"${FLEETSIM_SURELY_UNSET_7F3A}\"}]\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "devices[0].password: environment variable FLEETSIM_SURELY_UNSET_7F3A is not set"
        ),
        "{err}"
    );
}

/// One light, as the last line of a file.
const LIGHT: &str = "devices: [{kind: light, id: l}]\n";

/// (case, file, text the message must contain: field, `:line:`, message).
fn bad_files() -> Vec<(&'static str, String, [&'static str; 3])> {
    let embedded = |settings: &str| format!("name: t\nbroker:\n  embedded:\n{settings}{LIGHT}");
    let group = |fields: &str| format!("name: t\ndevices:\n  - kind: light\n    id: l\n{fields}");
    let phone = |fields: &str| {
        format!(
            "name: t\ndevices:\n  - kind: light\n    id: l\n  - kind: phone\n    id: p\n    targets: [l]\n{fields}"
        )
    };
    let users =
        "    users:\n      - {name: alice, password: a}\n      - {name: bob, password: b}\n";
    vec![
        (
            "missing environment variable",
            "name: t\ndevices:\n  - {kind: light, id: a}\n  - {kind: light, id: b}\n  - kind: phone\n    id: p\n    targets: [a]\n    username: p\n    password: \"${PHONE_PASSWORD}\"\n"
                .to_string(),
            [
                "devices[2].password",
                ":9:",
                "environment variable PHONE_PASSWORD is not set",
            ],
        ),
        (
            "missing variable in a user's password",
            embedded("    users: [{name: u, password: \"x${NOPE_1}\"}]\n"),
            [
                "broker.embedded.users[0].password",
                ":4:",
                "environment variable NOPE_1 is not set",
            ],
        ),
        (
            "unclosed variable",
            group("    username: u\n    password: \"${ACCESS_T_PHONE\"\n"),
            ["devices[0].password", ":6:", "is not closed by `}`"],
        ),
        (
            "duplicate user",
            embedded(
                "    users:\n      - {name: alice, password: a}\n      - {name: alice, password: b}\n",
            ),
            [
                "broker.embedded.users[1].name",
                ":6:",
                "duplicate user `alice`, also listed on line 5",
            ],
        ),
        (
            "the supervisor's account",
            embedded("    users: [{name: fleetsim-supervisor, password: mine}]\n"),
            [
                "broker.embedded.users[0].name",
                ":4:",
                "`fleetsim-supervisor` cannot be a user name: it is the account fleetsim gives its supervisor",
            ],
        ),
        (
            "user name with a slash",
            embedded("    users: [{name: a/b, password: x}]\n"),
            ["broker.embedded.users[0].name", ":4:", "contains `/`"],
        ),
        (
            "user name with a plus",
            embedded("    users: [{name: a+, password: x}]\n"),
            ["broker.embedded.users[0].name", ":4:", "contains `+`"],
        ),
        (
            "empty user name",
            embedded("    users: [{name: '', password: x}]\n"),
            ["users[0].name", ":4:", "user name must not be empty"],
        ),
        (
            "star as a user name",
            embedded("    users: [{name: '*', password: x}]\n"),
            ["users[0].name", ":4:", "`*` cannot be a user name"],
        ),
        (
            "user without a password",
            embedded("    users:\n      - {name: u}\n"),
            [
                "broker.embedded.users[0].password",
                ":5:",
                "missing required field `password`",
            ],
        ),
        (
            "unknown ACL user",
            embedded(&format!(
                "{users}    acl:\n      - {{user: carol, topic: \"x/#\", access: read}}\n"
            )),
            [
                "broker.embedded.acl[0].user",
                ":8:",
                "user `carol` is not among the embedded broker's users",
            ],
        ),
        (
            "bad ACL filter",
            embedded("    acl:\n      - {user: '*', topic: \"a/#/%u\", access: read}\n"),
            ["broker.embedded.acl[0].topic", ":5:", "misplaces `#`"],
        ),
        (
            "bad ACL access",
            embedded("    acl:\n      - {user: '*', topic: a, access: rw}\n"),
            [
                "broker.embedded.acl[0].access",
                ":5:",
                "access must be read, write, readwrite or deny, got `rw`",
            ],
        ),
        (
            "ACL rule without a topic",
            embedded("    acl:\n      - {user: '*', access: read}\n"),
            [
                "broker.embedded.acl[0].topic",
                ":5:",
                "missing required field `topic`",
            ],
        ),
        (
            "device user not among the users",
            format!(
                "name: t\nbroker:\n  embedded:\n{users}devices:\n  - kind: light\n    id: l\n    username: bob2\n"
            ),
            [
                "devices[0].username",
                ":10:",
                "user `bob2` is not among the embedded broker's users",
            ],
        ),
        (
            "expanded device user not among the users",
            format!(
                "name: t\nbroker:\n  embedded:\n{users}devices:\n  - kind: light\n    id: alice{{n}}\n    count: 3\n    username: \"{{id}}\"\n"
            ),
            [
                "devices[0].username",
                ":11:",
                "user `alice1` is not among the embedded broker's users",
            ],
        ),
        (
            "password without username",
            group("    password: x\n"),
            ["devices[0].password", ":5:", "a password needs a username"],
        ),
        (
            "empty username",
            group("    username: ''\n"),
            ["devices[0].username", ":5:", "username must not be empty"],
        ),
        (
            "username with an unknown variable",
            group("    username: \"{target}\"\n"),
            ["devices[0].username", ":5:", "`{target}` is only available"],
        ),
        (
            "fallback with a wildcard",
            group("    response_info_fallback: \"resp/+/\"\n"),
            [
                "devices[0].response_info_fallback",
                ":5:",
                "contains the wildcard `+`",
            ],
        ),
        (
            "fallback with NUL",
            group("    response_info_fallback: \"a\\0\"\n"),
            [
                "devices[0].response_info_fallback",
                ":5:",
                "contains a NUL character",
            ],
        ),
        (
            "response_information with a wildcard",
            embedded("    response_information: \"resp/#\"\n"),
            [
                "broker.embedded.response_information",
                ":4:",
                "contains the wildcard `#`",
            ],
        ),
        (
            "empty response_information",
            embedded("    response_information: ''\n"),
            [
                "broker.embedded.response_information",
                ":4:",
                "response_information must not be empty",
            ],
        ),
        (
            "{response_info} without request_response_info",
            phone("    response_topic: \"{response_info}{id}\"\n"),
            [
                "devices[1].response_topic",
                ":8:",
                "`{response_info}` needs request_response_info: true",
            ],
        ),
        (
            "{response_info} outside a phone's response_topic",
            group("    request_response_info: true\n    command_topic: \"{response_info}x\"\n"),
            [
                "devices[0].command_topic",
                ":6:",
                "`{response_info}` is only available in the response_topic of a phone",
            ],
        ),
        (
            "{response_info} with an empty fallback alone",
            phone(
                "    request_response_info: true\n    response_info_fallback: ''\n    response_topic: \"{response_info}\"\n",
            ),
            [
                "devices[1].response_topic",
                ":10:",
                "topic must not be empty (with `{response_info}` replaced by its fallback ``)",
            ],
        ),
        (
            "Will ack on the response topic as sent with the fallback",
            phone(
                "    request_response_info: true\n    response_topic: \"{response_info}{id}\"\n    will: {response_topic: resp/p}\n",
            ),
            [
                "devices[1].will.response_topic",
                ":10:",
                "is also a response topic it subscribes to",
            ],
        ),
        (
            "cert without key",
            format!(
                "name: t\ntls:\n  ca_file: ca.pem\n  cert_file: c.pem\n{LIGHT}"
            ),
            ["tls.cert_file", ":4:", "cert_file needs key_file too"],
        ),
        (
            "key without cert",
            format!("name: t\ntls: {{key_file: k.pem}}\n{LIGHT}"),
            ["tls.key_file", ":2:", "key_file needs cert_file too"],
        ),
        (
            "empty tls path",
            format!("name: t\ntls: {{ca_file: ''}}\n{LIGHT}"),
            ["tls.ca_file", ":2:", "path must not be empty"],
        ),
        (
            "mqtts without tls",
            format!("name: t\nbroker: mqtts://h\n{LIGHT}"),
            [
                "broker",
                ":2:9:",
                "mqtts:// needs tls.ca_file: fleetsim bundles no root certificates",
            ],
        ),
        (
            "mqtts with tls but no ca_file",
            format!(
                "name: t\nbroker: mqtts://h\ntls:\n  cert_file: c.pem\n  key_file: k.pem\n{LIGHT}"
            ),
            ["tls.ca_file", ":4:", "mqtts:// needs tls.ca_file"],
        ),
    ]
}

#[test]
fn bad_access_files_name_field_line_and_message() {
    for (case, yaml, needles) in bad_files() {
        let err = match parse_env(&yaml) {
            Ok(f) => panic!("{case}: expected an error, got {f:?}"),
            Err(e) => e,
        };
        assert!(
            matches!(err, FleetError::Invalid { .. }),
            "{case}: not a semantic error:\n{err}"
        );
        let text = err.to_string();
        for needle in needles {
            assert!(
                text.contains(needle),
                "{case}: `{needle}` missing from:\n{text}"
            );
        }
    }
}

#[test]
fn unknown_fields_in_the_new_mappings_are_yaml_errors() {
    for yaml in [
        "name: t\ntls: {ca: x}\ndevices: [{kind: light, id: l}]\n",
        "name: t\nbroker: {embedded: {userz: []}}\ndevices: [{kind: light, id: l}]\n",
        "name: t\nbroker: {embedded: {acl: [{user: a, topic: b, access: read, qos: 1}]}}\ndevices: [{kind: light, id: l}]\n",
        "name: t\ndevices: [{kind: light, id: l, request_response_info: maybe}]\n",
    ] {
        let err = parse_env(yaml).unwrap_err();
        assert!(matches!(err, FleetError::Yaml { .. }), "{yaml}: {err}");
    }
}

#[test]
fn every_access_problem_is_reported_at_once() {
    let yaml = "\
name: t
broker:
  embedded:
    users:
      - {name: a, password: \"${NOPE_A}\"}
      - {name: a/b, password: x}
    acl:
      - {user: zed, topic: \"#/x\", access: all}
devices:
  - kind: light
    id: l
    password: \"${NOPE_B}\"
";
    let Err(FleetError::Invalid { problems, .. }) = parse_env(yaml) else {
        panic!("expected Invalid");
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "broker.embedded.users[0].password",
            "broker.embedded.users[1].name",
            "broker.embedded.acl[0].user",
            "broker.embedded.acl[0].topic",
            "broker.embedded.acl[0].access",
            "devices[0].password",
            "devices[0].password",
        ]
    );
}

#[test]
fn passwords_never_show_in_errors_or_debug_output() {
    const SECRET: &str = "hunter2-literal";
    // Semantic problems on every line around the passwords.
    let yaml = format!(
        "name: t\nbroker:\n  embedded:\n    users:\n      - {{name: a/b, password: {SECRET}}}\n    acl: [{{user: zed, topic: x, access: all}}]\ndevices:\n  - kind: light\n    id: l\n    password: {SECRET}\n    qos: 9\n"
    );
    let err = parse_env(&yaml).unwrap_err();
    assert!(!err.to_string().contains(SECRET), "{err}");
    assert!(!format!("{err:?}").contains(SECRET), "{err:?}");

    // A YAML error next to a literal password: no snippet, the position only.
    let yaml = format!(
        "name: t\ndevices:\n  - kind: light\n    id: l\n    username: u\n    password: {SECRET}\n    colour: red\n"
    );
    let err = parse_env(&yaml).unwrap_err().to_string();
    assert!(!err.contains(SECRET), "{err}");
    assert!(
        err.contains("line 7, column 5") && err.contains("colour"),
        "{err}"
    );
    // Only `${VAR}` there: the snippet stays.
    let yaml = "name: t\ndevices:\n  - kind: light\n    id: l\n    username: u\n    password: ${X}\n    colour: red\n";
    let err = parse_env(yaml).unwrap_err().to_string();
    assert!(err.contains("password: ${X}"), "{err}");

    // A valid fleet with literal and environment passwords.
    let yaml = format!(
        "name: t\nbroker: {{embedded: {{users: [{{name: u, password: {SECRET}}}]}}}}\ndevices: [{{kind: light, id: l, username: u, password: \"${{ACCESS_T_PHONE}}\"}}]\n"
    );
    let f = fleet(&yaml);
    let debug = format!("{f:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("pw-phone"),
        "{debug}"
    );
    assert_eq!(f.embedded.users[0].password.expose(), SECRET);
}

#[test]
fn mutated_access_files_never_panic() {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "{}[]:-*#+$%/ \n\"'0123456789u\0".chars().collect();
    for _ in 0..600 {
        let mut chars: Vec<char> = ACCESS.chars().collect();
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
        if let Err(e) = parse_env(&text) {
            let shown = e.to_string();
            assert!(!shown.is_empty());
            assert!(
                !shown.contains("pw-phone") && !shown.contains("lit-sfx"),
                "{shown}"
            );
        }
    }
}

#[test]
fn the_supervisor_login_is_read_and_a_missing_user_name_is_a_problem() {
    use super::test_support::{fleet as valid, problems};
    let f = valid(
        "name: s\nsupervisor: { username: watcher, password: w }\ndevices: [{kind: light, id: l}]\n",
    );
    let login = f.supervisor.expect("a supervisor login");
    assert_eq!(login.username, "watcher");
    assert_eq!(
        login.password.map(|p| p.expose().to_owned()).as_deref(),
        Some("w")
    );
    let found = problems("name: s\nsupervisor: { password: w }\ndevices: [{kind: light, id: l}]\n");
    assert_eq!(
        found,
        ["2:13: supervisor: missing required field `username`"]
    );
}
