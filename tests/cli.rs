//! The binary as a user runs it: exit codes, messages, the JSON report.

mod common;

use std::process::{Command, Output};

use common::*;

fn fleetsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
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
    // The exchange trace shows the article's three properties at work.
    assert!(
        stdout.contains("PUBLISH cmnd/light-in-bedroom/power"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Response Topic    state/light-in-bedroom/power"),
        "{stdout}"
    );
    assert!(stdout.contains("Correlation Data  \"phone:1\""), "{stdout}");
    assert!(stderr(&out).contains("embedded broker listening on mqtt://127.0.0.1:"));

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
            "supervisor.yaml",
            "name: x\nbroker: {embedded: {users: [{name: fleetsim-supervisor, password: p}]}}\ndevices:\n  - {kind: light, id: l}\n",
            [
                "supervisor.yaml:2",
                "broker.embedded.users[0].name",
                "fleetsim-supervisor",
            ],
        ),
        (
            "target.yaml",
            "name: x\ndevices:\n  - kind: phone\n    id: p\n    targets: [ghost]\n",
            ["target.yaml:5", "targets", "ghost"],
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetsim"))
        .args(["validate", &path])
        .env_remove("RUST_LOG")
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
        err.contains("--duration") && err.contains("max 1000000"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = fleetsim(&[&path, "--duration", "31days"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("at most 30days"), "{}", stderr(&out));
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
