//! The start barrier of a sharded run: shards on several machines begin sending together.
//! Through the broker itself, so no other service is needed: each shard, once its devices are
//! ready, subscribes to `fleetsim/runs/RUN/ready/+`, publishes a retained `I/N` under
//! `fleetsim/runs/RUN/ready/I`, and waits until it has seen all N. Once through, it clears its
//! retained message (every shard is subscribed by then), so the run id can be used again; a
//! shard that dies while it waits has its message cleared by its Will.
//! Or, without a broker round, `--start-at` names the instant.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mqtt5::{ConnectOptions, MqttClient, PublishOptions, QoS};

use super::RunError;
use crate::fleet::{Secret, Shard};
use crate::interrupt::Interrupt;

/// How long a shard waits for the others before it gives up.
pub const BARRIER_WAIT: Duration = Duration::from_secs(600);

fn failed(run: &str, reason: impl std::fmt::Display) -> RunError {
    RunError::Barrier {
        run: run.to_owned(),
        reason: reason.to_string(),
    }
}

/// The topic shard `shard` of run `run` says it is ready on.
pub fn ready_topic(run: &str, shard: Shard) -> String {
    format!("fleetsim/runs/{run}/ready/{}", shard.index + 1)
}

/// Waits, through the broker at `addr`, until every shard of `run` is ready.
pub async fn wait_for_shards(
    addr: SocketAddr,
    login: Option<(String, Secret)>,
    client_prefix: &str,
    run: &str,
    shard: Shard,
    interrupt: &Interrupt,
) -> Result<(), RunError> {
    let id = format!("{client_prefix}fleetsim-barrier-{run}-{}", shard.index + 1);
    let topic = ready_topic(run, shard);
    // A shard that dies while it waits (killed, evicted) must not leave its "ready" behind
    // for the next try of the run: its Will, an empty retained message, clears it.
    let will = mqtt5::WillMessage::new(topic.clone(), Vec::new())
        .with_qos(QoS::AtLeastOnce)
        .with_retain(true);
    let mut options = ConnectOptions::new(id)
        .with_clean_start(true)
        .with_will(will);
    if let Some((user, password)) = &login {
        options = options.with_credentials(user.clone(), password.expose().as_bytes());
    }
    let client = MqttClient::with_options(options);
    client
        .connect(&format!("mqtt://{addr}"))
        .await
        .map_err(|e| failed(run, format!("cannot connect to the broker: {e}")))?;
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let into = seen.clone();
    let count = shard.count;
    let changed = Arc::new(tokio::sync::Notify::new());
    let notify = changed.clone();
    client
        .subscribe(format!("fleetsim/runs/{run}/ready/+"), move |m| {
            // A shard of another split of the same run id would never add up: only N counts.
            let text = String::from_utf8_lossy(&m.payload);
            if Shard::parse(&text).is_ok_and(|s| s.count == count) {
                into.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(text.into_owned());
                notify.notify_one();
            }
        })
        .await
        .map_err(|e| failed(run, format!("cannot subscribe: {e}")))?;
    let ready = PublishOptions {
        qos: QoS::AtLeastOnce,
        retain: true,
        ..PublishOptions::default()
    };
    client
        .publish_with_options(topic.clone(), shard.to_string().into_bytes(), ready.clone())
        .await
        .map_err(|e| failed(run, format!("cannot publish {topic}: {e}")))?;
    tracing::info!(shard = %shard, run, "ready; waiting for the run's other shards");
    let deadline = tokio::time::Instant::now() + BARRIER_WAIT;
    let mut signals = interrupt.clone();
    let result = loop {
        let have = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        if have >= count as usize {
            break Ok(true);
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep_until(deadline) => {
                break Err(failed(run, format!(
                    "only {have} of {count} shards were ready after {}",
                    humantime::format_duration(BARRIER_WAIT)
                )));
            }
            _ = signals.wait() => break Ok(false),
        }
    };
    // Every shard subscribed before it published, so all have seen this one: clear it.
    let _ = client.publish_with_options(topic, Vec::new(), ready).await;
    let _ = client.disconnect().await;
    match result {
        Ok(true) => {
            tracing::info!(shard = %shard, run, "all {count} shards ready");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sleeps until `at` (wall clock), or a signal.
pub async fn wait_until(at: SystemTime, interrupt: &Interrupt) {
    let Ok(wait) = at.duration_since(SystemTime::now()) else {
        tracing::warn!(
            "--start-at {} has already passed: starting now",
            humantime::format_rfc3339_seconds(at)
        );
        return;
    };
    tracing::info!(
        "ready; starting at {} (in {})",
        humantime::format_rfc3339_seconds(at),
        humantime::format_duration(Duration::from_secs(wait.as_secs()))
    );
    let mut signals = interrupt.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = signals.wait() => {}
    }
}
