//! The binary as a user runs it: exit codes, messages, the JSON report.

mod common;

use std::process::{Command, Output};

use common::*;

fn fleetsim(args: &[&str]) -> Output {
    common::fleetsim_command()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run fleetsim")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_fleet(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write fleet");
    path.to_string_lossy().into_owned()
}

#[test]
fn home_demo_exits_0_and_writes_a_report_that_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("r.json");
    let report_arg = report_path.to_string_lossy().into_owned();
    let out = fleetsim(&[
        "fleets/home.yaml",
        "--duration",
        "2s",
        "--report",
        &report_arg,
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The narration shows the article's properties at work.
    assert!(
        stdout.contains("PUBLISH   cmnd/light-in-bedroom/power"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Response Topic    state/light-in-bedroom/power"),
        "{stdout}"
    );
    assert!(stdout.contains("Correlation Data  \"phone:1\""), "{stdout}");
    assert!(stderr(&out).contains("embedded broker listening on mqtt://127.0.0.1:"));
    // The README's demo trace is this run's, line for line (the round trip time aside).
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let block = readme
        .split("<!-- demo-trace")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("README has the demo trace block");
    let timing = |line: &str| match line.split_once("matched in ") {
        Some((head, _)) => head.to_owned(),
        None => line.to_owned(),
    };
    let lines: Vec<String> = stdout.lines().map(timing).collect();
    for expected in block.lines().filter(|l| !l.trim().is_empty()) {
        let expected = timing(expected);
        assert!(
            lines.iter().any(|l| l.trim_end() == expected.trim_end()),
            "README line not in the run's output: {expected:?}\n{stdout}"
        );
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(json["fleet"], "home");
    assert_eq!(json["seed"], 42);
    assert_eq!(json["ok"], true);
    assert_eq!(json["devices"]["total"], 5);
    assert_eq!(json["devices"]["connected"], 5);
    assert_eq!(json["devices"]["by_kind"]["sensor"], 2);
    let r = &json["requests"];
    let n = |k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("requests.{k} missing"))
    };
    assert!(n("sent") > 0);
    assert_eq!(
        n("sent"),
        n("matched") + n("late") + n("timed_out") + n("failed") + n("in_flight")
    );
    assert_eq!(n("matched"), n("sent"));
    for key in ["unmatched_responses", "duplicate_responses"] {
        assert_eq!(n(key), 0, "{key}");
    }
    for p in ["p50", "p90", "p99", "max"] {
        assert!(r["latency_ms"][p].as_f64().is_some(), "latency_ms.{p}");
    }
    assert!(json["telemetry"]["published"].as_u64().unwrap() > 0);
    assert!(json["duration_s"].as_f64().unwrap() >= 2.0);
}

#[test]
fn validate_accepts_the_repo_fleets() {
    for file in ["fleets/home.yaml", "fleets/multi.yaml"] {
        let out = fleetsim(&["validate", file]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid fleet"));
    }
}

#[test]
fn bad_fleet_files_exit_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "qos.yaml",
            "name: x\ndevices:\n  - kind: light\n    id: l\n    qos: 3\n",
            ["qos.yaml:5", "qos", "3"],
        ),
        (
            "unknown.yaml",
            "name: x\ndevices:\n  - kind: light\n    id: l\n    colour: red\n",
            ["unknown.yaml", "colour", "5"],
        ),
        (
            "target.yaml",
            "name: x\ndevices:\n  - kind: phone\n    id: p\n    targets: [ghost]\n",
            ["target.yaml:5", "targets", "ghost"],
        ),
        (
            "supervisor.yaml",
            "name: x\nbroker: {embedded: {users: [{name: fleetsim-supervisor, password: p}]}}\ndevices:\n  - {kind: light, id: l}\n",
            [
                "supervisor.yaml:2",
                "broker.embedded.users[0].name",
                "fleetsim-supervisor",
            ],
        ),
    ];
    for (name, text, needles) in cases {
        let path = write_fleet(&dir, name, text);
        for args in [vec![path.as_str()], vec!["validate", path.as_str()]] {
            let out = fleetsim(&args);
            assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.starts_with("fleetsim: "), "{err}");
            for needle in needles {
                assert!(err.contains(needle), "{name}: {needle:?} not in {err}");
            }
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn missing_file_and_bad_arguments_exit_2() {
    let out = fleetsim(&["no/such/fleet.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no/such/fleet.yaml"),
        "{}",
        stderr(&out)
    );

    let out = fleetsim(&["fleets/home.yaml", "--duration", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--duration"), "{}", stderr(&out));

    let out = fleetsim(&["fleets/home.yaml", "--broker", "amqp://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("mqtt://"), "{}", stderr(&out));

    let out = fleetsim(&[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreachable_broker_exits_3_naming_the_address() {
    let port = free_port(); // nobody listens there
    let url = format!("mqtt://127.0.0.1:{port}");
    let out = fleetsim(&["fleets/home.yaml", "--broker", &url, "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("refused"), "{err}");
}

/// The one test that sets a variable, on the child only: FLEETSIM_BROKER wins over the file's
/// broker, and `--broker` over it.
#[test]
fn fleetsim_broker_overrides_the_file_and_the_flag_overrides_it() {
    let port = free_port(); // nobody listens there
    let url = format!("mqtt://127.0.0.1:{port}");
    let with_env = |value: &str, args: &[&str]| {
        common::fleetsim_command()
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("FLEETSIM_BROKER", value)
            .output()
            .expect("run fleetsim")
    };
    // home.yaml says `broker: embedded`: the variable sends it to a closed port instead.
    let out = with_env(&url, &["fleets/home.yaml", "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&out)
    );
    // The flag wins: the run is on the embedded broker, and ok.
    let out = with_env(
        &url,
        &[
            "fleets/home.yaml",
            "--broker",
            "embedded",
            "--duration",
            "1s",
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains(&port.to_string()),
        "{}",
        stderr(&out)
    );
    // A bad value is an invalid argument, named as the variable.
    let out = with_env("amqp://x", &["fleets/home.yaml", "-q"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("fleetsim: FLEETSIM_BROKER: unsupported scheme `amqp`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unset_variable_in_a_fleet_exits_2_naming_it_and_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_fleet(
        &dir,
        "vars.yaml",
        "name: x\nbroker: \"mqtt://${FLEETSIM_TEST_SURELY_UNSET_9B1}:1883\"\ndevices:\n  - {kind: phone, id: p, request_topic: \"hub/${FLEETSIM_TEST_SURELY_UNSET_9B2:-app}/cmd\"}\n",
    );
    for args in [vec![path.as_str()], vec!["validate", path.as_str()]] {
        let out = common::fleetsim_command()
            .args(&args)
            .env_remove("FLEETSIM_TEST_SURELY_UNSET_9B1")
            .env_remove("FLEETSIM_TEST_SURELY_UNSET_9B2")
            .output()
            .expect("run fleetsim");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        // One problem: the default of the second variable is taken.
        assert_eq!(
            err.trim_end(),
            format!(
                "fleetsim: {path}:2:9: broker: environment variable FLEETSIM_TEST_SURELY_UNSET_9B1 is not set"
            ),
        );
    }
}

#[test]
fn help_lists_examples_and_exit_codes() {
    let out = fleetsim(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--broker",
        "--report",
        "--threads",
        "validate",
        "schema",
        "FLEETSIM_BROKER",
        "mqtts://host:port",
        "--shard <I/N>",
        "merge",
        "Exit codes",
        "3  broker",
    ] {
        assert!(text.contains(needle), "{needle} missing from --help");
    }
}

#[test]
fn a_fleet_too_big_for_the_open_file_limit_exits_2_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_fleet(
        &dir,
        "big.yaml",
        "name: big\ndevices:\n  - kind: light\n    id: light-{n}\n    count: 300\n",
    );
    // `ulimit -n` in the shell lowers the limit for fleetsim alone.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' '{path}'",
            env!("CARGO_BIN_EXE_fleetsim")
        ))
        .output()
        .expect("run fleetsim under sh");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("300 devices"), "{err}");
    assert!(err.contains("728 open files"), "{err}");
    assert!(err.contains("only 256"), "{err}");
}

#[test]
fn validate_warns_of_payloads_the_embedded_broker_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_fleet(
        &dir,
        "big.yaml",
        "name: big\ndevices:\n  - { kind: light, id: lamp }\n  - { kind: phone, id: phone, targets: [lamp] }\nfaults:\n  - { kind: huge_payload, target: phone, at: 1s, size: 2MiB }\n",
    );
    let out = fleetsim(&["validate", &path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "valid all the same: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("fleetsim: warning: phone: a huge_payload fault's payload of 2097152 bytes")
            && err.contains("packet_too_large"),
        "{err}"
    );
}

#[test]
fn validate_into_a_pipe_closed_early_exits_0_without_panicking() {
    use std::io::Read;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    // About 30 bytes a device: far more than a pipe buffers, so a write meets the closed pipe.
    let path = write_fleet(
        &dir,
        "many.yaml",
        "name: many\ndevices:\n  - kind: light\n    id: light-{n}\n    count: 20000\n",
    );
    let mut child = common::fleetsim_command()
        .args(["validate", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fleetsim");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("first bytes");
    assert_eq!(&first[..3], b"ok:");
    drop(stdout);
    let out = child.wait_with_output().expect("wait for fleetsim");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_duration_override_that_would_schedule_too_many_faults_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // 9999 resets in the file's 10s; 30 days would make 2.6 billion of them.
    let path = write_fleet(
        &dir,
        "often.yaml",
        "name: often\ndevices:\n  - {kind: light, id: l}\nfaults:\n  - {kind: reset, target: l, every: 1ms}\n",
    );
    let out = fleetsim(&["validate", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = fleetsim(&[&path, "--duration", "30days", "-q"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("faults[0].every") && err.contains("in a run of 30days (max 1000000)"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = fleetsim(&[&path, "--duration", "31days"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("at most 30days"), "{}", stderr(&out));
}

/// Starts fleetsim on `args` with piped output, for tests that signal it.
fn spawn(args: &[&str]) -> std::process::Child {
    common::fleetsim_command()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start fleetsim")
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits for the child, failing the test if it takes longer than `limit` (a hang).
fn finish(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let started = std::time::Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("fleetsim did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report file"))
        .expect("the report is whole JSON")
}

#[test]
fn sigint_ends_the_run_early_with_a_report_marked_interrupted_and_exit_130() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let child = spawn(&[
        "fleets/home.yaml",
        "--duration",
        "60s",
        "-q",
        "--report",
        &report.to_string_lossy(),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    signal(&child, "INT");
    let out = finish(child, std::time::Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict        NOT OK"), "{stdout}");
    assert!(stdout.contains("interrupted by SIGINT"), "{stdout}");
    let json = read_json(&report);
    assert_eq!(json["interrupted"], true);
    assert_eq!(json["signal"], "SIGINT");
    assert_eq!(json["ok"], false);
    let r = &json["requests"];
    let n = |k: &str| r[k].as_u64().unwrap();
    assert!(n("sent") > 0);
    assert_eq!(
        n("sent"),
        n("matched") + n("late") + n("timed_out") + n("failed") + n("in_flight")
    );
    assert!(
        json["duration_s"].as_f64().unwrap() < 10.0,
        "{}",
        json["duration_s"]
    );
}

#[test]
fn sigterm_during_a_long_drain_ends_it_briefly_with_exit_143() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    // Nobody answers, and requests may wait a minute: the drain alone would take that long.
    let fleet = write_fleet(
        &dir,
        "drain.yaml",
        "name: drain\nduration: 1s\ndevices:\n  - { kind: phone, id: phone, request_topic: nobody/home, every: 100ms, timeout: 60s }\n",
    );
    let child = spawn(&[&fleet, "-q", "--report", &report.to_string_lossy()]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    signal(&child, "TERM");
    let out = finish(child, std::time::Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let json = read_json(&report);
    assert_eq!(json["signal"], "SIGTERM");
    assert!(
        json["requests"]["in_flight"].as_u64().unwrap() > 0,
        "{json}"
    );
}

#[test]
fn a_second_sigint_quits_at_once_and_leaves_the_last_report_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    std::fs::write(&report, "{\"old\":true}\n").unwrap();
    let fleet = write_fleet(
        &dir,
        "drain.yaml",
        "name: drain\nduration: 1s\ndevices:\n  - { kind: phone, id: phone, request_topic: nobody/home, every: 100ms, timeout: 60s }\n",
    );
    let child = spawn(&[&fleet, "-q", "--report", &report.to_string_lossy()]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    signal(&child, "INT");
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(&child, "INT");
    let out = finish(child, std::time::Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("quitting at once"),
        "{}",
        stderr(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("verdict"));
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "{\"old\":true}\n"
    );
}

#[test]
fn runs_that_cannot_be_carried_out_still_write_a_report_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let report_arg = report.to_string_lossy().into_owned();
    // Exit 2: an invalid fleet file.
    let bad = write_fleet(&dir, "bad.yaml", "name: x\ndevices: []\n");
    let out = fleetsim(&[&bad, "--report", &report_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let json = read_json(&report);
    assert_eq!(
        (json["ok"].clone(), json["error"]["kind"].clone()),
        (false.into(), "invalid".into())
    );
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("devices"),
        "{json}"
    );
    // Exit 3: nobody listens where the broker should be.
    let port = free_port().to_string();
    let url = format!("mqtt://127.0.0.1:{port}");
    let out = fleetsim(&[
        "fleets/home.yaml",
        "--broker",
        &url,
        "-q",
        "--report",
        &report_arg,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let json = read_json(&report);
    assert_eq!(json["error"]["kind"], "broker");
    assert_eq!(json["fleet"], "home");
    assert_eq!(json["devices"]["total"], 5);
}

#[test]
fn report_dash_writes_only_json_to_stdout_and_the_summary_to_stderr() {
    let out = fleetsim(&["fleets/home.yaml", "--duration", "1s", "--report", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    assert_eq!(json["fleet"], "home");
    let err = stderr(&out);
    assert!(err.contains("verdict        OK"), "{err}");
    assert!(
        err.lines().any(|line| line.starts_with("phone:1 ")
            && line.contains(" phone            -> PUBLISH   cmnd/")),
        "the narration is for people too: {err}"
    );
}

#[test]
fn a_ca_file_that_is_a_device_exits_2_naming_it() {
    let port = free_port(); // never reached: the CA file is refused first
    let url = format!("mqtts://127.0.0.1:{port}");
    let out = fleetsim(&[
        "fleets/home.yaml",
        "--broker",
        &url,
        "--ca-file",
        "/dev/zero",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read /dev/zero: it is a character device"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn control_characters_from_a_fleet_file_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "id.yaml",
            "name: x\ndevices:\n  - kind: light\n    id: \"a\\x1b[2Jb\"\n",
            "devices[0].id",
        ),
        (
            "topic.yaml",
            "name: x\ndevices:\n  - kind: light\n    id: l\n    command_topic: \"c/\\u202E/\\x1b]0;t\\x07\"\n",
            "devices[0].command_topic",
        ),
        // A YAML error quotes the offending text in its message and snippet.
        (
            "yaml.yaml",
            "name: x\ndevices:\n  - kind: light\n    \"co\\x1b[2Jlour\": red\n",
            "co\\u{1b}[2Jlour",
        ),
    ];
    for (name, text, needle) in cases {
        let path = write_fleet(&dir, name, text);
        let out = fleetsim(&["validate", &path]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        for bytes in [&out.stdout, &out.stderr] {
            assert!(
                !bytes.contains(&0x1b),
                "{name}: raw ESC in {}",
                String::from_utf8_lossy(bytes)
            );
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains('\u{202e}') && !text.contains('\u{7}'),
                "{name}: {text}"
            );
        }
        let err = stderr(&out);
        assert!(err.contains(needle), "{name}: {needle} not in {err}");
        assert!(err.contains("\\u{1b}"), "{name}: {err}");
    }
}

#[test]
fn an_endless_fleet_file_exits_2_instead_of_filling_memory() {
    let out = fleetsim(&["validate", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read fleet file /dev/zero: larger than 64 MiB"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_to_a_file_or_pipe_carry_no_colour_codes() {
    let out = fleetsim(&["fleets/home.yaml", "--duration", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("all devices ready"),
        "the log made it out: {err}"
    );
    assert!(!err.contains('\u{1b}'), "{err}");
}

/// A fleet whose phone asks a topic nobody answers: its `expect:` fails one of two entries.
const UNANSWERED: &str = "name: unanswered
broker: embedded
duration: 1s
devices:
  - kind: phone
    id: asker
    request_topic: nobody/home
    every: 200ms
    timeout: 100ms
expect:
  timed_out: \"== 0\"
  sent: \">= 1\"
";

#[test]
fn junit_has_a_testcase_per_expectation_and_the_verdict_in_the_common_schema_shape() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = write_fleet(&dir, "unanswered.yaml", UNANSWERED);
    let junit = dir.path().join("junit.xml");
    let out = fleetsim(&[&fleet, "-q", "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let text = std::fs::read_to_string(&junit).expect("the JUnit file is written");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.tag_name().name(), "testsuite");
    assert_eq!(suite.attribute("name"), Some("fleet unanswered"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    fn failed<'a, 'i>(c: &roxmltree::Node<'a, 'i>) -> Option<roxmltree::Node<'a, 'i>> {
        c.children().find(|n| n.has_tag_name("failure"))
    }
    // The shape every JUnit reader expects: counts that match the children, names, times.
    let attr = |name: &str| suite.attribute(name).and_then(|v| v.parse::<usize>().ok());
    assert_eq!(attr("tests"), Some(cases.len()));
    assert_eq!(
        attr("failures"),
        Some(cases.iter().filter(|c| failed(c).is_some()).count())
    );
    assert_eq!(attr("errors"), Some(0));
    for case in &cases {
        assert!(case.attribute("classname").is_some(), "{text}");
        assert!(
            case.attribute("time")
                .and_then(|t| t.parse::<f64>().ok())
                .is_some(),
            "{text}"
        );
    }
    let names: Vec<_> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(
        names,
        ["expect: timed_out == 0", "expect: sent >= 1", "verdict"],
        "{text}"
    );

    let timed_out = failed(&cases[0]).expect("timed_out == 0 fails");
    let message = timed_out.attribute("message").unwrap();
    assert!(
        message.starts_with("expected timed_out == 0, got "),
        "{message}"
    );
    assert!(
        timed_out.text().unwrap_or_default().contains("(limit 0)"),
        "{text}"
    );
    assert!(failed(&cases[1]).is_none(), "sent >= 1 holds: {text}");
    assert!(failed(&cases[2]).is_some(), "the verdict fails: {text}");
}

#[test]
fn format_json_prints_the_report_on_one_line_and_nothing_else_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = write_fleet(&dir, "unanswered.yaml", UNANSWERED);
    let out = fleetsim(&[&fleet, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(json["ok"], false);
    assert!(
        json["requests"]["timed_out"].as_u64().unwrap() >= 1,
        "{json}"
    );
    assert!(
        !stderr(&out).contains("verdict "),
        "no table with --format json"
    );

    let out = fleetsim(&[&fleet, "--format", "json", "--report", "-"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("choose one"), "{}", stderr(&out));
}

#[test]
fn progress_lines_come_every_five_seconds_when_asked_and_never_into_a_pipe_unasked() {
    let out = fleetsim(&["fleets/home.yaml", "--duration", "6s", "-q", "--progress"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("progress")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("progress  5s/6s  connected 5/5  sent "),
        "{err}"
    );
    assert!(lines[0].contains(" answers/s  p99 "), "{err}");

    // Not asked for, and stderr is a pipe: no progress line, narration or not.
    let out = fleetsim(&["fleets/home.yaml", "--duration", "6s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).lines().any(|l| l.starts_with("progress")),
        "{}",
        stderr(&out)
    );
}

/// One HTTP/1.1 GET, the way a Prometheus scrape asks; returns the whole response.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics port");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn metrics_are_served_for_prometheus_while_the_run_goes() {
    use std::io::BufRead;
    let mut child = common::fleetsim_command()
        .args([
            "fleets/home.yaml",
            "--duration",
            "4s",
            "-q",
            "--metrics",
            "127.0.0.1:0",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fleetsim");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("a log line naming the metrics address")
            .unwrap();
        if let Some(rest) = line.split("metrics for Prometheus on http://").nth(1) {
            break rest.trim_end_matches("/metrics").to_owned();
        }
    };
    // Some requests in, while the run still goes.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let response = http_get(&addr, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{response}"
    );
    let value = |series: &str| {
        response
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in {response}"))
    };
    assert!(value(r#"fleetsim_requests_sent_total{fleet="home"}"#) >= 1.0);
    assert!(value(r#"fleetsim_requests_total{fleet="home",outcome="matched"}"#) >= 1.0);
    assert_eq!(value(r#"fleetsim_devices_connected{fleet="home"}"#), 5.0);
    assert!(value(r#"fleetsim_round_trip_seconds_count{fleet="home"}"#) >= 1.0);
    assert!(response.trim_end().ends_with("# EOF"), "{response}");
    assert!(http_get(&addr, "/").starts_with("HTTP/1.1 404"));

    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_metrics_address_already_taken_exits_2_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = fleetsim(&[
        "fleets/home.yaml",
        "--duration",
        "1s",
        "-q",
        "--metrics",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot serve metrics on {addr}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn output_paths_are_checked_before_anything_runs_and_never_overwrite_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("out.md");
    let out = fleetsim(&["fleets/home.yaml", "--sequence", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write the sequence diagram"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "nothing ran");

    let out = fleetsim(&["merge", "s1.json", "s2.json", "--report", "s1.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("would overwrite s1.json, one of the reports to merge"),
        "{}",
        stderr(&out)
    );
    let report = missing.with_extension("json");
    let out = fleetsim(&["merge", "s1.json", "--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot write the report"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_start_more_than_a_day_away_and_a_missing_file_are_refused_with_the_reason() {
    let out = fleetsim(&["fleets/home.yaml", "--start-at", "2999-01-01T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("more than a day away"),
        "{}",
        stderr(&out)
    );
    let out = fleetsim(&["validate", "no-such-fleet.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read fleet file no-such-fleet.yaml: No such file"),
        "{}",
        stderr(&out)
    );
}
