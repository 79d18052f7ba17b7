//! The benchmark's peer: fleetsim's bench workload (lights answering phones over MQTT 5
//! request/response, one connection per device) written with another client, `mqtt5`'s async
//! `MqttClient`, so `scripts/bench` can set fleetsim's figures beside it.
//!
//! `cargo bench --bench peer -- --port P --lights N --duration SECS` runs N lights and N phones
//! against a broker on 127.0.0.1:P and prints one line:
//! `peer devices=.. connect_s=.. sent=.. matched=.. timed_out=.. failed=.. stray=.. p50_ms=.. p99_ms=..`.
//! Flags it does not know (cargo bench adds `--bench`) are ignored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use mqtt5::{ConnectOptions, MqttClient, PublishOptions, PublishProperties, QoS, SubscribeOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// The same workload as fleetsim's bench fleet file.
const EVERY: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE: Duration = Duration::from_secs(30);
const QOS: QoS = QoS::AtLeastOnce;
const PAYLOADS: [&str; 3] = ["ON", "OFF", "TOGGLE"];
/// At most this many clients connecting at once, as fleetsim's runner does.
const DIAL_WINDOW: usize = 100;

struct Args {
    port: u16,
    lights: usize,
    duration: Duration,
}

impl Args {
    fn parse() -> Self {
        let mut port = None;
        let mut args = Args {
            port: 0,
            lights: 100,
            duration: Duration::from_secs(20),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => port = Some(value().parse().expect("--port: a port number")),
                "--lights" => args.lights = value().parse().expect("--lights: a count"),
                "--duration" => {
                    let text = value();
                    args.duration = match text.parse::<u64>() {
                        Ok(secs) => Duration::from_secs(secs),
                        Err(_) => humantime::parse_duration(&text)
                            .expect("--duration: seconds, or a duration like 20s"),
                    };
                }
                _ => {}
            }
        }
        // No default port: the peer only runs against the broker scripts/bench starts.
        let Some(port) = port else {
            eprintln!(
                "usage: cargo bench --bench peer -- --port PORT [--lights N] [--duration SECS]"
            );
            std::process::exit(2);
        };
        args.port = port;
        args
    }
}

