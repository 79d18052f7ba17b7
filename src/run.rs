//! The runner: takes a validated fleet through its phases and returns the report.
//!
//! Phases: start the broker (if embedded) -> start the collector, the supervisor and its
//! connection -> dial the devices in, one actor each over one arbiter per core -> wait until
//! every one is connected and subscribed -> `Begin`, and faults at their times -> run for the
//! fleet's duration (or until Ctrl-C) -> `Wind` (no new requests) -> drain requests in flight
//! and outage stories -> `Shutdown` (DISCONNECT) -> report.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::broker::{BrokerError, EmbeddedBroker, SupervisorLogin};
use crate::collector::{Collector, GetProgress, GetReport, Progress};
use crate::device::{Begin, DeviceActor, DeviceSetup, Inject, Shutdown, Wind};
use crate::faults;
use crate::fleet::{BrokerTarget, Expectation, Fleet, Role, Secret};
use crate::interrupt::{Interrupt, Signal};
use crate::report::Report;
use crate::supervisor::{GetStatus, GetWills, RunStarted, Supervisor};
use crate::transport::sources::{self, SourceError};
use crate::transport::{Endpoint, TlsError};

/// How a run is carried out, beyond what the fleet file says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Arbiters (threads) the device actors are spread over.
    pub threads: usize,
    /// How many exchanges to print step by step (0: none).
    pub show_exchanges: usize,
    /// End early on SIGINT or SIGTERM (off in tests, which run several fleets in one
    /// process); see [`crate::interrupt`].
    pub handle_signals: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            show_exchanges: 0,
            handle_signals: false,
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
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Sources(#[from] SourceError),
}

const POLL: Duration = Duration::from_millis(20);
/// How many devices may be connecting (started, not yet ready) at once. Mosquitto's listen
/// backlog is 100: beyond it, handshakes are dropped and each costs a 1 s SYN retry.
const DIAL_WINDOW: u64 = 100;

