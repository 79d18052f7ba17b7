//! The run, phase by phase: dial the devices in (and the supervisor's connection), run for the
//! fleet's duration with faults at their times, wind down, drain what is in flight, say
//! goodbye, count. The runner waits on what devices report ([`crate::shared::Progress`]), on
//! timers and on signals, never by polling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::watch;

use super::RunError;
use super::assemble::assemble;
use super::barrier;
use super::progress;
use crate::device::{Begin, DeviceActor, DeviceSetup, Inject, Shutdown, Wind};
use crate::faults;
use crate::fleet::{Fleet, Role, Secret};
use crate::interrupt::Interrupt;
use crate::narrate::NarrationOptions;
use crate::report::Report;
use crate::shared::Shared;
use crate::supervisor::{GetSettledBy, GetWills, Leave, RunStarted, Supervisor, SupervisorLink};
use crate::tally::ShardTally;
use crate::transport::Endpoint;

/// Where a run stands. The runner publishes it on a `watch` channel, for anything that shows
/// progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Devices connect and subscribe.
    Dial,
    /// Phones send, sensors read, faults fire.
    Run,
    /// The duration is over: requests and outage stories in flight end.
    Drain,
    /// DISCONNECTs go out.
    Goodbye,
    Done,
}

/// Devices that may be dialling at once, until their CONNACK: a socket the broker has not
/// accepted yet waits in its listen backlog (Mosquitto's is 100), and past it each dropped
/// handshake costs a 1 s SYN retry. The CONNACK is the first sign from the client's side that
/// the broker took the socket.
const MAX_DIALING: u64 = 100;
/// Devices accepted but not yet subscribed at once: a broker answers SUBSCRIBEs in turn, and
/// ten thousand at once would see some answers come after the connect timeout.
const MAX_HANDSHAKING: u64 = 1000;
/// How long the goodbye waits for the broker to close devices' connections after their
/// DISCONNECT; past it the connections are closed from this side.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// How long the drain goes on once the run was interrupted: long enough for answers already on
/// their way, short enough for someone waiting at a terminal or a CI job being cancelled.
const INTERRUPTED_DRAIN: Duration = Duration::from_secs(2);

/// One arbiter (a thread with its own runtime) and the tally its devices count into.
struct Shard {
    arbiter: Arbiter,
    tally: ShardTally,
}

/// What a run holds while it goes.
struct Run {
    fleet: Arc<Fleet>,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    shards: Vec<Shard>,
    supervisor: Addr<Supervisor>,
    link: Option<Addr<SupervisorLink>>,
    devices: Vec<Addr<DeviceActor>>,
    phase: watch::Sender<Phase>,
}

