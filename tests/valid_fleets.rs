//! Any fleet `validate` accepts runs without a panic: random valid fleets (seeded, within the
//! documented bounds, extremes included, every fault kind) are parsed, the same fleets with one
//! duration past its bound are refused, and a few are run on the embedded broker, where no
//! thread may panic and the requests must add up.

mod common;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use common::*;
use fleetsim::run::{RunOptions, run};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
/// `fleet::MAX_DURATION`, in nanoseconds.
const MONTH: u64 = 30 * 24 * 3600 * S;
const U32_MAX: u64 = u32::MAX as u64;
const MIB: u64 = 1024 * 1024;

const CONNECTION: [&str; 5] = [
    "kill",
    "stall",
    "disconnect",
    "disconnect_with_will",
    "flap",
];
const REQUEST: [&str; 7] = [
    "no_response_topic",
    "no_correlation_data",
    "empty_correlation_data",
    "wildcard_response_topic",
    "huge_payload",
    "binary_payload",
    "duplicate_request",
];
const RESPONDER: [&str; 6] = [
    "slow",
    "no_answer",
    "wrong_correlation",
    "duplicate_answer",
    "wrong_topic",
    "error_payload",
];
const NETWORK: [&str; 6] = [
    "latency",
    "bandwidth",
    "blackhole",
    "reset",
    "slicer",
    "limit_data",
];
const PROTOCOL: [&str; 3] = ["withhold_acks", "malformed_packet", "oversize_packet"];

/// Writes one random valid fleet file. `runnable` keeps what decides how long a run lasts
/// (timeouts, outages, the wait for Will acks) short, so a run ends within seconds; every
/// other value still ranges up to its bound.
struct Gen {
    rng: SmallRng,
    runnable: bool,
    out: String,
    /// Connection-fault victims, each its own group.
    victims: Vec<String>,
    /// Which call of [`Gen::dur`] writes a duration past its bound instead, if any.
    overshoot: Option<usize>,
    durations: usize,
    /// The text written past the bound, once written (the option may be left out).
    overshot: Option<&'static str>,
}