/// Runs a fleet to the end and returns its report. Blocks the calling thread.
pub fn run(fleet: Fleet, options: &RunOptions) -> Result<Report, RunError> {
    let threads = options.threads.max(1);
    let embedded = matches!(fleet.broker, BrokerTarget::Embedded { .. });
    check_open_files(fleet.devices.len(), embedded)?;
    let mut embedded = None;
    let mut supervisor_login = None;
    let (addr, label) = match &fleet.broker {
        BrokerTarget::Embedded { port } => {
            for warning in crate::fleet::oversized_payloads(&fleet, crate::broker::MAX_PACKET_SIZE)
            {
                tracing::warn!("{warning} (the embedded broker's limit)");
            }
            let settings = &fleet.embedded;
            // On a locked-down broker the supervisor gets its own account, to read everything.
            let locked = !settings.users.is_empty() || !settings.acl.is_empty();
            let login = locked.then(|| SupervisorLogin {
                username: crate::supervisor::CLIENT_ID.to_owned(),
                password: format!("{:032x}", rand::random::<u128>()),
            });
            let broker = EmbeddedBroker::start_with(*port, threads, settings, login.as_ref())?;
            supervisor_login = login;
            let addr = broker.addr();
            tracing::info!(
                "embedded broker listening on mqtt://{addr} (watch it: mosquitto_sub -V mqttv5 -h {} -p {} -t '#' -v)",
                addr.ip(),
                addr.port()
            );
            embedded = Some(broker);
            (addr, format!("embedded mqtt://{addr}"))
        }
        BrokerTarget::External { host, port, tls } => {
            let scheme = if *tls { "mqtts" } else { "mqtt" };
            (resolve(host, *port)?, format!("{scheme}://{host}:{port}"))
        }
    };
    let endpoint = endpoint(&fleet, addr)?.with_sources(sources::choose(
        &fleet.source_addresses,
        addr,
        fleet.devices.len(),
    )?);

    let system = System::new();
    // The supervisor's own account on a locked-down embedded broker, or the fleet's login for
    // it on an external one.
    let login = match supervisor_login {
        Some(l) => Some((l.username, Secret::new(l.password))),
        None => fleet.supervisor.as_ref().map(|l| {
            let password = l.password.clone().unwrap_or_else(|| Secret::new(""));
            (l.username.clone(), password)
        }),
    };
    let result = system.block_on(drive(
        Arc::new(fleet),
        endpoint,
        login,
        label,
        options.clone(),
    ));
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

/// How devices reach the broker: plain TCP, or TLS with the fleet's certificate files, read
/// and checked once here rather than by every device.
fn endpoint(fleet: &Fleet, addr: SocketAddr) -> Result<Endpoint, RunError> {
    let BrokerTarget::External {
        host, tls: true, ..
    } = &fleet.broker
    else {
        return Ok(Endpoint::plain(addr));
    };
    let files = &fleet.tls;
    let Some(ca_file) = &files.ca_file else {
        return Err(RunError::Tls(TlsError::NoCaFile));
    };
    let client = files.cert_file.as_deref().zip(files.key_file.as_deref());
    Ok(Endpoint::tls(addr, host, ca_file, client)?)
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

/// The actors of a run, as the runner holds them.
struct Cast {
    collector: Addr<Collector>,
    supervisor: Addr<Supervisor>,
    /// The supervisor's connection, when some device has a Will to watch.
    observer: Option<Addr<DeviceActor>>,
    devices: Vec<Addr<DeviceActor>>,
}

async fn drive(
    fleet: Arc<Fleet>,
    endpoint: Endpoint,
    supervisor_login: Option<(String, Secret)>,
    label: String,
    options: RunOptions,
) -> Result<Report, RunError> {
    let collector = Collector::new(fleet.clone(), options.show_exchanges).start();
    let supervisor = Supervisor::new(&fleet);
    let filters = supervisor.filters();
    let supervisor = supervisor.start();
    let observer = (!filters.is_empty()).then(|| {
        let observer = DeviceActor::observer(
            fleet.supervisor_id(),
            endpoint.clone(),
            supervisor_login,
            filters,
            supervisor.clone().recipient(),
            supervisor.clone().recipient(),
        );
        observer.start()
    });
    let arbiters: Vec<Arbiter> = (0..options.threads.max(1))
        .map(|_| Arbiter::new())
        .collect();
    let mut cast = Cast {
        collector,
        supervisor,
        observer,
        devices: Vec::with_capacity(fleet.devices.len()),
    };

    let mut interrupt = if options.handle_signals {
        Interrupt::listen().map_err(RunError::System)?
    } else {
        Interrupt::never()
    };
    let outcome = async {
        dial_in(&fleet, &mut cast, &arbiters, &endpoint, &interrupt).await?;
        let started = Instant::now();
        if interrupt.get().is_none() {
            tracing::info!(devices = cast.devices.len(), duration = ?fleet.duration, "all devices ready, run starts");
            cast.supervisor.do_send(RunStarted { at: started });
            cast.collector.do_send(RunStarted { at: started });
            for device in &cast.devices {
                device.do_send(Begin);
            }
            inject_faults(&fleet, &cast.devices, started);
            tokio::select! {
                () = actix_rt::time::sleep(fleet.duration) => {}
                _ = interrupt.wait() => {}
            }
        }
        // Awaited, not just sent: a request a phone sends before it winds down is then queued
        // at the collector ahead of the drain's first look at what is still in flight. All at
        // once: one by one, ten thousand round trips would let phones go on sending meanwhile.
        futures_util::future::join_all(cast.devices.iter().map(|d| d.send(Wind))).await;
        drain(&cast, drain_limit(&fleet), &interrupt).await;
        Ok(started.elapsed())
    }
    .await;

    for device in cast.devices.iter().chain(&cast.observer) {
        // A device that already stopped (gave up connecting) has nothing to say goodbye to.
        let _ = device.send(Shutdown).await;
    }
    // Let the goodbyes reach the socket before the arbiters go.
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    let result = match outcome {
        Ok(elapsed) => {
            let interrupted = interrupt.get().map(|(signal, _)| signal);
            report(&cast, &fleet.expect, label, elapsed, interrupted).await
        }
        Err(e) => Err(e),
    };
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    result
}

async fn report(
    cast: &Cast,
    expect: &[Expectation],
    broker: String,
    duration: Duration,
    interrupted: Option<Signal>,
) -> Result<Report, RunError> {
    let gone = |_| RunError::System(std::io::Error::other("an actor stopped before the report"));
    let mut report = cast
        .collector
        .send(GetReport { broker, duration })
        .await
        .map_err(gone)?;
    report.wills = cast.supervisor.send(GetWills).await.map_err(gone)?;
    report.faults.add_outages(&report.wills);
    report.interrupted = interrupted.is_some();
    report.signal = interrupted;
    report.judge(expect);
    Ok(report)
}

/// Sends each scheduled fault to its device at its time, walking the schedule with one timer.
fn inject_faults(fleet: &Fleet, devices: &[Addr<DeviceActor>], started: Instant) {
    let schedule = faults::schedule(fleet);
    if schedule.is_empty() {
        return;
    }
    let devices = devices.to_vec();
    actix_rt::spawn(async move {
        for injection in schedule {
            actix_rt::time::sleep_until((started + injection.at).into()).await;
            if let Some(device) = devices.get(injection.device) {
                device.do_send(Inject {
                    kind: injection.kind,
                    down_for: injection.down_for,
                    params: injection.params,
                });
            }
        }
    });
}

async fn progress(collector: &Addr<Collector>) -> Progress {
    collector.send(GetProgress).await.unwrap_or_default()
}

/// Starts the device actors, dealt round-robin over the arbiters, and waits until every one
/// (and the supervisor's connection) is connected and subscribed, failing fast when one gives up.
///
/// At most [`DIAL_WINDOW`] devices are connecting at any moment: ten thousand CONNECTs at once
/// make any broker answer some of them after the connect timeout, and those devices would then
/// retry while the broker still holds their first attempt (which later takes their session over).
async fn dial_in(
    fleet: &Arc<Fleet>,
    cast: &mut Cast,
    arbiters: &[Arbiter],
    endpoint: &Endpoint,
    interrupt: &Interrupt,
) -> Result<(), RunError> {
    let addr = endpoint.addr();
    let total = fleet.devices.len() as u64;
    let per_device = faults::per_device(fleet);
    let reconnect_window = crate::device::reconnect_window(fleet.devices.len());
    // Generous: a device gets bounded retries with backoff; large fleets take a while to dial in.
    let limit = Duration::from_secs(60) + Duration::from_millis(total);
    let begun = Instant::now();
    loop {
        if interrupt.get().is_some() {
            return Ok(());
        }
        let p = progress(&cast.collector).await;
        let s = cast.supervisor.send(GetStatus).await.unwrap_or_default();
        let failure = p
            .connect_failures
            .into_iter()
            .next()
            .or_else(|| s.failure.map(|reason| (fleet.supervisor_id(), reason)));
        if let Some((device, reason)) = failure {
            return Err(RunError::Unreachable {
                addr,
                device,
                reason,
            });
        }
        if p.ready >= total && (s.ready || cast.observer.is_none()) {
            return Ok(());
        }
        let connecting = cast.devices.len() as u64 - p.ready;
        let more = DIAL_WINDOW.saturating_sub(connecting) as usize;
        let started = cast.devices.len();
        for (index, spec) in fleet.devices.iter().enumerate().skip(started).take(more) {
            let setup = DeviceSetup {
                index: index as u32,
                spec: Arc::new(spec.clone()),
                endpoint: endpoint.for_device(index),
                seed: fleet.seed,
                events: cast.collector.clone().recipient(),
                facts: Some(cast.supervisor.clone().recipient()),
                chances: per_device[index].chances.clone(),
                proxied: per_device[index].proxied,
                reconnect_window,
            };
            let arbiter = &arbiters[index % arbiters.len()];
            cast.devices.push(DeviceActor::start_in_arbiter(
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

/// How long the drain goes on once the run was interrupted: long enough for answers already on
/// their way, short enough for someone waiting at a terminal or a CI job being cancelled.
const INTERRUPTED_DRAIN: Duration = Duration::from_secs(2);

/// After `Wind`, waits for requests in flight to be answered or to time out, and for outage
/// stories to end (Wills due, acks awaited), up to `limit`, or briefly once interrupted.
async fn drain(cast: &Cast, limit: Duration, interrupt: &Interrupt) {
    let deadline = Instant::now() + limit;
    loop {
        let cut = interrupt.get().map(|(_, at)| at + INTERRUPTED_DRAIN);
        let until = cut.map_or(deadline, |cut| cut.min(deadline));
        if Instant::now() >= until {
            return;
        }
        let in_flight = progress(&cast.collector).await.in_flight;
        let pending = cast
            .supervisor
            .send(GetStatus)
            .await
            .map_or(0, |s| s.pending);
        if in_flight == 0 && pending == 0 {
            return;
        }
        actix_rt::time::sleep(POLL).await;
    }
}

/// The longest the drain may need: a phone's timeout, or a fault's outage with its Will due
/// (after a stall, 1.5 x keepalive late), its ack awaited and the device back to learn of it.
fn drain_limit(fleet: &Fleet) -> Duration {
    let requests = fleet
        .devices
        .iter()
        .filter_map(|d| match &d.role {
            Role::Phone(p) => Some(p.timeout),
            _ => None,
        })
        .max()
        .unwrap_or_default();
    let outages = fleet
        .faults
        .iter()
        .flat_map(|f| f.targets.iter().map(move |&t| (f, t)))
        .filter_map(|(fault, target)| {
            let device = fleet.devices.get(target)?;
            let will = device.will.as_ref()?;
            let noticed = device.connection.keepalive.mul_f64(1.5);
            Some(fault.down_for.max(noticed + will.delay) + fleet.will_ack_timeout)
        })
        .max()
        .unwrap_or_default();
    requests.max(outages) + Duration::from_secs(3)
}