pub(super) async fn drive(
    fleet: Arc<Fleet>,
    endpoint: Endpoint,
    login: Option<(String, Secret)>,
    label: String,
    options: super::RunOptions,
) -> Result<Report, RunError> {
    let mut interrupt = if options.handle_signals {
        Interrupt::listen().map_err(RunError::System)?
    } else {
        Interrupt::never()
    };
    let ids = fleet.devices.iter().map(|d| d.id.as_str());
    let narration = NarrationOptions {
        lang: options.lang,
        outside: options.tell_outside,
        ..NarrationOptions::for_fleet(options.show_exchanges, ids, options.sequence)
    };
    let shared = Shared::new(narration);
    let supervisor = Supervisor::new(fleet.clone(), shared.clone()).start();
    let barrier_login = login.clone();
    let filters = Supervisor::filters(&fleet);
    let link = (!filters.is_empty()).then(|| {
        SupervisorLink::new(
            fleet.supervisor_id(),
            endpoint.clone(),
            login,
            filters,
            supervisor.clone(),
            shared.clone(),
            fleet.seed,
        )
        .start()
    });
    let shards: Vec<Shard> = (0..options.threads.max(1))
        .map(|_| Shard {
            arbiter: Arbiter::new(),
            tally: ShardTally::default(),
        })
        .collect();
    if let Some(addr) = options.metrics {
        let listener = crate::metrics::bind(addr)
            .await
            .map_err(|e| RunError::Metrics {
                addr,
                reason: e.to_string(),
            })?;
        let bound = listener.local_addr().unwrap_or(addr);
        // Said even with -q: with port 0 this is the only way to learn where to scrape.
        crate::output::error_line(format_args!(
            "fleetsim: metrics for Prometheus on http://{bound}/metrics"
        ));
        let tallies = shards.iter().map(|s| s.tally.clone()).collect();
        let registry =
            crate::metrics::registry(&fleet, options.run_id.as_deref(), tallies, shared.clone());
        actix_rt::spawn(crate::metrics::serve(listener, Arc::new(registry)));
    }
    let (phase, _) = watch::channel(Phase::Dial);
    let mut run = Run {
        devices: Vec::with_capacity(fleet.devices.len()),
        fleet,
        endpoint,
        shared,
        shards,
        supervisor,
        link,
        phase,
    };

    let outcome = async {
        run.dial_in(&interrupt).await?;
        if let (Some(id), false) = (&options.run_id, run.fleet.shard.is_whole()) {
            let addr = run.addr();
            barrier::wait_for_shards(
                addr,
                barrier_login.clone(),
                &run.fleet.id_prefix,
                id,
                run.fleet.shard,
                &interrupt,
            )
            .await?;
        }
        if let Some(at) = options.start_at {
            barrier::wait_until(at, &interrupt).await;
        }
        if !options.start_delay.is_zero() && interrupt.get().is_none() {
            let addr = run.addr();
            crate::output::human(format!(
                "all {} devices are ready; the first request goes in {}: attach a watcher now, e.g. mosquitto_sub -h {} -p {} -V mqttv5 -t '#' -v",
                run.devices.len(),
                humantime::format_duration(options.start_delay),
                addr.ip(),
                addr.port()
            ));
            tokio::select! {
                () = actix_rt::time::sleep(options.start_delay) => {}
                _ = interrupt.wait() => {}
            }
        }
        let started = Instant::now();
        let mut ran = Duration::ZERO;
        if interrupt.get().is_none() {
            tracing::info!(devices = run.devices.len(), duration = ?run.fleet.duration, "all devices ready, run starts");
            run.phase.send_replace(Phase::Run);
            run.shared.set_started(started);
            run.supervisor.do_send(RunStarted { at: started });
            for device in &run.devices {
                device.do_send(Begin);
            }
            run.inject_faults(started);
            if let Some(on_ready) = &options.on_ready {
                (on_ready.0)(run.addr());
            }
            let end = actix_rt::time::sleep(run.fleet.duration);
            tokio::pin!(end);
            let mut ticks = actix_rt::time::interval_at(
                (started + progress::EVERY).into(),
                progress::EVERY,
            );
            let (mut before, mut before_at) = (progress::Glance::default(), started);
            loop {
                tokio::select! {
                    () = &mut end => break,
                    _ = interrupt.wait() => break,
                    _ = ticks.tick(), if options.progress => {
                        let now = progress::Glance::of(run.shards.iter().map(|s| &s.tally));
                        let at = Instant::now();
                        crate::output::error_line(progress::line(
                            &now,
                            &before,
                            at - before_at,
                            at - started,
                            run.fleet.duration,
                            run.devices.len(),
                        ));
                        (before, before_at) = (now, at);
                    }
                }
            }
            ran = started.elapsed();
        }
        run.phase.send_replace(Phase::Drain);
        // Awaited, not just sent: every phone has counted what it still has in flight before
        // the drain first looks. All at once: one by one, ten thousand round trips would let
        // phones go on sending meanwhile.
        futures_util::future::join_all(run.devices.iter().map(|d| d.send(Wind))).await;
        run.drain(&interrupt).await;
        Ok((started.elapsed(), ran))
    }
    .await;

    run.phase.send_replace(Phase::Goodbye);
    // Awaited: each device has counted itself (offline at the end or not) once it answers.
    futures_util::future::join_all(run.devices.iter().map(|d| d.send(Shutdown))).await;
    if let Some(link) = &run.link {
        let _ = link.send(Leave).await;
    }
    run.leave().await;
    let result = match outcome {
        Ok((elapsed, ran)) => {
            let wills =
                run.supervisor.send(GetWills).await.map_err(|_| {
                    RunError::System(std::io::Error::other("the supervisor stopped"))
                })?;
            let tallies = run.shards.iter().map(|s| s.tally.snapshot());
            let signal = interrupt.get().map(|(signal, _)| signal);
            let mut report = assemble(
                &run.fleet,
                tallies,
                wills,
                run.shared.stories.faults(),
                label,
                elapsed,
                ran,
                signal,
                options.run_id.clone(),
            );
            report.sequence = run.shared.narration.take_diagram();
            Ok(report)
        }
        Err(e) => Err(e),
    };
    run.phase.send_replace(Phase::Done);
    for shard in run.shards {
        shard.arbiter.stop();
        let _ = shard.arbiter.join();
    }
    result
}

impl Run {
    fn addr(&self) -> SocketAddr {
        self.endpoint.addr()
    }