impl Gen {
    fn new(seed: u64, runnable: bool) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            runnable,
            out: String::new(),
            victims: Vec::new(),
            overshoot: None,
            durations: 0,
            overshot: None,
        }
    }

    /// The same fleet, but with its `nth` duration (counting fields [`Gen::dur`] writes) past
    /// 30 days.
    fn overshooting(seed: u64, runnable: bool, nth: usize) -> Self {
        Self {
            overshoot: Some(nth),
            ..Self::new(seed, runnable)
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A value in `lo..=hi`: often one of the ends, otherwise spread over the orders of
    /// magnitude between them.
    fn pick(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "{lo} > {hi}");
        match self.rng.random_range(0..8) {
            0 => lo,
            1 => hi,
            2 => self.rng.random_range(lo..=hi),
            _ => {
                let (a, b) = ((lo.max(1) as f64).ln(), (hi.max(1) as f64).ln());
                let x = self.rng.random_range(a..=b).exp();
                (x as u64).clamp(lo, hi)
            }
        }
    }

    /// A duration of `lo..=hi` nanoseconds, as a fleet file writes it.
    fn dur(&mut self, lo: u64, hi: u64) -> String {
        let n = self.pick(lo, hi);
        let text = self.text(n);
        self.durations += 1;
        if self.overshoot == Some(self.durations - 1) {
            let past = ["2592000000000001ns", "31days", "500000000000years"];
            let past = past[self.rng.random_range(0..past.len())];
            self.overshot = Some(past);
            return past.to_string();
        }
        text
    }

    fn text(&mut self, ns: u64) -> String {
        match ns {
            MONTH if self.chance(0.5) => "30days".into(),
            n if n % S == 0 && self.chance(0.7) => format!("{}s", n / S),
            n if n % MS == 0 && self.chance(0.5) => format!("{}ms", n / MS),
            n => format!("{n}ns"),
        }
    }

    fn bytes(&mut self, lo: u64, hi: u64) -> String {
        match self.pick(lo, hi) {
            n if n == 16 * MIB && self.chance(0.5) => "16MiB".into(),
            n if n % 1024 == 0 && self.chance(0.5) => format!("{}KiB", n / 1024),
            n => format!("{n}"),
        }
    }

    fn number(&mut self, lo: f64, hi: f64) -> f64 {
        match self.rng.random_range(0..4) {
            0 => lo,
            1 => hi,
            _ => self.rng.random_range(lo..=hi),
        }
    }

    fn fleet(&mut self, index: usize) -> String {
        let duration = if self.runnable {
            S
        } else {
            self.pick(1, MONTH)
        };
        let mut out = format!("name: gen-{index}\n");
        let duration_text = self.text(duration);
        writeln!(out, "duration: {duration_text}").unwrap();
        let seed = match self.rng.random_range(0..3) {
            0 => 0,
            1 => u64::MAX,
            _ => self.rng.random(),
        };
        writeln!(out, "seed: {seed}").unwrap();
        let ack_timeout = if self.runnable {
            self.dur(1, S / 2)
        } else {
            self.dur(1, MONTH)
        };
        writeln!(out, "will_ack_timeout: {ack_timeout}").unwrap();
        if self.chance(0.5) {
            out += "broker: {embedded: {port: 0, response_information: \"resp/\"}}\n";
        } else {
            out += "broker: embedded\n";
        }
        self.out = out;
        self.out += "devices:\n";
        let max = if self.runnable { 3 } else { 40 };
        let lights = self.pick(1, max);
        self.light("light-{n}", lights);
        let sensors = self.pick(1, max.min(10));
        self.sensor(sensors);
        let phones = self.pick(1, max.min(10));
        self.phone(phones);
        let faults = self.faults(duration);
        let victims = std::mem::take(&mut self.victims);
        for victim in victims {
            self.out += &victim;
        }
        self.out += &faults;
        if self.chance(0.3) {
            self.out += "expect:\n  success_rate: \">= 0.5\"\n  latency_p99_ms: \"< 1e9\"\n";
        }
        std::mem::take(&mut self.out)
    }

    /// Fields every kind takes; `will`: the Will's (delay, session expiry) in seconds.
    fn common(&mut self, will: Option<(u64, u64)>, keepalive: Option<u64>) -> String {
        let mut g = String::new();
        writeln!(g, "    qos: {}", self.rng.random_range(0..=2)).unwrap();
        let keepalive = keepalive.unwrap_or_else(|| match self.rng.random_range(0..4) {
            0 => 0,
            1 => 65535,
            _ => self.pick(1, 65535),
        });
        writeln!(g, "    keepalive: {keepalive}s").unwrap();
        writeln!(g, "    clean_start: {}", self.chance(0.5)).unwrap();
        let receive_maximum = self.pick(1, 65535);
        writeln!(g, "    receive_maximum: {receive_maximum}").unwrap();
        writeln!(g, "    request_response_info: {}", self.chance(0.3)).unwrap();
        match will {
            Some((delay, session)) => {
                writeln!(g, "    session_expiry: {session}s").unwrap();
                let qos = self.rng.random_range(0..=2);
                let expiry = self.pick(1, U32_MAX);
                writeln!(
                    g,
                    "    will: {{delay: {delay}s, message_expiry: {expiry}s, qos: {qos}, retain: {}, user_properties: {{why: \"x\"}}}}",
                    self.chance(0.5)
                )
                .unwrap();
            }
            None => {
                let session = self.pick(0, U32_MAX);
                writeln!(g, "    session_expiry: {session}s").unwrap();
            }
        }
        if self.chance(0.3) {
            let ack_delay = self.dur(0, MONTH);
            let ack_drop = self.number(0.0, 1.0);
            writeln!(
                g,
                "    consume_wills: {{topics: [\"status/+\", \"#\"], ack_delay: {ack_delay}, ack_drop: {ack_drop}}}"
            )
            .unwrap();
        }
        g
    }

    /// A Will for a device no connection fault hits: any delay and session expiry.
    fn any_will(&mut self) -> Option<(u64, u64)> {
        self.chance(0.4).then(|| {
            let delay = self.pick(0, U32_MAX);
            let session = self.pick(0, U32_MAX);
            (delay, session)
        })
    }

    fn light(&mut self, id: &str, count: u64) {
        let will = self.any_will();
        let common = self.common(will, None);
        let delay = if self.runnable && self.chance(0.7) {
            self.dur(0, S / 10)
        } else {
            self.dur(0, MONTH)
        };
        let initial = ["ON", "OFF", "on"][self.rng.random_range(0..3)];
        write!(
            self.out,
            "  - kind: light\n    id: {id}\n    count: {count}\n{common}    delay: {delay}\n    initial: {initial}\n"
        )
        .unwrap();
    }

    fn sensor(&mut self, count: u64) {
        let will = self.any_will();
        let common = self.common(will, None);
        let every = if self.runnable {
            self.dur(MS, MONTH)
        } else {
            self.dur(1, MONTH)
        };
        let signal = if self.chance(0.5) {
            let (min, max) = (self.number(-1e12, 0.0), self.number(0.0, 1e12));
            let start = self.number(min, max);
            let step = self.number(0.0, 1e12);
            format!("{{walk: {{start: {start}, step: {step}, min: {min}, max: {max}}}}}")
        } else {
            let min = self.number(-1e12, 1e12);
            let max = self.number(min, 1e12);
            format!("{{range: {{min: {min}, max: {max}}}}}")
        };
        write!(
            self.out,
            "  - kind: sensor\n    id: sensor-{{n}}\n    count: {count}\n{common}    every: {every}\n    unit: \"°C\"\n    signal: {signal}\n"
        )
        .unwrap();
    }

    fn phone(&mut self, count: u64) {
        let will = self.any_will();
        let common = self.common(will, None);
        // A run of a second sends something only with a short interval: mostly those.
        let every_ns = if self.runnable && self.chance(0.8) {
            self.pick(MS, S / 2)
        } else if self.runnable {
            self.pick(MS, MONTH)
        } else {
            self.pick(1, MONTH)
        };
        let every = self.text(every_ns);
        let jitter = self.dur(0, every_ns - 1);
        let timeout = if self.runnable {
            self.dur(MS, S / 2)
        } else {
            self.dur(MS, MONTH)
        };
        // Any of the load models, at rates from a trickle to the bound.
        let pace = match self.rng.random_range(0..4) {
            0 => format!("    every: {every}\n    jitter: {jitter}\n"),
            1 if self.runnable => format!("    rate: {}/s\n", self.rng.random_range(1..=2000)),
            1 => format!("    rate: {}/s\n", self.rng.random_range(1..=1_000_000)),
            2 => format!("    group_rate: {}/m\n", self.rng.random_range(1..=60_000)),
            _ => format!("    in_flight: {}\n", self.rng.random_range(1..=64)),
        };
        let targets = match self.rng.random_range(0..3) {
            0 => "[\"light-*\"]",
            1 => "[\"light-*\", \"sensor-*\"]",
            _ => "[\"*\"]",
        };
        write!(
            self.out,
            "  - kind: phone\n    id: phone-{{n}}\n    count: {count}\n{common}    targets: {targets}\n{pace}    timeout: {timeout}\n"
        )
        .unwrap();
        if self.chance(0.3) {
            let requests = self.pick(1, i64::MAX as u64);
            writeln!(self.out, "    requests: {requests}").unwrap();
        }
        if self.chance(0.3) {
            self.out += "    response_topic: \"resp/{id}/{target}\"\n";
        }
    }

    /// The `faults:` list; connection faults get victims of their own (in `self.victims`),
    /// built to meet what each kind needs.
    fn faults(&mut self, duration: u64) -> String {
        let every_kind = !self.runnable && self.chance(0.3);
        let mut out = String::new();
        let all = CONNECTION
            .iter()
            .chain(&REQUEST)
            .chain(&RESPONDER)
            .chain(&NETWORK)
            .chain(&PROTOCOL);
        for (k, &kind) in all.enumerate() {
            if !every_kind && !self.chance(0.4) {
                continue;
            }
            let probability_ok = REQUEST.contains(&kind) || RESPONDER.contains(&kind);
            let schedule = match self.rng.random_range(0..3) {
                0 if probability_ok => format!("probability: {}", self.number(0.0, 1.0)),
                1 if duration >= 2 => {
                    // At most 200 firings per target: the schedule stays well within its bound.
                    let every = self.dur((duration / 200).max(1), duration - 1);
                    format!("every: {every}")
                }
                _ => format!("at: {}", self.dur(0, duration - 1)),
            };
            let (target, extra) = if CONNECTION.contains(&kind) {
                (format!("\"v{k}-*\""), self.victim(k, kind))
            } else if REQUEST.contains(&kind) {
                ("\"phone-*\"".to_string(), self.params(kind))
            } else if RESPONDER.contains(&kind) {
                let target =
                    ["\"light-*\"", "\"sensor-*\"", "light-1"][self.rng.random_range(0..3)];
                (target.to_string(), self.params(kind))
            } else {
                let target =
                    ["\"*\"", "\"light-*\"", "phone-1", "\"*-1\""][self.rng.random_range(0..4)];
                (target.to_string(), self.params(kind))
            };
            writeln!(
                out,
                "  - {{kind: {kind}, target: {target}, {schedule}{extra}}}"
            )
            .unwrap();
        }
        if out.is_empty() {
            out
        } else {
            format!("faults:\n{out}")
        }
    }

    /// `, name: value`, most of the time: an option left out takes its default.
    fn opt(&mut self, p: &mut String, name: &str, value: String) {
        if self.chance(0.7) {
            write!(p, ", {name}: {value}").unwrap();
        }
    }

    /// The options of a non-connection fault, each given or not, up to its bound.
    fn params(&mut self, kind: &str) -> String {
        let mut p = String::new();
        let directions = ["upstream", "downstream", "both"];
        let direction = directions[self.rng.random_range(0..3)].to_string();
        match kind {
            "huge_payload" | "binary_payload" if self.runnable => {
                // Within the embedded broker's Maximum Packet Size (1 MiB): a larger QoS 1/2
                // request is refused, re-sent on every reconnect, refused again, and the run
                // only ends at its drain limit.
                let size = self.bytes(1, 512 * 1024);
                self.opt(&mut p, "size", size);
            }
            "huge_payload" | "binary_payload" | "oversize_packet" => {
                let size = self.bytes(1, 16 * MIB);
                self.opt(&mut p, "size", size);
            }
            "slow" => {
                let min = self.pick(0, MONTH);
                let max = self.pick(min, MONTH);
                let (min, max) = (self.text(min), self.text(max));
                self.opt(&mut p, "delay", format!("{min}..{max}"));
            }
            "latency" => {
                let latency = self.pick(0, MONTH);
                let jitter = self.dur(0, latency);
                let latency = self.text(latency);
                let lasts = self.dur(1, MONTH);
                write!(p, ", latency: {latency}, jitter: {jitter}").unwrap();
                self.opt(&mut p, "lasts", lasts);
                self.opt(&mut p, "direction", direction);
            }
            "bandwidth" => {
                let rate = self.bytes(1, 16 * MIB);
                let lasts = self.dur(1, MONTH);
                self.opt(&mut p, "rate", rate);
                self.opt(&mut p, "lasts", lasts);
                self.opt(&mut p, "direction", direction);
            }
            "blackhole" => {
                let lasts = self.dur(1, MONTH);
                self.opt(&mut p, "lasts", lasts);
                self.opt(&mut p, "direction", direction);
            }
            "slicer" => {
                let slice = self.bytes(1, 16 * MIB);
                let slice_delay = self.dur(0, MONTH);
                let lasts = self.dur(1, MONTH);
                self.opt(&mut p, "slice", slice);
                self.opt(&mut p, "slice_delay", slice_delay);
                self.opt(&mut p, "lasts", lasts);
                self.opt(&mut p, "direction", direction);
            }
            "limit_data" => {
                let limit = self.bytes(1, 16 * MIB);
                self.opt(&mut p, "limit", limit);
                self.opt(&mut p, "direction", direction);
            }
            "withhold_acks" => {
                let lasts = self.dur(1, MONTH);
                write!(p, ", lasts: {lasts}").unwrap();
            }
            _ => {}
        }
        p
    }

    /// A group for connection fault `k` of `kind`, and the fault's `down_for`: a stall's
    /// device has a keepalive, a flap's a Will that outlasts it, and a fault that publishes a
    /// Will comes back a second or more clear of when it is due.
    fn victim(&mut self, k: usize, kind: &str) -> String {
        let top = if self.runnable { 2 * S } else { MONTH };
        let keepalive = (kind == "stall").then(|| {
            if self.runnable {
                1
            } else {
                self.pick(1, 65535)
            }
        });
        // A stall is noticed after 1.5 x keepalive; the broker gives up no sooner.
        let noticed = keepalive.map_or(0, |k| k * 3 * S / 2);
        let lo = if kind == "stall" { noticed + 1 } else { 1 };
        let top = top.max(lo + S);
        let (down_for, will) = if kind == "flap" {
            let down_for = self.pick(1, top);
            // Whole seconds, at least down_for + 1s.
            let need = (down_for + S).div_ceil(S);
            let delay = self.pick(need, U32_MAX);
            let session = self.pick(need, U32_MAX);
            (down_for, Some((delay, session)))
        } else {
            let mut will = self.chance(0.6).then(|| {
                let cap = if self.runnable { 3 } else { U32_MAX };
                (self.pick(0, cap), self.pick(0, cap))
            });
            let down_for = match will {
                Some((delay, session)) if kind != "disconnect" => {
                    let due = noticed + delay.min(session) * S;
                    let early = (due >= lo + S).then(|| (lo, (due - S).min(top)));
                    let late = (due + S <= top).then(|| ((due + S).max(lo), top));
                    match (early, late) {
                        (Some((a, b)), _) if self.chance(0.5) => self.pick(a, b),
                        (_, Some((a, b))) => self.pick(a, b),
                        (Some((a, b)), None) => self.pick(a, b),
                        (None, None) => {
                            will = None;
                            self.pick(lo, top)
                        }
                    }
                }
                _ => self.pick(lo, top),
            };
            (down_for, will)
        };
        let count = if self.runnable { 1 } else { self.pick(1, 3) };
        let common = self.common(will, keepalive);
        self.victims.push(format!(
            "  - kind: light\n    id: v{k}-{{n}}\n    count: {count}\n{common}"
        ));
        let down_for = self.text(down_for);
        format!(", down_for: {down_for}")
    }
}

