//! Source addresses: devices connect from the fleet's `source_addresses`, as the broker sees
//! them; a list the machine cannot use stops the run with exit 2; and, with the kernel's port
//! range narrowed in a network namespace of its own, a fleet larger than one range still
//! connects on the embedded broker because fleetsim spreads it over 127.0.0.x by itself.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake::FakeBroker;
use common::*;
use fleetsim::run::{RunError, RunOptions, run};

/// Five lights dealt over two loopback source addresses.
const TWO_SOURCES: &str = "\
name: sources
duration: 1s
source_addresses: [127.0.0.2, 127.0.0.3]
devices:
  - { kind: light, id: \"lamp-{n}\", count: 5 }
";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn devices_connect_from_the_fleets_source_addresses() {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let record = seen.clone();
    let broker = FakeBroker::start(move |conn| {
        if let Some(peer) = conn.peer_addr() {
            record.lock().unwrap().insert(peer.ip());
        }
        conn.accept();
        conn.grant_subscribe();
        conn.idle();
    });
    let mut fleet = fleet_from(TWO_SOURCES);
    fleet.broker = broker.target();

    let report = run_fleet(fleet);

    assert_eq!(report.devices.connected, 5);
    assert_eq!(
        broker.accepted(),
        5,
        "one connection per device, no retries"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, BTreeSet::from([ip("127.0.0.2"), ip("127.0.0.3")]));
}

/// Established IPv4 connections in this network namespace as (local address, remote port), from
/// `/proc/net/tcp`.
fn tcp_connections() -> Vec<(IpAddr, u16)> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (local, remote, state) = (fields.next()?, fields.next()?, fields.next()?);
            // Established only: a closed connection's TIME_WAIT entry outlives its broker by a
            // minute, and a later broker may listen on a port that entry names.
            if state != "01" {
                return None;
            }
            let (local_ip, _) = local.split_once(':')?;
            let (_, remote_port) = remote.split_once(':')?;
            // The kernel prints the address as the u32 it holds in network order, read
            // natively: its native-endian bytes are the address.
            let ip = u32::from_str_radix(local_ip, 16).ok()?.to_ne_bytes();
            let port = u16::from_str_radix(remote_port, 16).ok()?;
            Some((IpAddr::from(ip), port))
        })
        .collect()
}

#[test]
fn on_the_embedded_broker_devices_connect_from_the_fleets_source_addresses() {
    let mut fleet = fleet_from(TWO_SOURCES);
    fleet.broker = embedded();
    // The socket table, sampled while the run goes on; the broker's port is known only after.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::SeqCst) {
                seen.extend(tcp_connections());
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };

    let report = run_fleet(fleet);
    done.store(true, Ordering::SeqCst);
    let seen = sampler.join().unwrap();

    assert!(report.ok, "{report:?}");
    assert_eq!(report.devices.connected, 5);
    let port: u16 = report
        .broker
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {:?}", report.broker));
    let sources: BTreeSet<IpAddr> = seen
        .iter()
        .filter(|(_, remote)| *remote == port)
        .map(|(local, _)| *local)
        .collect();
    assert_eq!(sources, BTreeSet::from([ip("127.0.0.2"), ip("127.0.0.3")]));
}

#[test]
fn a_source_of_the_wrong_family_stops_the_run_before_any_device_connects() {
    let mut fleet = fleet_from(TWO_SOURCES);
    fleet.source_addresses = vec![ip("::1")];
    let broker = FakeBroker::start(|conn| {
        conn.accept();
    });
    fleet.broker = broker.target();
    let options = RunOptions {
        threads: 1,
        ..RunOptions::default()
    };

    let error = run(fleet, &options).expect_err("a v6 source cannot reach a v4 broker");

    assert!(matches!(error, RunError::Sources(_)), "{error:?}");
    assert!(error.to_string().contains("::1 is IPv6"), "{error}");
    assert_eq!(broker.accepted(), 0);
}

#[test]
fn the_binary_exits_2_naming_a_source_address_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.yaml");
    std::fs::write(
        &path,
        TWO_SOURCES.replace("[127.0.0.2, 127.0.0.3]", "[\"::1\"]"),
    )
    .unwrap();

    let out = common::fleetsim_command().arg(&path).output().unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("source_addresses: ::1 is IPv6 but the broker 127.0.0.1:"),
        "{stderr}"
    );
}

/// Ports in the narrowed range: fewer than the fleet's devices, so one source address cannot
/// hold them all.
const NARROW: &str = "40000 40499";
const LIGHTS: usize = 1200;

/// Runs `fleetsim ARGS` in a new network namespace whose loopback is up and whose ephemeral
/// port range is [`NARROW`]; None (after saying why) where that cannot be done here.
fn in_narrow_namespace(args: &[&str]) -> Option<std::process::Output> {
    if std::env::var_os("FLEETSIM_SKIP_NETNS").is_some_and(|v| v == "1") {
        eprintln!("skipped: FLEETSIM_SKIP_NETNS=1");
        return None;
    }
    let script = format!(
        "ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range=\"{NARROW}\" && exec \"$0\" \"$@\""
    );
    let probe = Command::new("unshare")
        .args(["-n", "sh", "-c", &script, "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped: cannot make a network namespace with a narrow port range here (needs root and unshare -n): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            return None;
        }
    }
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script, env!("CARGO_BIN_EXE_fleetsim")])
        .args(args)
        .output()
        .expect("run fleetsim in a network namespace");
    Some(out)
}

/// Without spreading, this fleet stops with exit 3 ("Cannot assign requested address") once
/// the 500 ports are gone, around the 500th device.
#[test]
fn a_fleet_larger_than_the_port_range_connects_over_several_loopback_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("lights.yaml");
    std::fs::write(
        &fleet,
        format!(
            "name: many-lights\nduration: 1s\ndevices:\n  - {{ kind: light, id: \"l-{{n}}\", count: {LIGHTS} }}\n"
        ),
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let started = Instant::now();

    let Some(out) = in_narrow_namespace(&[
        fleet.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--show-exchanges",
        "0",
    ]) else {
        return;
    };

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // 1201 connections, 250 per address (50 % of 500 ports): five addresses.
    assert!(
        stderr.contains("spreading 1200 devices over source addresses 127.0.0.1..127.0.0.5"),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["devices"]["connected"], LIGHTS);
    assert_eq!(json["devices"]["reconnects"], 0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
