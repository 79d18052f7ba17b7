//! A fleet run as shards: every device in exactly one shard, shards started together through
//! the broker, and their reports merged into what the single run reports.

mod common;

use std::path::Path;

use common::*;
use fleetsim::fleet::{Fleet, Shard};
use fleetsim::report::{Report, ShardFile, merge};
use fleetsim::run::{RunOptions, run};

/// Phones in every shard asking lights that are mostly in other shards, a fixed number of
/// requests each, so the counts are exact.
const FLEET: &str = r#"
name: sharded
duration: 3s
seed: 5
devices:
  - kind: light
    id: light-{n}
    count: 5
  - kind: phone
    id: phone-{n}
    count: 4
    targets: ["light-*"]
    every: 100ms
    requests: 10
    timeout: 2s
  - kind: sensor
    id: sensor-{n}
    count: 2
    every: 500ms
"#;

fn on(fleet: &str, port: u16) -> Fleet {
    let mut fleet = fleet_from(fleet);
    fleet.broker = loopback(port);
    fleet
}

/// The report as it is written, read back as `fleetsim merge` reads it.
fn written(report: &Report) -> ShardFile {
    serde_json::from_str(&report.to_json()).expect("a shard's report reads back")
}

#[test]
fn three_shards_started_together_add_up_to_the_single_run() {
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 2).expect("embedded broker");
    let port = broker.addr().port();
    let whole = run_fleet(on(FLEET, port));
    assert!(whole.ok, "{:?}", whole.problems);

    let shards: Vec<_> = (0..3)
        .map(|index| {
            std::thread::spawn(move || {
                let mut fleet = on(FLEET, port);
                fleet.shard = Shard { index, count: 3 };
                let options = RunOptions {
                    threads: 1,
                    run_id: Some("test-run".into()),
                    ..RunOptions::default()
                };
                run(fleet, &options).expect("a shard runs")
            })
        })
        .collect();
    let reports: Vec<Report> = shards.into_iter().map(|s| s.join().unwrap()).collect();
    for (i, r) in reports.iter().enumerate() {
        let shard = r.shard.as_ref().expect("a shard says which");
        assert_eq!((shard.index, shard.count), (i as u32 + 1, 3));
        assert!(r.ok, "shard {}: {:?}", i + 1, r.problems);
    }
    // Eleven devices dealt over three shards: 4, 4 and 3, every one of them once.
    let sizes: Vec<u64> = reports.iter().map(|r| r.devices.total).collect();
    assert_eq!(sizes, [4, 4, 3]);

    let files: Vec<(String, ShardFile)> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("shard-{}.json", i + 1), written(r)))
        .collect();
    let merged = merge(&files).expect("the three shards merge");
    assert_adds_up(&merged);
    assert_eq!(merged.devices.total, whole.devices.total);
    assert_eq!(merged.devices.by_kind, whole.devices.by_kind);
    assert_eq!(merged.devices.connected, whole.devices.connected);
    assert_eq!(merged.requests.sent, whole.requests.sent);
    assert_eq!(merged.requests.sent, 40);
    assert_eq!(merged.requests.matched, 40);
    assert_eq!(merged.responders.answered, whole.responders.answered);
    assert!(merged.ok, "{:?}", merged.problems);
}

fn fleetsim(args: &[&str], dir: &Path) -> std::process::Output {
    common::fleetsim_command()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run fleetsim")
}

