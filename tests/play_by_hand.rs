//! Playing the phone by hand, as a trainee does with MQTTX: `fleetsim broker` answers and
//! tells requests from a client that is not fleetsim, and a running fleet whose phone shares
//! the article's Response Topic is not failed by the trainee's answers.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hand::{Answer, ask};
use common::{assert_adds_up, embedded, repo_file, repo_fleet};
use fleetsim::run::{OnReady, RunOptions, run};

const TOPIC: &str = "cmnd/light-in-bedroom/power";
const RESPONSE_TOPIC: &str = "state/light-in-bedroom/power";

#[test]
fn fleetsim_broker_answers_a_hand_played_request_and_tells_it() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let mut child = common::fleetsim_command()
        .args(["broker", "--port", "0", "--report"])
        .arg(&report_path)
        .arg(repo_file("fleets/home.yaml"))
        // English, whatever the locale of the machine running the tests.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fleetsim starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    // The banner: where the broker is, and commands to paste.
    let mut banner = String::new();
    while !banner.contains("told below as it arrives") {
        let before = banner.len();
        stdout.read_line(&mut banner).unwrap();
        assert!(
            banner.len() > before,
            "fleetsim ended before its banner: {banner}"
        );
    }
    let addr: SocketAddr = banner
        .split("mqtt://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no broker address in: {banner}"));
    assert!(
        banner.contains(&format!(
            "mosquitto_rr -h 127.0.0.1 -p {} -t {TOPIC} -e {RESPONSE_TOPIC} -D publish correlation-data req-1 -m ON -v",
            addr.port()
        )),
        "{banner}"
    );

    let answers = ask(addr, "mqttx_trainee", TOPIC, RESPONSE_TOPIC, b"req-1", "ON");
    assert_eq!(
        answers,
        vec![Answer {
            payload: r#"{"power":"ON"}"#.into(),
            correlation: Some(b"req-1".to_vec()),
        }],
        "the light answers once, with the Correlation Data copied"
    );

    // Ctrl-C ends a broker session: exit 0, with a summary and a report.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");

    let told: Vec<&str> = rest.lines().collect();
    let at = told
        .iter()
        .position(|l| l.starts_with("outside") && l.contains("<- PUBLISH"))
        .unwrap_or_else(|| panic!("the request is not told: {rest}"));
    assert!(
        told[at].contains(&format!(
            "{TOPIC} \"ON\", Response Topic {RESPONSE_TOPIC}, Correlation Data \"req-1\""
        )),
        "{rest}"
    );
    assert_eq!(
        told[at + 1].trim(),
        "sent by mqttx_trainee, a client outside the fleet",
        "{rest}"
    );
    assert!(
        told[at + 2].contains("-> PUBLISH")
            && told[at + 2]
                .contains(r#"{"power":"ON"}, Correlation Data "req-1" copied unchanged"#),
        "{rest}"
    );
    assert!(rest.contains("1 from outside the fleet"), "{rest}");
    assert!(rest.contains("verdict        OK"), "{rest}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["responders"]["from_outside"], 1, "{report}");
    assert_eq!(report["responders"]["answered"], 1, "{report}");
    assert_eq!(
        report["requests"]["sent"], 0,
        "no phone of the fleet runs: {report}"
    );
    assert_eq!(report["interrupted"], true, "{report}");
}

#[test]
fn a_trainees_answers_on_the_fleets_response_topic_are_somebody_elses_not_strays() {
    // home.yaml's phone listens on the article's state/light-in-bedroom/power: the trainee's
    // answer reaches it too.
    let fleet = repo_fleet("fleets/home.yaml", embedded(), Duration::from_secs(3));
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let got = answers.clone();
    let options = RunOptions {
        threads: 2,
        on_ready: Some(OnReady(Arc::new(move |addr| {
            let got = got.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                let answers = ask(addr, "mqttx_trainee", TOPIC, RESPONSE_TOPIC, b"1", "ON");
                got.lock().unwrap().extend(answers);
            });
        }))),
        ..RunOptions::default()
    };
    let report = run(fleet, &options).expect("the run completes");

    assert_adds_up(&report);
    assert_eq!(
        answers.lock().unwrap().len(),
        1,
        "the trainee got the answer"
    );
    assert_eq!(report.responders.from_outside, 1);
    assert_eq!(report.requests.others_answers, 1, "{:?}", report.requests);
    assert_eq!(
        report.requests.unmatched_responses, 0,
        "{:?}",
        report.requests
    );
    assert!(report.ok, "{:?}", report.problems);
    assert!(report.requests.matched > 0);
}

#[test]
fn with_a_start_delay_a_watcher_attached_when_told_sees_exchange_1() {
    let mut child = common::fleetsim_command()
        .arg(repo_file("fleets/home.yaml"))
        .args(["--duration", "2s", "--start-delay", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fleetsim starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no start-delay line"
        );
        if line.contains("attach a watcher now") {
            let host = line
                .split(" -h ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next());
            let port = line
                .split(" -p ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next());
            break format!("{}:{}", host.unwrap(), port.unwrap())
                .parse()
                .unwrap();
        }
    };
    let seen = common::hand::watch(addr, TOPIC, Duration::from_millis(1800));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest}");
    assert_eq!(
        seen.first(),
        Some(&(TOPIC.to_owned(), Some(b"phone:1".to_vec()))),
        "the watcher missed exchange 1: {seen:?}"
    );
}