    /// Starts the device actors, dealt round-robin over the shards, as fast as the broker
    /// takes them (at most [`MAX_DIALING`] dialling and [`MAX_HANDSHAKING`] awaiting their
    /// SUBACK at once, and at the fleet's `ramp` if it has one), until every one (and the
    /// supervisor's connection) is connected and subscribed; fails fast when one gives up.
    async fn dial_in(&mut self, interrupt: &Interrupt) -> Result<(), RunError> {
        let mut signals = interrupt.clone();
        let total = self.fleet.shard_len() as u64;
        let shard = self.fleet.shard;
        let per_device = faults::per_device(&self.fleet)
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| shard.holds(*i));
        let reconnect_window = crate::device::reconnect_window(self.fleet.devices.len());
        let shared = self.shared.clone();
        let progress = &shared.progress;
        // Generous: a device gets bounded retries with backoff; large fleets take a while.
        let begun = Instant::now();
        let deadline = begun + Duration::from_secs(60) + Duration::from_millis(total);
        let mut per_device = per_device;
        loop {
            if interrupt.get().is_some() {
                return Ok(());
            }
            if let Some((device, reason)) = progress.failure() {
                let addr = self.addr();
                return Err(RunError::Unreachable {
                    addr,
                    device,
                    reason,
                });
            }
            let ready = progress.ready_count();
            if ready >= total && (self.link.is_none() || progress.supervisor_is_ready()) {
                return Ok(());
            }
            let mut next_start = None;
            while (self.devices.len() as u64) < total
                && progress.dialing() < MAX_DIALING
                && progress.handshaking() < MAX_HANDSHAKING
            {
                if let Some(rate) = self.fleet.ramp {
                    let due = begun + Duration::from_secs_f64(self.devices.len() as f64 / rate);
                    if due > Instant::now() {
                        next_start = Some(due);
                        break;
                    }
                }
                let Some((index, faults)) = per_device.next() else {
                    break;
                };
                self.start_device(index, faults, reconnect_window);
            }
            if Instant::now() > deadline {
                return Err(RunError::NotReady {
                    ready,
                    total,
                    waited: begun.elapsed(),
                });
            }
            let wake = next_start.unwrap_or(deadline).min(deadline);
            tokio::select! {
                () = progress.changed.notified() => {}
                () = actix_rt::time::sleep_until(wake.into()) => {}
                _ = signals.wait() => {}
            }
        }
    }

    /// Starts device `index` (of the whole fleet; `self.devices` holds this shard's, in order).
    fn start_device(
        &mut self,
        index: usize,
        faults: faults::DeviceFaults,
        reconnect_window: Duration,
    ) {
        let shard = &self.shards[self.devices.len() % self.shards.len()];
        let setup = DeviceSetup {
            fleet: self.fleet.clone(),
            index: index as u32,
            faults,
            reconnect_window,
        };
        let endpoint = self.endpoint.for_device(index);
        let tally = shard.tally.clone();
        let shared = self.shared.clone();
        let facts = self.supervisor.clone().recipient();
        self.shared.progress.dialing_started();
        self.devices.push(DeviceActor::start_in_arbiter(
            &shard.arbiter.handle(),
            move |_| DeviceActor::new(setup, endpoint, tally, shared, Some(facts)),
        ));
    }

    /// Sends each scheduled fault to its device at its time, walking the schedule (produced
    /// as it goes) with one timer.
    fn inject_faults(&self, started: Instant) {
        let fleet = self.fleet.clone();
        let devices = self.devices.clone();
        actix_rt::spawn(async move {
            for injection in faults::schedule(&fleet) {
                actix_rt::time::sleep_until((started + injection.at).into()).await;
                let shard = fleet.shard;
                if !shard.holds(injection.device) {
                    continue;
                }
                if let Some(device) = devices.get(shard.position(injection.device)) {
                    device.do_send(Inject(injection));
                }
            }
        });
    }

    /// After `Wind`, waits for requests in flight to be answered or to time out, and for outage
    /// stories to settle (Wills due, acks awaited), up to the longest they may take, or
    /// briefly once interrupted.
    /// Waits, at most [`GOODBYE_WAIT`], for the broker to close the connection of every device
    /// that said goodbye: brokers close at once on DISCONNECT, and the side that closes first
    /// is the one left with the connection's TIME_WAIT.
    async fn leave(&self) {
        let progress = &self.shared.progress;
        let deadline = Instant::now() + GOODBYE_WAIT;
        while progress.still_leaving() > 0 && Instant::now() < deadline {
            tokio::select! {
                () = progress.changed.notified() => {}
                () = actix_rt::time::sleep_until(deadline.into()) => {}
            }
        }
    }

    async fn drain(&self, interrupt: &Interrupt) {
        let mut signals = interrupt.clone();
        let deadline = Instant::now() + drain_limit(&self.fleet);
        let progress = &self.shared.progress;
        loop {
            let cut = interrupt.get().map(|(_, at)| at + INTERRUPTED_DRAIN);
            let until = cut.map_or(deadline, |cut| cut.min(deadline));
            let settled_by = self.supervisor.send(GetSettledBy).await.ok().flatten();
            if progress.still_draining() == 0 && settled_by.is_none() {
                return;
            }
            if Instant::now() >= until {
                return;
            }
            let wake = settled_by.map_or(until, |s| s.min(until));
            tokio::select! {
                () = progress.changed.notified() => {}
                () = actix_rt::time::sleep_until(wake.into()) => {}
                _ = signals.wait() => {}
            }
        }
    }
}

/// The longest the drain may need: a phone's timeout, or a fault's outage with its Will due,
/// its ack awaited and the device back to learn of it.
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
            let due = device
                .will
                .as_ref()?
                .due_after(fault.kind, &device.connection);
            Some(
                fault
                    .down_for
                    .max(due)
                    .saturating_add(fleet.will_ack_timeout),
            )
        })
        .max()
        .unwrap_or_default();
    requests.max(outages).saturating_add(Duration::from_secs(3))
}