/// Everything the devices count, shared by all of them.
struct Stats {
    sent: AtomicU64,
    matched: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
    /// Answers that end no open request: unknown, duplicate or late.
    stray: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Stats {
    fn in_flight(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
            - self.matched.load(Ordering::Relaxed)
            - self.timed_out.load(Ordering::Relaxed)
            - self.failed.load(Ordering::Relaxed)
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        let h = self.latency_us.lock().expect("latency lock poisoned");
        if h.is_empty() {
            return 0.0;
        }
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// A phone's open requests, by sequence number; its Correlation Data is `{id}:{seq}`.
#[derive(Default)]
struct Pending(Mutex<HashMap<u64, Instant>>);

impl Pending {
    fn open(&self, seq: u64, at: Instant) {
        self.0
            .lock()
            .expect("pending lock poisoned")
            .insert(seq, at);
    }

    fn close(&self, seq: u64) -> Option<Instant> {
        self.0.lock().expect("pending lock poisoned").remove(&seq)
    }

    /// Ends requests open for longer than `TIMEOUT`, returning how many.
    fn expire(&self, now: Instant) -> u64 {
        let mut open = self.0.lock().expect("pending lock poisoned");
        let before = open.len();
        open.retain(|_, sent| now.duration_since(*sent) < TIMEOUT);
        (before - open.len()) as u64
    }

    /// Ends every open request, returning how many.
    fn expire_all(&self) -> u64 {
        let mut open = self.0.lock().expect("pending lock poisoned");
        let left = open.len();
        open.clear();
        left as u64
    }
}

fn main() {
    let args = Args::parse();
    // Each client is one socket; a soft limit of 1024 would stop a large fleet midway.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let broker = format!("mqtt://127.0.0.1:{}", args.port);
    let stats = Arc::new(Stats {
        sent: AtomicU64::new(0),
        matched: AtomicU64::new(0),
        timed_out: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stray: AtomicU64::new(0),
        latency_us: Mutex::new(
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
        ),
    });
    let phones: Vec<Arc<Pending>> = (0..args.lights).map(|_| Arc::default()).collect();

    let dial_start = Instant::now();
    let window = Arc::new(Semaphore::new(DIAL_WINDOW));
    let mut dialing = JoinSet::new();
    for n in 1..=args.lights {
        let (broker, window) = (broker.clone(), window.clone());
        dialing.spawn(async move {
            let _permit = window.acquire_owned().await.expect("dial window closed");
            (n, true, start_light(&broker, n).await)
        });
    }
    for (n, pending) in (1..=args.lights).zip(&phones) {
        let (broker, window) = (broker.clone(), window.clone());
        let (stats, pending) = (stats.clone(), pending.clone());
        dialing.spawn(async move {
            let _permit = window.acquire_owned().await.expect("dial window closed");
            (n, false, start_phone(&broker, n, stats, pending).await)
        });
    }
    let mut lights = Vec::with_capacity(args.lights);
    let mut phone_clients = vec![None; args.lights];
    while let Some(joined) = dialing.join_next().await {
        let (n, is_light, client) = joined.expect("a dial-in task panicked");
        if is_light {
            lights.push(client);
        } else {
            phone_clients[n - 1] = Some(client);
        }
    }
    let connect_s = dial_start.elapsed().as_secs_f64();

    // Every device is subscribed: phones start now, each at its own offset in the first interval.
    let begin = Instant::now();
    let end = begin + args.duration;
    let mut senders = JoinSet::new();
    for (i, (client, pending)) in phone_clients.iter().zip(&phones).enumerate() {
        let client = client.clone().expect("every phone dialed in");
        let mut rng = SmallRng::seed_from_u64(i as u64);
        let offset = Duration::from_micros(rng.random_range(0..EVERY.as_micros() as u64));
        let (stats, pending) = (stats.clone(), pending.clone());
        senders.spawn(send_requests(
            client,
            i + 1,
            begin + offset,
            end,
            stats,
            pending,
        ));
    }
    senders.join_all().await;

    // Drain: give requests in flight up to their timeout, then count what is left as timed out.
    let drain_end = Instant::now() + TIMEOUT;
    while stats.in_flight() > 0 && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pending in &phones {
        let left = pending.expire_all();
        stats.timed_out.fetch_add(left, Ordering::Relaxed);
    }

    let mut goodbyes = JoinSet::new();
    for client in lights
        .into_iter()
        .chain(phone_clients.into_iter().flatten())
    {
        goodbyes.spawn(async move { client.disconnect().await });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), goodbyes.join_all()).await;

    println!(
        "peer devices={} connect_s={:.2} sent={} matched={} timed_out={} failed={} stray={} p50_ms={:.2} p99_ms={:.2}",
        args.lights * 2,
        connect_s,
        stats.sent.load(Ordering::Relaxed),
        stats.matched.load(Ordering::Relaxed),
        stats.timed_out.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.stray.load(Ordering::Relaxed),
        stats.percentile_ms(0.50),
        stats.percentile_ms(0.99),
    );
}

async fn connect(broker: &str, id: &str) -> MqttClient {
    let options = ConnectOptions::new(id)
        .with_clean_start(true)
        .with_keep_alive(KEEPALIVE);
    let client = MqttClient::with_options(options);
    client
        .connect(broker)
        .await
        .unwrap_or_else(|e| panic!("{id} cannot connect to {broker}: {e}"));
    client
}

fn subscribe_options() -> SubscribeOptions {
    SubscribeOptions {
        qos: QOS,
        ..SubscribeOptions::default()
    }
}

/// A light: applies `ON`/`OFF`/`TOGGLE` and answers on the Response Topic, Correlation Data
/// copied. The callback is sync, so each answer is published from a task of its own.
async fn start_light(broker: &str, n: usize) -> MqttClient {
    let id = format!("light-{n}");
    let client = connect(broker, &id).await;
    let responder = client.clone();
    let on = Arc::new(AtomicBool::new(false));
    client
        .subscribe_with_options(format!("bench/{id}/cmd"), subscribe_options(), move |msg| {
            let Some(topic) = msg.properties.response_topic else {
                return;
            };
            match msg.payload.as_slice() {
                b"ON" => on.store(true, Ordering::Relaxed),
                b"OFF" => on.store(false, Ordering::Relaxed),
                _ => {
                    on.fetch_xor(true, Ordering::Relaxed);
                }
            }
            let state = if on.load(Ordering::Relaxed) {
                "ON"
            } else {
                "OFF"
            };
            let answer = format!("{{\"power\":\"{state}\"}}");
            let options = PublishOptions {
                qos: QOS,
                properties: PublishProperties {
                    correlation_data: msg.properties.correlation_data,
                    ..PublishProperties::default()
                },
                ..PublishOptions::default()
            };
            let responder = responder.clone();
            tokio::spawn(async move {
                let _ = responder.publish_with_options(topic, answer, options).await;
            });
        })
        .await
        .unwrap_or_else(|e| panic!("{id} cannot subscribe: {e}"));
    client
}

/// A phone's connection: answers on its reply topic are matched in the callback, against its
/// own open requests, by the sequence number at the end of the Correlation Data.
async fn start_phone(
    broker: &str,
    n: usize,
    stats: Arc<Stats>,
    pending: Arc<Pending>,
) -> MqttClient {
    let id = format!("phone-{n}");
    let client = connect(broker, &id).await;
    client
        .subscribe_with_options(
            format!("bench/replies/{id}"),
            subscribe_options(),
            move |msg| {
                let now = Instant::now();
                let seq = msg
                    .properties
                    .correlation_data
                    .as_deref()
                    .and_then(|data| std::str::from_utf8(data).ok())
                    .and_then(|text| text.rsplit(':').next())
                    .and_then(|seq| seq.parse().ok());
                match seq.and_then(|seq| pending.close(seq)) {
                    Some(sent) => {
                        let us = now.duration_since(sent).as_micros() as u64;
                        let _ = stats
                            .latency_us
                            .lock()
                            .expect("latency lock poisoned")
                            .record(us.max(1));
                        stats.matched.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        stats.stray.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{id} cannot subscribe: {e}"));
    client
}

/// Sends a request every `EVERY` from `first` until `end`, expiring unanswered ones as it goes.
async fn send_requests(
    client: MqttClient,
    n: usize,
    first: Instant,
    end: Instant,
    stats: Arc<Stats>,
    pending: Arc<Pending>,
) {
    let id = format!("phone-{n}");
    let topic = format!("bench/light-{n}/cmd");
    let reply_to = format!("bench/replies/{id}");
    let mut ticks = tokio::time::interval_at(first, EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    for seq in 1.. {
        let tick = tokio::select! {
            tick = ticks.tick() => tick,
            () = tokio::time::sleep_until(end) => break,
        };
        if tick >= end {
            break;
        }
        let timed_out = pending.expire(Instant::now());
        stats.timed_out.fetch_add(timed_out, Ordering::Relaxed);

        let options = PublishOptions {
            qos: QOS,
            properties: PublishProperties {
                response_topic: Some(reply_to.clone()),
                correlation_data: Some(format!("{id}:{seq}").into_bytes()),
                ..PublishProperties::default()
            },
            ..PublishOptions::default()
        };
        let payload = PAYLOADS[(seq as usize - 1) % PAYLOADS.len()];
        pending.open(seq, Instant::now());
        stats.sent.fetch_add(1, Ordering::Relaxed);
        // QoS 1: this waits for the PUBACK; the answer is matched in the callback meanwhile.
        if client
            .publish_with_options(topic.as_str(), payload, options)
            .await
            .is_err()
            && pending.close(seq).is_some()
        {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
