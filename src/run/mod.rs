//! The runner: takes a validated fleet through its phases and returns the report.
//!
//! - `mod.rs` (here): what a run needs before it starts: the broker (embedded, or resolved),
//!   the open-files limit, the endpoint devices connect to.
//! - `phases`: the run itself, phase by phase ([`Phase`]), waiting on what devices report
//!   rather than polling.
//! - `assemble`: the report, from the shards' tallies, the supervisor's stories and the
//!   fault stories.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use actix::System;

mod assemble;
pub mod barrier;
mod phases;
pub mod progress;

use crate::broker::{BrokerError, EmbeddedBroker, SupervisorLogin};
use crate::fleet::{BrokerTarget, Fleet, Secret};
use crate::report::Report;
use crate::transport::sources::{self, SourceError};
use crate::transport::{Endpoint, TlsError};

pub use phases::Phase;

/// How a run is carried out, beyond what the fleet file says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Arbiters (threads) the device actors are spread over.
    pub threads: usize,
    /// How many exchanges to print step by step (0: none).
    pub show_exchanges: usize,
    /// Also draw the narrated steps as a Mermaid sequence diagram (`Report::sequence`).
    pub sequence: bool,
    /// The language of the narration.
    pub lang: crate::lang::Lang,
    /// End early on SIGINT or SIGTERM (off in tests, which run several fleets in one
    /// process); see [`crate::interrupt`].
    pub handle_signals: bool,
    /// How many requests from clients outside the fleet the narration tells.
    pub tell_outside: usize,
    /// Print a progress line on stderr every [`progress::EVERY`] of the run phase.
    pub progress: bool,
    /// Serve the run's counts for Prometheus at `http://ADDR/metrics` while it runs.
    pub metrics: Option<SocketAddr>,
    /// Wait this long once every device is ready before the first request, so a watcher
    /// (`mosquitto_sub`, MQTTX) can attach and see exchange 1.
    pub start_delay: Duration,
    /// Once ready, start the run at this wall-clock instant (`--start-at`).
    pub start_at: Option<std::time::SystemTime>,
    /// With shards: wait, through the broker, until all of the run's shards are ready.
    pub run_id: Option<String>,
    /// Called once, when every device is connected and subscribed, with the broker's address.
    pub on_ready: Option<OnReady>,
}

/// What to do once the fleet is ready (`fleetsim broker` prints how to reach it).
#[derive(Clone)]
pub struct OnReady(pub Arc<dyn Fn(SocketAddr) + Send + Sync + std::panic::RefUnwindSafe>);

impl std::fmt::Debug for OnReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnReady(..)")
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            show_exchanges: 0,
            sequence: false,
            lang: crate::lang::Lang::En,
            handle_signals: false,
            tell_outside: crate::narrate::OUTSIDE_TOLD,
            progress: false,
            metrics: None,
            start_delay: Duration::ZERO,
            start_at: None,
            run_id: None,
            on_ready: None,
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
    #[error("only {ready} of {total} devices were connected and subscribed after {:.1}s", .waited.as_secs_f64())]
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
    #[error("cannot serve metrics on {addr}: {reason}")]
    Metrics { addr: SocketAddr, reason: String },
    #[error("shards of run {run} could not start together: {reason}")]
    Barrier { run: String, reason: String },
    #[error("cannot start the actor system: {0}")]
    System(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Sources(#[from] SourceError),
}

/// Runs a fleet to the end and returns its report. Blocks the calling thread.
pub fn run(fleet: Fleet, options: &RunOptions) -> Result<Report, RunError> {
    let threads = options.threads.max(1);
    let embedded = matches!(fleet.broker, BrokerTarget::Embedded { .. });
    check_open_files(fleet.shard_len(), embedded)?;
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
    let result = system.block_on(phases::drive(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_tenths_of_a_second_not_nanoseconds() {
        let e = RunError::NotReady {
            ready: 3,
            total: 5,
            waited: Duration::from_nanos(61_234_567_891),
        };
        assert_eq!(
            e.to_string(),
            "only 3 of 5 devices were connected and subscribed after 61.2s"
        );
    }
}
