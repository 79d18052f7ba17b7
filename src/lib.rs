//! fleetsim simulates a fleet of MQTT 5 devices, each an actor with its own connection, to
//! teach and test request/response (Response Topic, Correlation Data, Response Information).
//!
//! # Layout
//!
//! The code follows the data: fleet file -> validated model -> actors on connections -> events
//! -> report.
//!
//! - [`fleet`]: the YAML fleet file, parsed and checked into an immutable [`fleet::Fleet`].
//! - [`mqtt`]: MQTT 5 on the wire: a tokio-util codec and the sans-IO client [`mqtt::Session`].
//! - [`device`]: one actix actor per device; the shared connection lifecycle, faults, Wills,
//!   and the phone, light and sensor behaviours.
//! - [`faults`]: the fault schedule, computed from the fleet before the run.
//! - [`supervisor`]: the actor that follows every outage: Will published, acked, learned.
//! - [`transport`]: the bytes under a device's codec: TCP, or TLS (rustls) for `mqtts://`.
//! - [`broker`]: the embedded broker, for runs with nothing else installed.
//! - [`events`]: the facts devices deal in; [`tally`]: what each shard counts, in place;
//!   [`shared`]: what shards share (progress, fault stories, the narration); [`timeline`]:
//!   the run second by second.
//! - [`narrate`]: the first exchanges (and a small fleet's connection set-up) told step by
//!   step as they happen, and drawn as a sequence diagram.
//! - [`output`]: printing that survives a closed stdout (`fleetsim validate f.yaml | head`)
//!   and shows hostile text (control and bidi characters) escaped.
//! - [`report`]: the end-of-run numbers, as JSON and as a table.
//! - [`lang`]: English or Japanese for the narration and the table, chosen once at start.
//! - [`run`]: the phases of a run, from broker start to report; [`interrupt`]: SIGINT and
//!   SIGTERM ending it early.
//! - [`cli`]: command-line arguments and exit codes (the binary in `main.rs` is glue).

pub mod broker;
pub mod cli;
pub mod device;
pub mod events;
pub mod faults;
pub mod fleet;
pub mod interrupt;
pub mod lang;
pub mod metrics;
pub mod mqtt;
pub mod narrate;
pub mod output;
pub mod report;
pub mod run;
pub mod shared;
pub mod supervisor;
pub mod tally;
pub mod timeline;
pub mod transport;
