//! The embedded broker: the `mqtt5` crate's broker, run in-process on 127.0.0.1 so a fleet works
//! with nothing else installed.
//!
//! It runs on its own thread and tokio runtime, apart from the device arbiters, so the devices
//! talk to it over real TCP exactly as they would to Mosquitto, and its work never sits in a
//! device arbiter's queue.

use std::net::{Ipv4Addr, SocketAddr};
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::Arc;

use mqtt5::broker::auth::{ComprehensiveAuthProvider, PasswordAuthProvider};
use mqtt5::broker::{
    AclManager, AclRule, BrokerConfig, MqttBroker, Permission, StorageBackendType, StorageConfig,
};

use crate::fleet::{Access, EmbeddedSettings};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot start the embedded broker's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the embedded broker could not listen on 127.0.0.1:{port}: {message}")]
    Bind { port: u16, message: String },
    #[error("the embedded broker stopped before it was ready")]
    NotReady,
    #[error("cannot set up the embedded broker's user {user}: {message}")]
    User { user: String, message: String },
}

/// The supervisor's own account on a locked-down embedded broker: it must see every Will and
/// every ack, whatever the fleet's ACL says.
pub struct SupervisorLogin {
    pub username: String,
    pub password: String,
}

/// A running embedded broker; stopped by [`EmbeddedBroker::stop`] or on drop.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    shutdown: mqtt5::broker::BrokerShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts an open broker on `127.0.0.1:port` (0: any free port) and returns once it
    /// accepts connections.
    pub fn start(port: u16, worker_threads: usize) -> Result<Self, BrokerError> {
        Self::start_with(port, worker_threads, &EmbeddedSettings::default(), None)
    }

    /// Starts the broker with the fleet's users, ACL and Response Information. `supervisor`,
    /// when given, is added as a user allowed to read everything.
    pub fn start_with(
        port: u16,
        worker_threads: usize,
        settings: &EmbeddedSettings,
        supervisor: Option<&SupervisorLogin>,
    ) -> Result<Self, BrokerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("fleetsim-broker")
            .enable_all()
            .build()
            .map_err(BrokerError::Runtime)?;

        let mut config = config(port);
        config.response_information = settings.response_information.clone();
        let broker = runtime
            .block_on(MqttBroker::with_config(config))
            .map_err(|e| BrokerError::Bind {
                port,
                message: e.to_string(),
            })?;
        let broker = match access_control(settings, supervisor, &runtime)? {
            Some(provider) => broker.with_auth_provider(provider),
            None => broker,
        };
        let addr = broker.local_addr().ok_or(BrokerError::NotReady)?;
        let shutdown = broker.shutdown_handle();
        let mut ready = broker.ready_receiver();

        let thread = std::thread::Builder::new()
            .name("fleetsim-broker".into())
            .spawn(move || {
                let mut broker = broker;
                runtime.block_on(async move {
                    if let Err(error) = broker.run().await {
                        tracing::error!(%error, "embedded broker stopped");
                    }
                });
                // Connections still open (devices that never said goodbye) must not hold the
                // process: their tasks are dropped with the runtime.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(BrokerError::Runtime)?;

        // `run` flips `ready` once its accept loops are up; wait for that on a tiny runtime so
        // the first device never races the listener.
        let became_ready = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(BrokerError::Runtime)?
            .block_on(async {
                let wait = ready.wait_for(|ready| *ready);
                matches!(
                    tokio::time::timeout(Duration::from_secs(10), wait).await,
                    Ok(Ok(_))
                )
            });
        let mut started = Self {
            addr,
            shutdown,
            thread: Some(thread),
        };
        if !became_ready {
            started.stop();
            return Err(BrokerError::NotReady);
        }
        Ok(started)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection and waits for the broker thread.
    pub fn stop(&mut self) {
        self.shutdown.shutdown();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the embedded broker thread panicked");
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Users and ACL as the mqtt5 broker wants them; None leaves it open to all.
fn access_control(
    settings: &EmbeddedSettings,
    supervisor: Option<&SupervisorLogin>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<Arc<ComprehensiveAuthProvider>>, BrokerError> {
    if settings.users.is_empty() && settings.acl.is_empty() && settings.allow_anonymous {
        return Ok(None);
    }
    let passwords = PasswordAuthProvider::new().with_anonymous(settings.allow_anonymous);
    let add = |user: &str, password: &str| {
        passwords
            .add_user(user, password)
            .map_err(|e| BrokerError::User {
                user: user.to_owned(),
                message: e.to_string(),
            })
    };
    for user in &settings.users {
        add(&user.name, user.password.expose())?;
    }
    let acl = if settings.acl.is_empty() {
        AclManager::allow_all()
    } else {
        AclManager::new()
    };
    runtime.block_on(async {
        for rule in &settings.acl {
            let permission = match rule.access {
                Access::Read => Permission::Read,
                Access::Write => Permission::Write,
                Access::ReadWrite => Permission::ReadWrite,
                Access::Deny => Permission::Deny,
            };
            acl.add_rule(AclRule::new(
                rule.user.clone(),
                rule.topic.clone(),
                permission,
            ))
            .await;
        }
        if let Some(login) = supervisor {
            let everything = AclRule::new(login.username.clone(), "#", Permission::Read);
            acl.add_rule(everything).await;
        }
    });
    if let Some(login) = supervisor {
        add(&login.username, &login.password)?;
    }
    Ok(Some(Arc::new(ComprehensiveAuthProvider::with_providers(
        passwords, acl,
    ))))
}

/// The embedded broker's Maximum Packet Size: a PUBLISH beyond it closes the connection, which
/// is what an `oversize_packet` fault (2 MiB by default) tests. Its own default, 256 MiB, is no
/// limit a test could meet.
pub const MAX_PACKET_SIZE: usize = 1024 * 1024;

fn config(port: u16) -> BrokerConfig {
    // Memory storage with persistence ON: with persistence off the mqtt5 broker forgets sessions
    // and fires Wills without their delay (docs/design.md, "Embedded broker").
    let storage = StorageConfig::new()
        .with_backend(StorageBackendType::Memory)
        .with_persistence(true);
    let mut config = BrokerConfig::new()
        .with_bind_address(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .with_storage(storage)
        .with_sys_topics_enabled(false)
        .with_max_clients(1_000_000)
        .with_max_packet_size(MAX_PACKET_SIZE);
    // Its default login rate limit locks a client id out after 5 attempts a minute; a fault run
    // reconnects far more often than that on purpose.
    config.auth_config.rate_limit.enabled = false;
    config
}
