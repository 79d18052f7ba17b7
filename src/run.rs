//! The runner: takes a validated fleet through its phases and returns the report.
//!
//! Phases: start the broker (if embedded) -> spawn one device actor per device over one
//! arbiter per core -> wait until every device is connected and subscribed -> `Begin` -> run
//! for the fleet's duration (or until Ctrl-C) -> `Wind` (no new requests) -> drain requests in
//! flight up to their timeout -> `Shutdown` (DISCONNECT) -> report.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::broker::{BrokerError, EmbeddedBroker};
use crate::collector::{Collector, GetProgress, GetReport, Progress};
use crate::device::{Begin, DeviceActor, DeviceSetup, Shutdown, Wind};
use crate::fleet::{BrokerTarget, Fleet, Role};
use crate::report::Report;

/// How a run is carried out, beyond what the fleet file says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Arbiters (threads) the device actors are spread over.
    pub threads: usize,
    /// How many exchanges to print step by step (0: none).
    pub show_exchanges: usize,
    /// Stop early on Ctrl-C (off in tests, which run several fleets in one process).
    pub handle_ctrl_c: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            show_exchanges: 0,
            handle_ctrl_c: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Embedded(#[from] BrokerError),
    #[error("cannot resolve broker address {host}:{port}: {reason}")]
    Resolve {
        host: String,
        port: u16,
        reason: String,
    },
    /// A device could not make its first connection after bounded retries.
    #[error("broker {addr} unreachable or refusing: {device}: {reason}")]
    Unreachable {
        addr: SocketAddr,
        device: String,
        reason: String,
    },
    #[error("only {ready} of {total} devices were connected and subscribed after {waited:?}")]
    NotReady {
        ready: u64,
        total: u64,
        waited: Duration,
    },
    #[error(
        "a fleet of {devices} devices{on_embedded} needs about {needed} open files, but this process may open only {limit} (ulimit -n): raise the limit{hint}",
        on_embedded = if *.embedded { " on the embedded broker" } else { "" },
        hint = if *.embedded { ", or run the broker elsewhere (--broker mqtt://...), which halves the need" } else { "" }
    )]
    TooFewFiles {
        devices: usize,
        embedded: bool,
        needed: u64,
        limit: u64,
    },
    #[error("cannot start the actor system: {0}")]
    System(#[source] std::io::Error),
}

const POLL: Duration = Duration::from_millis(20);
/// How many devices may be connecting (started, not yet ready) at once.
const DIAL_WINDOW: u64 = 500;

/// Runs a fleet to the end and returns its report. Blocks the calling thread.
pub fn run(fleet: Fleet, options: &RunOptions) -> Result<Report, RunError> {
    let threads = options.threads.max(1);
    let embedded = matches!(fleet.broker, BrokerTarget::Embedded { .. });
    check_open_files(fleet.devices.len(), embedded)?;
    let mut embedded = None;
    let (addr, label) = match &fleet.broker {
        BrokerTarget::Embedded { port } => {
            let broker = EmbeddedBroker::start(*port, threads)?;
            let addr = broker.addr();
            tracing::info!(
                "embedded broker listening on mqtt://{addr} (watch it: mosquitto_sub -V mqttv5 -h {} -p {} -t '#' -v)",
                addr.ip(),
                addr.port()
            );
            embedded = Some(broker);
            (addr, format!("embedded mqtt://{addr}"))
        }
        BrokerTarget::External { host, port } => {
            (resolve(host, *port)?, format!("mqtt://{host}:{port}"))
        }
    };

    let system = System::new();
    let result = system.block_on(drive(Arc::new(fleet), addr, label, options.clone()));
    System::current().stop();
    if let Some(mut broker) = embedded {
        broker.stop();
    }
    result
}

/// Files the process keeps open besides device sockets: listeners, epoll, pipes, stdio.
const FILES_RESERVED: u64 = 128;

/// Each device holds one socket, and an embedded broker the other end of each. Raises the soft
/// limit to the hard one first (a soft 1024 is common), then refuses a fleet that still cannot
/// fit, before anything has started, rather than failing with "too many open files" midway.
fn check_open_files(devices: usize, embedded: bool) -> Result<(), RunError> {
    let per_device = if embedded { 2 } else { 1 };
    let needed = devices as u64 * per_device + FILES_RESERVED;
    // When the limit cannot be read or raised (not Unix), let the run try.
    let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX) else {
        return Ok(());
    };
    if needed > limit {
        return Err(RunError::TooFewFiles {
            devices,
            embedded,
            needed,
            limit,
        });
    }
    Ok(())
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, RunError> {
    let failed = |reason: String| RunError::Resolve {
        host: host.to_owned(),
        port,
        reason,
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| failed(e.to_string()))?
        .next()
        .ok_or_else(|| failed("no address found".into()))
}