#[test]
fn random_valid_fleets_are_accepted_and_refused_past_a_bound() {
    let mut refused = 0;
    for seed in 0..300 {
        let runnable = seed % 2 == 0;
        let yaml = Gen::new(seed, runnable).fleet(seed as usize);
        if let Err(e) = fleetsim::fleet::parse(&yaml, "<generated>") {
            panic!("generated fleet {seed} refused:\n{e}\n---\n{yaml}");
        }
        // The same fleet with one duration past 30 days: refused, naming the bound.
        let mut over = Gen::overshooting(seed, runnable, seed as usize % 16);
        let yaml = over.fleet(seed as usize);
        if !over.overshot.is_some_and(|past| yaml.contains(past)) {
            continue;
        }
        match fleetsim::fleet::parse(&yaml, "<generated>") {
            Err(e) if e.to_string().contains("at most 30days") => refused += 1,
            Err(e) => panic!("fleet {seed} past a bound: {e}\n---\n{yaml}"),
            Ok(_) => panic!("fleet {seed} past a bound accepted\n---\n{yaml}"),
        }
    }
    eprintln!("{refused} fleets refused past a bound");
    assert!(
        refused > 100,
        "only {refused} fleets had a duration pushed past its bound"
    );
}

/// Panics on any thread (device actors run on arbiters, whose panics the run does not see).
static PANICS: AtomicUsize = AtomicUsize::new(0);
static FIRST_PANIC: Mutex<String> = Mutex::new(String::new());

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if PANICS.fetch_add(1, Ordering::SeqCst) == 0
            && let Ok(mut first) = FIRST_PANIC.lock()
        {
            let thread = std::thread::current();
            *first = format!("{info} (thread {:?})", thread.name());
        }
        default(info);
    }));
}