#[test]
fn the_binary_runs_shards_and_merges_them_and_refuses_a_shard_twice() {
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 2).expect("embedded broker");
    let url = format!("mqtt://127.0.0.1:{}", broker.addr().port());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let shard = |i: u32| {
        let dir = dir.path().to_owned();
        let url = url.clone();
        std::thread::spawn(move || {
            let report = format!("shard-{i}.json");
            let shard = format!("{i}/2");
            let args = [
                "fleet.yaml",
                "--broker",
                &url,
                "--shard",
                &shard,
                "--run-id",
                "bin",
                "-q",
                "--report",
                &report,
            ];
            fleetsim(&args, &dir)
        })
    };
    let (one, two) = (shard(1), shard(2));
    for (i, out) in [one.join().unwrap(), two.join().unwrap()]
        .iter()
        .enumerate()
    {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = String::from_utf8_lossy(&out.stdout);
        let says = format!("(shard {}/2: its devices only)", i + 1);
        assert!(
            summary.lines().next().is_some_and(|l| l.ends_with(&says)),
            "{summary}"
        );
    }
    let out = fleetsim(
        &[
            "merge",
            "shard-1.json",
            "shard-2.json",
            "--report",
            "all.json",
        ],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("all.json")).unwrap())
            .unwrap();
    assert_eq!(all["devices"]["total"], 11);
    assert_eq!(all["requests"]["sent"], 40);
    assert_eq!(all["merged_shards"], 2);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("verdict        OK"), "{summary}");
    assert!(
        summary
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("(2 shards merged)")),
        "{summary}"
    );

    let out = fleetsim(&["merge", "shard-1.json", "shard-1.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shard 1 of 2 is given twice"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fleetsim(&["merge", "shard-2.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing shard 1 of 2"));
}

#[test]
fn three_shard_processes_on_mosquitto_add_up_to_the_single_run() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let whole = fleetsim(
        &[
            "fleet.yaml",
            "--broker",
            &url,
            "-q",
            "--report",
            "whole.json",
        ],
        dir.path(),
    );
    assert_eq!(
        whole.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&whole.stdout)
    );
    let shards: Vec<_> = (1..=3)
        .map(|i| {
            let (dir, url) = (dir.path().to_owned(), url.clone());
            std::thread::spawn(move || {
                let (shard, report) = (format!("{i}/3"), format!("shard-{i}.json"));
                fleetsim(
                    &[
                        "fleet.yaml",
                        "--broker",
                        &url,
                        "--shard",
                        &shard,
                        "--run-id",
                        "mq",
                        "-q",
                        "--report",
                        &report,
                    ],
                    &dir,
                )
            })
        })
        .collect();
    for s in shards {
        let out = s.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = fleetsim(
        &[
            "merge",
            "shard-1.json",
            "shard-2.json",
            "shard-3.json",
            "--report",
            "all.json",
        ],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap()
    };
    let (whole, all) = (read("whole.json"), read("all.json"));
    assert_eq!(all["devices"]["total"], whole["devices"]["total"]);
    assert_eq!(all["devices"]["by_kind"], whole["devices"]["by_kind"]);
    assert_eq!(all["requests"]["sent"], whole["requests"]["sent"]);
    let q = &all["requests"];
    let sum: u64 = ["matched", "late", "timed_out", "failed", "in_flight"]
        .iter()
        .map(|k| q[k].as_u64().unwrap())
        .sum();
    assert_eq!(q["sent"].as_u64(), Some(sum), "{q}");
}

#[test]
fn shards_are_refused_on_the_embedded_broker_they_could_not_share() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let out = fleetsim(&["fleet.yaml", "--shard", "1/2", "-q"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shard 1/2 runs on the embedded broker"),
        "{err}"
    );
}

#[test]
fn a_shard_killed_at_the_barrier_leaves_no_ready_message_behind() {
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 1).expect("embedded broker");
    let addr = broker.addr();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let url = format!("mqtt://{addr}");
    let mut shard = common::fleetsim_command()
        .args([
            "fleet.yaml",
            "--broker",
            &url,
            "--shard",
            "1/2",
            "--run-id",
            "dies",
            "-q",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a shard starts");
    let topic = "fleetsim/runs/dies/ready/1";
    let mut waited = 0;
    while common::hand::watch(addr, topic, std::time::Duration::from_millis(300)).is_empty() {
        waited += 1;
        assert!(waited < 30, "shard 1 never said it was ready");
    }
    shard.kill().unwrap();
    shard.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let left = common::hand::watch(addr, topic, std::time::Duration::from_millis(500));
    assert!(
        left.is_empty(),
        "a dead shard's ready message is still retained: {left:?}"
    );
}