async fn drive(
    fleet: Arc<Fleet>,
    addr: SocketAddr,
    label: String,
    options: RunOptions,
) -> Result<Report, RunError> {
    let collector = Collector::new(fleet.clone(), options.show_exchanges).start();
    let arbiters: Vec<Arbiter> = (0..options.threads.max(1))
        .map(|_| Arbiter::new())
        .collect();
    let mut devices = Vec::with_capacity(fleet.devices.len());

    let outcome = async {
        dial_in(&fleet, &collector, &arbiters, &mut devices, addr).await?;
        tracing::info!(devices = devices.len(), duration = ?fleet.duration, "all devices ready, run starts");
        let started = Instant::now();
        broadcast(&devices, || Begin);
        run_for(fleet.duration, options.handle_ctrl_c).await;
        broadcast(&devices, || Wind);
        drain(&collector, longest_timeout(&fleet)).await;
        Ok(started.elapsed())
    }
    .await;

    for device in &devices {
        // A device that already stopped (gave up connecting) has nothing to say goodbye to.
        let _ = device.send(Shutdown).await;
    }
    // Let the goodbyes reach the socket before the arbiters go.
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    let result = match outcome {
        Ok(elapsed) => collector
            .send(GetReport {
                broker: label,
                duration: elapsed,
            })
            .await
            .map_err(|_| RunError::System(std::io::Error::other("collector stopped"))),
        Err(e) => Err(e),
    };
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    result
}

fn broadcast<M>(devices: &[Addr<DeviceActor>], message: impl Fn() -> M)
where
    M: Message<Result = ()> + Send + 'static,
    DeviceActor: Handler<M>,
{
    for device in devices {
        device.do_send(message());
    }
}

async fn progress(collector: &Addr<Collector>) -> Progress {
    collector.send(GetProgress).await.unwrap_or_default()
}

/// Starts the device actors, dealt round-robin over the arbiters, and waits until every one is
/// connected and subscribed, failing fast when one gives up.
///
/// At most [`DIAL_WINDOW`] devices are connecting at any moment: ten thousand CONNECTs at once
/// make any broker answer some of them after the connect timeout, and those devices would then
/// retry while the broker still holds their first attempt (which later takes their session over).
async fn dial_in(
    fleet: &Arc<Fleet>,
    collector: &Addr<Collector>,
    arbiters: &[Arbiter],
    devices: &mut Vec<Addr<DeviceActor>>,
    addr: SocketAddr,
) -> Result<(), RunError> {
    let total = fleet.devices.len() as u64;
    // Generous: a device gets bounded retries with backoff; large fleets take a while to dial in.
    let limit = Duration::from_secs(60) + Duration::from_millis(total);
    let begun = Instant::now();
    loop {
        let p = progress(collector).await;
        if let Some((device, reason)) = p.connect_failures.into_iter().next() {
            return Err(RunError::Unreachable {
                addr,
                device,
                reason,
            });
        }
        if p.ready >= total {
            return Ok(());
        }
        let connecting = devices.len() as u64 - p.ready;
        let more = DIAL_WINDOW.saturating_sub(connecting) as usize;
        for (index, spec) in fleet
            .devices
            .iter()
            .enumerate()
            .skip(devices.len())
            .take(more)
        {
            let setup = DeviceSetup {
                index: index as u32,
                spec: Arc::new(spec.clone()),
                broker: addr,
                seed: fleet.seed,
                collector: collector.clone(),
            };
            let arbiter = &arbiters[index % arbiters.len()];
            devices.push(DeviceActor::start_in_arbiter(
                &arbiter.handle(),
                move |_| DeviceActor::new(setup),
            ));
        }
        if begun.elapsed() > limit {
            return Err(RunError::NotReady {
                ready: p.ready,
                total,
                waited: begun.elapsed(),
            });
        }
        actix_rt::time::sleep(POLL).await;
    }
}

async fn run_for(duration: Duration, handle_ctrl_c: bool) {
    if handle_ctrl_c {
        tokio::select! {
            () = actix_rt::time::sleep(duration) => {}
            _ = tokio::signal::ctrl_c() => tracing::warn!("interrupted: ending the run early"),
        }
    } else {
        actix_rt::time::sleep(duration).await;
    }
}

/// After `Wind`, waits for requests in flight to be answered or to time out.
async fn drain(collector: &Addr<Collector>, longest_timeout: Duration) {
    let deadline = Instant::now() + longest_timeout + Duration::from_millis(500);
    while Instant::now() < deadline {
        if progress(collector).await.in_flight == 0 {
            return;
        }
        actix_rt::time::sleep(POLL).await;
    }
}

fn longest_timeout(fleet: &Fleet) -> Duration {
    fleet
        .devices
        .iter()
        .filter_map(|d| match &d.role {
            Role::Phone(p) => Some(p.timeout),
            _ => None,
        })
        .max()
        .unwrap_or_default()
}
