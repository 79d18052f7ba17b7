//! `--metrics ADDR`: the run's counts served at `http://ADDR/metrics` in the OpenMetrics text
//! format while it runs, for Prometheus (and, once runs are sharded, one view of every shard:
//! each series carries a `fleet` label).
//!
//! Nothing is counted twice: a scrape reads the shards' tallies (under their locks, as the
//! progress line does) and the shared fault and Will counts, and encodes them with
//! `prometheus-client`'s [`Collector`]; the HTTP side is `hyper`, already built for the
//! embedded broker.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::fleet::Fleet;
use crate::shared::Shared;
use crate::tally::{Glance, ShardTally};

/// Upper bounds of the round-trip histogram's buckets, in seconds (and `+Inf`): from half a
/// millisecond, where a loopback round trip lies, to ten seconds, past any sane timeout.
const BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What a scrape reads.
#[derive(Debug)]
struct FleetCollector {
    shards: Vec<ShardTally>,
    shared: Arc<Shared>,
    devices: usize,
}

/// The registry of a run: one collector, every series labelled with the fleet's name, and
/// for a shard with `shard` (`2/8`) and `run` (the run id, or the seed).
pub fn registry(
    fleet: &Fleet,
    run_id: Option<&str>,
    shards: Vec<ShardTally>,
    shared: Arc<Shared>,
) -> Registry {
    let mut labels: Vec<(Cow<'static, str>, Cow<'static, str>)> =
        vec![("fleet".into(), fleet.name.clone().into())];
    if !fleet.shard.is_whole() {
        labels.push(("shard".into(), fleet.shard.to_string().into()));
        let run = run_id.map_or_else(|| format!("seed-{}", fleet.seed), str::to_owned);
        labels.push(("run".into(), run.into()));
    }
    let mut registry = Registry::with_prefix_and_labels("fleetsim", labels.into_iter());
    registry.register_collector(Box::new(FleetCollector {
        shards,
        shared,
        devices: fleet.shard_len(),
    }));
    registry
}

/// The registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Glance {
            requests: q,
            responders: r,
            unplanned_drops: drops,
            connected,
            latency,
        } = Glance::of(&self.shards);
        ConstCounter::new(q.sent).encode(encoder.encode_descriptor(
            "requests_sent",
            "Requests phones sent",
            None,
            MetricType::Counter,
        )?)?;
        // Apart from `sent`, so that summing over outcomes counts each request once.
        counters(
            &mut encoder,
            "requests",
            "Requests phones sent, by how each ended so far (or was not sent)",
            "outcome",
            &[
                ("matched", q.matched),
                ("late", q.late),
                ("timed_out", q.timed_out),
                ("failed", q.failed),
                ("skipped_offline", q.skipped_offline),
            ],
        )?;
        counters(
            &mut encoder,
            "answers",
            "Answers worth a look: stray (unmatched, duplicate) or wrong (error, bad)",
            "kind",
            &[
                ("unmatched", q.unmatched_responses),
                ("duplicate", q.duplicate_responses),
                ("error", q.error_answers),
                ("bad", q.bad_answers),
            ],
        )?;
        counters(
            &mut encoder,
            "responder_requests",
            "Requests lights and sensors received, and answered",
            "event",
            &[("received", r.received), ("answered", r.answered)],
        )?;
        let faults = self.shared.stories.injected_so_far();
        ConstCounter::new(faults).encode(encoder.encode_descriptor(
            "faults_injected",
            "Faults injected so far",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(drops).encode(encoder.encode_descriptor(
            "unplanned_drops",
            "Connections dropped without a fault doing it",
            None,
            MetricType::Counter,
        )?)?;
        let (published, acked) = self.shared.wills.seen();
        counters(
            &mut encoder,
            "wills",
            "Wills the supervisor saw published, and acked on their Response Topic",
            "event",
            &[("published", published), ("acked", acked)],
        )?;
        ConstGauge::new(connected.max(0)).encode(encoder.encode_descriptor(
            "devices_connected",
            "Devices connected now",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(self.devices as i64).encode(encoder.encode_descriptor(
            "devices",
            "Devices in the fleet",
            None,
            MetricType::Gauge,
        )?)?;
        // Counts per bucket, not cumulative: the encoder adds them up for `le`.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = BUCKETS_S
            .iter()
            .map(|&s| (s, latency.count_up_to(Duration::from_secs_f64(s))))
            .chain([(f64::INFINITY, latency.len())])
            .map(|(bound, up_to)| {
                let n = up_to.saturating_sub(below);
                below = below.max(up_to);
                (bound, n)
            })
            .collect();
        let mut histogram = encoder.encode_descriptor(
            "round_trip",
            "Round trips of matched requests, request published to answer received",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            latency.sum().as_secs_f64(),
            latency.len(),
            &buckets,
            None,
        )
    }
}

/// Scrapes served at once: each holds a file the devices' budget did not count.
const SCRAPES_AT_ONCE: usize = 8;
/// The longest a scrape's connection may stay open: a scrape takes milliseconds, and an idle
/// or slow client must not hold a file for the rest of the run.
const SCRAPE_TIME: Duration = Duration::from_secs(10);

/// Serves `/metrics` on `listener` until the runtime stops; other paths get 404. At most
/// [`SCRAPES_AT_ONCE`] connections at a time, each closed after one answer or
/// [`SCRAPE_TIME`].
pub async fn serve(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(SCRAPES_AT_ONCE));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of files, most likely: wait for some to be given back, not spin.
                tracing::warn!("metrics: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        actix_rt::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(answer(&request, &registry)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(SCRAPE_TIME, connection).await;
            drop(slot);
        });
    }
}

