//! Tests of `${VAR}` and `${VAR:-default}` in the broker, user names, request topics and
//! targets: what a file becomes with its variables set or defaulted, and that an unset one is
//! one located problem naming it. The environment is a closure, never the process's.

use std::env::VarError;

use super::*;

fn env(name: &str) -> Result<String, VarError> {
    match name {
        "VARS_T_HOST" => Ok("broker.ci".to_string()),
        "VARS_T_APP" => Ok("app-7".to_string()),
        "VARS_T_WATCHER" => Ok("watcher".to_string()),
        "VARS_T_LAMP" => Ok("lamp".to_string()),
        "VARS_T_EMPTY" => Ok(String::new()),
        _ => Err(VarError::NotPresent),
    }
}

fn parse_with(yaml: &str, overrides: &Overrides) -> Result<Fleet, FleetError> {
    let ctx = Context {
        base: None,
        env: &env,
        overrides,
    };
    parse_in(yaml, "t.yaml", &ctx)
}

fn fleet(yaml: &str) -> Fleet {
    parse_with(yaml, &Overrides::default()).unwrap_or_else(|e| panic!("expected valid:\n{e}"))
}

fn problems(yaml: &str, overrides: &Overrides) -> Vec<String> {
    match parse_with(yaml, overrides) {
        Err(FleetError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn phone<'a>(fleet: &'a Fleet, id: &str) -> &'a Phone {
    match fleet.devices.iter().find(|d| d.id == id).map(|d| &d.role) {
        Some(Role::Phone(p)) => p,
        other => panic!("{id} is not a phone: {other:?}"),
    }
}

#[test]
fn broker_url_takes_variables_and_defaults() {
    let f = fleet(
        "name: t\nbroker: \"mqtt://${VARS_T_HOST}:${VARS_T_PORT:-1884}\"\ndevices: [{kind: light, id: l}]\n",
    );
    assert_eq!(
        f.broker,
        BrokerTarget::External {
            host: "broker.ci".into(),
            port: 1884,
            tls: false
        }
    );
    let f =
        fleet("name: t\nbroker: \"${VARS_T_UNSET:-embedded}\"\ndevices: [{kind: light, id: l}]\n");
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 0 });
    // Empty counts as unset for `:-`, as in the shell.
    let f =
        fleet("name: t\nbroker: \"${VARS_T_EMPTY:-embedded}\"\ndevices: [{kind: light, id: l}]\n");
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 0 });
}

#[test]
fn user_names_request_topics_and_targets_take_variables() {
    let f = fleet(
        "\
name: t
broker:
  embedded:
    users:
      - { name: \"${VARS_T_UNSET:-phone-user}\", password: p }
supervisor: { username: \"${VARS_T_WATCHER}\" }
devices:
  - { kind: light, id: lamp }
  - kind: phone
    id: p
    username: \"${VARS_T_UNSET:-phone-user}\"
    password: p
    targets: [\"${VARS_T_LAMP}\"]
  - kind: phone
    id: q
    username: phone-user
    password: p
    request_topic: \"hub/${VARS_T_APP}/{id}/cmd\"
",
    );
    assert_eq!(f.embedded.users[0].name, "phone-user");
    assert_eq!(
        f.supervisor.as_ref().map(|s| s.username.as_str()),
        Some("watcher")
    );
    let p = f.devices.iter().find(|d| d.id == "p").unwrap();
    assert_eq!(p.connection.username.as_deref(), Some("phone-user"));
    assert_eq!(
        phone(&f, "p").targets.request_topic(0, &f),
        "cmnd/lamp/power"
    );
    // Variables are replaced before templates are expanded: `{id}` still works.
    assert_eq!(
        phone(&f, "q").targets.request_topic(0, &f),
        "hub/app-7/q/cmd"
    );
}

#[test]
fn an_unset_variable_is_one_problem_at_its_value_naming_it() {
    let text = "\
name: t
broker: \"mqtt://${VARS_T_NO_HOST}:1883\"
devices:
  - { kind: light, id: lamp }
  - kind: phone
    id: p
    username: \"${VARS_T_NO_USER}\"
    targets: [lamp, \"${VARS_T_NO_TARGET}\"]
  - kind: phone
    id: q
    request_topic: \"hub/${VARS_T_NO_APP}/cmd\"
";
    assert_eq!(
        problems(text, &Overrides::default()),
        [
            "2:9: broker: environment variable VARS_T_NO_HOST is not set",
            "7:15: devices[1].username: environment variable VARS_T_NO_USER is not set",
            "8:21: devices[1].targets[1]: environment variable VARS_T_NO_TARGET is not set",
            "11:20: devices[2].request_topic: environment variable VARS_T_NO_APP is not set",
        ]
    );
}

#[test]
fn a_broker_given_on_the_command_line_leaves_the_files_variables_unread() {
    let text = "name: t\nbroker: \"${VARS_T_NO_BROKER}\"\ndevices: [{kind: light, id: l}]\n";
    assert_eq!(
        problems(text, &Overrides::default()),
        ["2:9: broker: environment variable VARS_T_NO_BROKER is not set"]
    );
    let overrides = Overrides {
        broker: Some(BrokerTarget::Embedded { port: 0 }),
        ..Overrides::default()
    };
    let f = parse_with(text, &overrides).expect("the override replaces the broker");
    assert_eq!(f.broker, BrokerTarget::Embedded { port: 0 });
}

#[test]
fn passwords_take_defaults_too_and_a_doubled_dollar_is_literal() {
    let f = fleet(
        "name: t\ndevices:\n  - {kind: light, id: l, username: u, password: \"${VARS_T_UNSET:-fallback}\"}\n  - {kind: light, id: m, username: u, password: \"p$${VARS_T_HOST}\"}\n",
    );
    let password = |i: usize| {
        let login = &f.devices[i].connection;
        login.password.as_ref().map(|p| p.expose().to_string())
    };
    assert_eq!(password(0).as_deref(), Some("fallback"));
    assert_eq!(password(1).as_deref(), Some("p${VARS_T_HOST}"));
}