#[test]
fn random_valid_fleets_run_without_a_panic_and_add_up() {
    count_panics();
    let began = Instant::now();
    let options = RunOptions {
        threads: 2,
        ..RunOptions::default()
    };
    for seed in 1000..1006 {
        let yaml = Gen::new(seed, true).fleet(seed as usize);
        let mut fleet = fleet_from(&yaml);
        fleet.duration = Duration::from_secs(1);
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| run(fleet, &options));
        let panics = PANICS.load(Ordering::SeqCst);
        assert_eq!(
            panics,
            0,
            "fleet {seed} panicked: {}\n---\n{yaml}",
            FIRST_PANIC.lock().map(|p| p.clone()).unwrap_or_default()
        );
        match result {
            Ok(Ok(report)) => {
                eprintln!(
                    "fleet {seed}: {} faults fired, {:?}",
                    report.faults.events.len(),
                    report.requests
                );
                assert_adds_up(&report);
                assert_eq!(report.devices.total, report.devices.connected, "{yaml}");
            }
            Ok(Err(e)) => eprintln!("fleet {seed}: run error (allowed): {e}"),
            Err(_) => unreachable!("a panic is counted above"),
        }
        eprintln!("fleet {seed}: {:?}", started.elapsed());
    }
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "took {:?}",
        began.elapsed()
    );
}

/// The JSON Schema editors use (`docs/fleet.schema.json`) accepts every fleet fleetsim
/// accepts: the generated fleets range over every field and bound.
#[test]
fn random_valid_fleets_pass_the_json_schema() {
    let validator = common::schema::validator();
    for seed in 0..300 {
        let yaml = Gen::new(seed, seed % 2 == 0).fleet(seed as usize);
        let errors = common::schema::schema_errors(&validator, &yaml);
        assert!(errors.is_empty(), "fleet {seed}: {errors:#?}\n---\n{yaml}");
    }
}