fn answer(request: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if request.uri().path() != "/metrics" {
        *response.status_mut() = StatusCode::NOT_FOUND;
        *response.body_mut() = Full::new(Bytes::from_static(b"fleetsim serves /metrics\n"));
        return response;
    }
    *response.body_mut() = Full::new(Bytes::from(encode(registry)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response
}

/// Where the metrics were asked to be served, bound before the run starts.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::narrate::NarrationOptions;

    #[test]
    fn a_scrape_adds_up_the_shards_with_the_fleet_label_and_histogram_buckets() {
        let shards = vec![ShardTally::default(), ShardTally::default()];
        for (i, shard) in shards.iter().enumerate() {
            let mut t = shard.lock();
            t.requests.sent = 5;
            t.requests.matched = 4 + i as u64;
            t.requests.error_answers = 1;
            t.timeline.at(Duration::ZERO).connected += 2;
            t.latency.record(Duration::from_millis(3));
        }
        shards[0].lock().latency.record(Duration::from_secs(20));
        let shared = Shared::new(NarrationOptions::default());
        let mut fleet = crate::fleet::parse(
            "name: home\ndevices:\n  - {kind: light, id: 'l{n}', count: 4}\n",
            "<test>",
        )
        .unwrap();
        let text = encode(&registry(&fleet, None, shards.clone(), shared.clone()));
        for line in [
            "# TYPE fleetsim_requests counter",
            r#"fleetsim_requests_sent_total{fleet="home"} 10"#,
            r#"fleetsim_requests_total{fleet="home",outcome="matched"} 9"#,
            r#"fleetsim_answers_total{fleet="home",kind="error"} 2"#,
            r#"fleetsim_devices_connected{fleet="home"} 4"#,
            "# TYPE fleetsim_round_trip_seconds histogram",
            r#"fleetsim_round_trip_seconds_bucket{fleet="home",le="0.0025"} 0"#,
            r#"fleetsim_round_trip_seconds_bucket{fleet="home",le="0.005"} 2"#,
            r#"fleetsim_round_trip_seconds_bucket{fleet="home",le="10.0"} 2"#,
            r#"fleetsim_round_trip_seconds_bucket{fleet="home",le="+Inf"} 3"#,
            r#"fleetsim_round_trip_seconds_count{fleet="home"} 3"#,
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // A shard says which, and of which run.
        fleet.shard = crate::fleet::Shard { index: 1, count: 2 };
        let text = encode(&registry(&fleet, Some("r7"), shards, shared));
        assert!(
            text.contains(r#"fleetsim_devices{fleet="home",shard="2/2",run="r7"} 2"#),
            "{text}"
        );
    }
}
