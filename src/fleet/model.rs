//! The validated fleet: what the rest of fleetsim runs. Built only by `fleet::load`/`fleet::parse`,
//! so every value here has been checked and every template expanded.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// A checked fleet file, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub name: String,
    pub broker: BrokerTarget,
    /// How long phones send requests and sensors publish, counted from the moment every device
    /// is connected and subscribed. In-flight requests are then given up to their timeout.
    pub duration: Duration,
    pub seed: u64,
    /// Every device, groups expanded, in file order (group order, then `n` ascending).
    pub devices: Vec<Device>,
    /// How long after a Will is published the supervisor waits for its ack before calling it
    /// unconsumed.
    pub will_ack_timeout: Duration,
    /// Connection faults to inject, in file order.
    pub faults: Vec<Fault>,
    /// How the embedded broker authenticates and authorises (unused with an external broker).
    pub embedded: EmbeddedSettings,
    /// Certificates for `mqtts://` brokers.
    pub tls: TlsFiles,
    /// What the run must achieve; when non-empty, these alone decide whether it is ok.
    pub expect: Vec<Expectation>,
    /// How the supervisor logs in to an external broker that wants a user name (the embedded
    /// broker gives it an account of its own).
    pub supervisor: Option<Login>,
    /// In front of every client id (the supervisor's too), so two runs share no client id
    /// and, through `{id}`, no topic. Empty by default.
    pub id_prefix: String,
    /// Devices started a second at most while dialling in (None: as fast as the broker takes
    /// them).
    pub ramp: Option<f64>,
    /// The local addresses devices connect from, ranges expanded, in file order; device `i`
    /// uses entry `i % len`. Empty: fleetsim chooses (see `transport::sources`).
    pub source_addresses: Vec<IpAddr>,
    /// How many requests the narration tells, unless `--show-exchanges` says (None: 3).
    pub show_exchanges: Option<usize>,
}

impl Fleet {
    /// The client id of the supervisor's connection.
    pub fn supervisor_id(&self) -> String {
        format!("{}{}", self.id_prefix, crate::supervisor::CLIENT_ID)
    }

    /// The fleet without its phones, its faults and its expectations: the lights and sensors
    /// that answer requests, for `fleetsim broker`, where a person plays the phone.
    pub fn responders_only(mut self) -> Self {
        // Phones are the only devices that refer to others (their targets, by index), and
        // fault targets are indices too: both go, so no index is left dangling.
        self.devices.retain(|d| d.kind() != Kind::Phone);
        self.faults.clear();
        self.expect.clear();
        self
    }
}

/// The most fault injections a run may schedule, in all (targets x firings): `every: 1ms` on
/// every device of a long run is a typo, not a test, and billions of injections would keep the
/// runner busy with nothing else.
pub const MAX_INJECTIONS: u64 = 1_000_000;

impl Fleet {
    /// The injections the fault schedule holds for a run of `duration`, saturating.
    pub fn injections(&self) -> u64 {
        self.faults
            .iter()
            .map(|f| {
                f.firings(self.duration)
                    .saturating_mul(u64::try_from(f.targets.len()).unwrap_or(u64::MAX))
            })
            .fold(0, u64::saturating_add)
    }
}

/// A user name, and the password if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub username: String,
    pub password: Option<Secret>,
}

/// One `expect:` entry, e.g. `success_rate >= 0.95`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub metric: Metric,
    pub op: Op,
    pub limit: f64,
}

/// What an expectation measures, from the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// matched / sent (1.0 when nothing was sent).
    SuccessRate,
    LatencyP50Ms,
    LatencyP90Ms,
    LatencyP99Ms,
    LatencyMaxMs,
    Sent,
    Matched,
    TimedOut,
    Late,
    Failed,
    Unmatched,
    Duplicate,
    /// Answers a phone without Correlation Data took for the wrong request.
    MixedUp,
    /// Matched answers with an `error` field.
    ErrorAnswers,
    /// Matched answers failing `expect_answer:`.
    BadAnswers,
    /// consumed / expected Wills (1.0 when none was expected).
    WillsConsumedRate,
    WillsUnconsumed,
    WillsMissing,
    WillsUnexpected,
    /// All refusals: connect, subscribe and publish.
    Refusals,
    FaultsInjected,
    /// Connections re-established after a drop, planned or not.
    Reconnects,
    /// Connections dropped without a fault doing it.
    UnplannedDrops,
    /// Devices not connected when the run ended.
    OfflineAtEnd,
    /// Time disconnected after unplanned drops over devices x run time (0 to 1).
    DisconnectedShare,
}

impl Metric {
    /// The name used in `expect:` and in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::SuccessRate => "success_rate",
            Metric::LatencyP50Ms => "latency_p50_ms",
            Metric::LatencyP90Ms => "latency_p90_ms",
            Metric::LatencyP99Ms => "latency_p99_ms",
            Metric::LatencyMaxMs => "latency_max_ms",
            Metric::Sent => "sent",
            Metric::Matched => "matched",
            Metric::TimedOut => "timed_out",
            Metric::Late => "late",
            Metric::Failed => "failed",
            Metric::Unmatched => "unmatched",
            Metric::Duplicate => "duplicate",
            Metric::MixedUp => "mixed_up",
            Metric::ErrorAnswers => "error_answers",
            Metric::BadAnswers => "bad_answers",
            Metric::WillsConsumedRate => "wills_consumed_rate",
            Metric::WillsUnconsumed => "wills_unconsumed",
            Metric::WillsMissing => "wills_missing",
            Metric::WillsUnexpected => "wills_unexpected",
            Metric::Refusals => "refusals",
            Metric::FaultsInjected => "faults_injected",
            Metric::Reconnects => "reconnects",
            Metric::UnplannedDrops => "unplanned_drops",
            Metric::OfflineAtEnd => "offline_at_end",
            Metric::DisconnectedShare => "disconnected_share",
        }
    }

    /// Metrics about connections: naming one in `expect:` replaces the default verdict's
    /// connectivity check it stands for (see `Report::judge`).
    pub fn is_connectivity(self) -> bool {
        matches!(
            self,
            Metric::Reconnects
                | Metric::UnplannedDrops
                | Metric::OfflineAtEnd
                | Metric::DisconnectedShare
        )
    }

    pub const ALL: [Metric; 25] = [
        Metric::SuccessRate,
        Metric::LatencyP50Ms,
        Metric::LatencyP90Ms,
        Metric::LatencyP99Ms,
        Metric::LatencyMaxMs,
        Metric::Sent,
        Metric::Matched,
        Metric::TimedOut,
        Metric::Late,
        Metric::Failed,
        Metric::Unmatched,
        Metric::Duplicate,
        Metric::MixedUp,
        Metric::ErrorAnswers,
        Metric::BadAnswers,
        Metric::WillsConsumedRate,
        Metric::WillsUnconsumed,
        Metric::WillsMissing,
        Metric::WillsUnexpected,
        Metric::Refusals,
        Metric::FaultsInjected,
        Metric::Reconnects,
        Metric::UnplannedDrops,
        Metric::OfflineAtEnd,
        Metric::DisconnectedShare,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AtLeast,
    AtMost,
    Above,
    Below,
    Equal,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::AtLeast => ">=",
            Op::AtMost => "<=",
            Op::Above => ">",
            Op::Below => "<",
            Op::Equal => "==",
        }
    }

    pub fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::AtLeast => actual >= limit,
            Op::AtMost => actual <= limit,
            Op::Above => actual > limit,
            Op::Below => actual < limit,
            // Counts are whole numbers; rates and latencies compared this way are exact too.
            Op::Equal => actual == limit,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerTarget {
    /// Start the in-process broker on 127.0.0.1; port 0 picks any free port.
    Embedded { port: u16 },
    /// Any MQTT 5 broker, from `mqtt://host:port` (port defaults to 1883) or
    /// `mqtts://host:port` (TLS; port defaults to 8883).
    External { host: String, port: u16, tls: bool },
}

/// The embedded broker's access control. With no users, anyone may connect and do anything.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedSettings {
    /// Returned in CONNACK to clients that ask for Response Information (one string for all:
    /// the embedded broker cannot vary it per client).
    pub response_information: Option<String>,
    pub users: Vec<User>,
    /// Checked for every PUBLISH and SUBSCRIBE when non-empty; what no rule allows is refused.
    pub acl: Vec<AclRule>,
    /// Whether clients without a user name may connect. Default: true without users, false
    /// with them.
    pub allow_anonymous: bool,
}

/// Open to all: no users, no ACL, anonymous clients welcome.
impl Default for EmbeddedSettings {
    fn default() -> Self {
        Self {
            response_information: None,
            users: Vec::new(),
            acl: Vec::new(),
            allow_anonymous: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub password: Secret,
}

/// One access rule, as Mosquitto's pattern ACLs: `%u` in the topic stands for the user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// A user name, or `*` for every user.
    pub user: String,
    /// A topic filter (wildcards allowed), `%u` replaced by the user name.
    pub topic: String,
    pub access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

/// Client-side TLS files (PEM). fleetsim bundles no root certificates, so `mqtts://` needs a
/// CA file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key, for brokers that ask for one; both or neither.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
}

/// A password or other secret, possibly read from the environment (`${VAR}` in the fleet
/// file). Never printed: its `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Phone,
    Light,
    Sensor,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Phone => "phone",
            Kind::Light => "light",
            Kind::Sensor => "sensor",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

/// One simulated device: its MQTT identity and connection settings, plus what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Also the MQTT client id.
    pub id: String,
    /// Index of the group in `devices:` this device came from (0-based).
    pub group: usize,
    /// `{n}` for this device inside its group (1-based).
    pub n: u32,
    pub connection: Connection,
    pub role: Role,
    /// The Last Will registered with every CONNECT, if any.
    pub will: Option<Will>,
    /// Consume other devices' Wills: ack each one that carries a Response Topic.
    pub consume_wills: Option<WillConsumer>,
}

impl Device {
    /// The topic this device receives requests on (lights and sensors).
    pub fn request_topic(&self) -> Option<&str> {
        match &self.role {
            Role::Light(l) => Some(&l.command_topic),
            Role::Sensor(s) => Some(&s.request_topic),
            Role::Phone(_) => None,
        }
    }

    pub fn kind(&self) -> Kind {
        match self.role {
            Role::Phone(_) => Kind::Phone,
            Role::Light(_) => Kind::Light,
            Role::Sensor(_) => Kind::Sensor,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub keepalive: Duration,
    pub clean_start: bool,
    /// Session Expiry Interval sent in CONNECT, in seconds (0: session ends with the connection).
    pub session_expiry: u32,
    /// QoS of everything this device publishes and subscribes to.
    pub qos: Qos,
    /// Receive Maximum this device announces in CONNECT.
    pub receive_maximum: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Ask for Response Information in CONNECT (Request Response Information = 1).
    pub request_response_info: bool,
    /// What `{response_info}` becomes when the broker returns none (Mosquitto never does).
    pub response_info_fallback: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    Phone(Phone),
    Light(Light),
    Sensor(Sensor),
}

/// A requester.
#[derive(Debug, Clone, PartialEq)]
pub struct Phone {
    /// Where each request goes, in the order requests cycle through them.
    pub targets: Targets,
    /// When it sends.
    pub pace: Pace,
    /// How long a request may wait for its answer before it counts as timed out.
    pub timeout: Duration,
    /// Stop after this many requests (None: until the run's duration ends).
    pub max_requests: Option<u64>,
    /// Put Correlation Data on requests (the default). Without it the phone does what clients
    /// did before MQTT 5: it takes each answer on its Response Topic for its oldest open
    /// request, and is fooled when answers come out of order or are someone else's.
    pub correlation_data: bool,
    /// What each matched answer must look like (`expect_answer:`), shared by the group.
    pub expect_answer: Option<std::sync::Arc<super::answer::AnswerCheck>>,
}

/// When a phone sends its requests: the load model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// About every `every`: each interval is `every` plus a seeded uniform offset in
    /// `[-jitter, +jitter]`, counted from when the last request was due, the first at a seeded
    /// point of the first interval.
    Every { every: Duration, jitter: Duration },
    /// Open loop at a rate: request k is due at `start + offset + k / per_second`, however the
    /// earlier ones fared, so the rate achieved is the rate asked for. `offset` None: a seeded
    /// point of the first interval; `group_rate` staggers a group's phones evenly instead.
    Rate {
        per_second: f64,
        offset: Option<Duration>,
    },
    /// Closed loop: keep this many requests outstanding, sending the next as soon as one ends.
    InFlight(u32),
}

impl Pace {
    /// Requests a second asked for (none for a closed loop, whose rate is what the backend
    /// allows).
    pub fn offered_rate(self) -> Option<f64> {
        match self {
            Pace::Every { every, .. } => Some(1.0 / every.as_secs_f64()),
            Pace::Rate { per_second, .. } => Some(per_second),
            Pace::InFlight(_) => None,
        }
    }
}

/// Where a phone's requests go, kept compact: target devices are indices into
/// `Fleet::devices` (whose request topics they use), and phones of a group whose targets are
/// the same share one list; payloads are shared by the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// The lights and sensors requests go to, cycled in this order (empty with `topic`).
    pub devices: Arc<[u32]>,
    /// Instead of devices: one topic, answered by something outside the fleet.
    pub topic: Option<Arc<str>>,
    /// The Response Topic put on each request (no wildcards; the phone subscribes to it): one
    /// for every target, or one per target when the template uses `{target}`. May still hold
    /// `{response_info}`, replaced once CONNACK says what it is.
    pub response_topics: Arc<[Arc<str>]>,
    /// Payloads cycled in order; None: the defaults of each target's kind.
    pub payloads: Option<Arc<[Bytes]>>,
}

/// What a light is sent when the file names no payloads.
static LIGHT_PAYLOADS: [Bytes; 3] = [
    Bytes::from_static(b"ON"),
    Bytes::from_static(b"OFF"),
    Bytes::from_static(b"TOGGLE"),
];
static SENSOR_PAYLOADS: [Bytes; 1] = [Bytes::from_static(b"get")];
static TOPIC_PAYLOADS: [Bytes; 1] = [Bytes::from_static(b"ping")];

impl Targets {
    /// How many targets requests cycle through.
    pub fn len(&self) -> usize {
        if self.topic.is_some() {
            1
        } else {
            self.devices.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device of target `i`, if it is one of the fleet's.
    pub fn device(&self, i: usize) -> Option<u32> {
        self.devices.get(i).copied()
    }

    /// Where a request to target `i` is published.
    pub fn request_topic<'a>(&'a self, i: usize, fleet: &'a Fleet) -> &'a str {
        match (&self.topic, self.device(i)) {
            (Some(topic), _) => topic,
            (None, Some(d)) => fleet.devices[d as usize]
                .request_topic()
                .unwrap_or_default(),
            (None, None) => "",
        }
    }

    /// The Response Topic of a request to target `i`.
    pub fn response_topic(&self, i: usize) -> &Arc<str> {
        let i = if self.response_topics.len() == 1 {
            0
        } else {
            i
        };
        &self.response_topics[i]
    }

    /// The payloads a request to target `i` cycles through.
    pub fn payloads<'a>(&'a self, i: usize, fleet: &'a Fleet) -> &'a [Bytes] {
        if let Some(payloads) = &self.payloads {
            return payloads;
        }
        match self.device(i).map(|d| fleet.devices[d as usize].kind()) {
            Some(Kind::Sensor) => &SENSOR_PAYLOADS,
            Some(_) => &LIGHT_PAYLOADS,
            None => &TOPIC_PAYLOADS,
        }
    }
}

/// A responder that switches on and off.
#[derive(Debug, Clone, PartialEq)]
pub struct Light {
    /// Topic the light subscribes to for commands (no wildcards).
    pub command_topic: String,
    /// Simulated processing time before the answer is published.
    pub delay: Duration,
    /// State at start: true is ON.
    pub initially_on: bool,
}

/// Publishes telemetry and answers `get` requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// Topic telemetry is published to (no wildcards).
    pub telemetry_topic: String,
    pub every: Duration,
    /// Topic the sensor subscribes to for `get` requests (no wildcards).
    pub request_topic: String,
    pub unit: String,
    pub signal: Signal,
}

/// How a sensor's readings evolve; driven by the fleet seed.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Each reading moves by a uniform step in `[-step, +step]` from the last, clamped to `[min, max]`.
    Walk {
        start: f64,
        step: f64,
        min: f64,
        max: f64,
    },
    /// Each reading is uniform in `[min, max]`.
    Range { min: f64, max: f64 },
}

/// A device's Last Will, templates expanded. Its Correlation Data is not configured: it is
/// `{id}#{incarnation}`, made anew for every connection, so an ack names the outage it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Will {
    /// Topic the Will is published to (no wildcards).
    pub topic: String,
    pub payload: String,
    pub qos: Qos,
    pub retain: bool,
    /// Will Delay Interval: how long the broker waits before publishing (whole seconds).
    pub delay: Duration,
    /// Message Expiry Interval of the Will message (whole seconds), if any.
    pub message_expiry: Option<Duration>,
    pub user_properties: Vec<(String, String)>,
    /// Response Topic carried by the Will (no wildcards); the device subscribes to it at QoS 1.
    pub response_topic: String,
}

impl Will {
    /// How long after a connection fault of `kind` the broker publishes this Will, if the
    /// device stays away: when the broker notices the device gone (at once; after 1.5 x
    /// keepalive for a stall, when the broker gives up on a silent client) plus the Will Delay
    /// or the session's end, whichever comes first. The one rule the fleet's checks, the
    /// supervisor and the runner's drain all use.
    pub fn due_after(&self, kind: FaultKind, connection: &Connection) -> Duration {
        will_due_after(
            kind,
            connection.keepalive,
            self.delay,
            connection.session_expiry,
        )
    }
}

/// [`Will::due_after`] from the numbers themselves (the fleet checks use it before devices
/// are built).
pub fn will_due_after(
    kind: FaultKind,
    keepalive: Duration,
    delay: Duration,
    session_expiry_s: u32,
) -> Duration {
    let noticed = match kind {
        FaultKind::Stall => keepalive.mul_f64(1.5),
        _ => Duration::ZERO,
    };
    noticed.saturating_add(delay.min(Duration::from_secs(session_expiry_s.into())))
}

/// What a Will consumer listens to and how it acks.
#[derive(Debug, Clone, PartialEq)]
pub struct WillConsumer {
    /// Topic filters (wildcards allowed) the consumer subscribes to.
    pub filters: Vec<String>,
    /// Wait this long before publishing each ack.
    pub ack_delay: Duration,
    /// Share of Wills left unacked on purpose, 0.0 to 1.0 (seeded).
    pub ack_drop: f64,
}

/// A connection fault injected into one or more devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub schedule: Schedule,
    /// Indexes into `Fleet::devices` of the devices this fault hits, in fleet order.
    pub targets: Vec<usize>,
    /// How long the device stays away before it reconnects (clean start off); connection
    /// faults only (zero for the others).
    pub down_for: Duration,
    pub params: FaultParams,
}

impl Fault {
    /// How many times it fires in a run of `run_for`: `at` once if before the end, `every` at
    /// each multiple before the end; probability faults are drawn per request, not scheduled.
    pub fn firings(&self, run_for: Duration) -> u64 {
        match self.schedule {
            Schedule::At(at) => u64::from(at < run_for),
            Schedule::Every(every) if !every.is_zero() => {
                // k x every < run_for, for k >= 1.
                let n = run_for.as_nanos().saturating_sub(1) / every.as_nanos();
                u64::try_from(n).unwrap_or(u64::MAX)
            }
            Schedule::Every(_) | Schedule::Probability(_) => 0,
        }
    }
}

/// Settings of the kinds that take some; defaults where a kind has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultParams {
    /// `huge_payload` / `binary_payload`: payload size in bytes.
    pub size: usize,
    /// `slow`: the answer waits a uniform draw from this range.
    pub delay: (Duration, Duration),
    /// Network faults: which way the bytes are hurt.
    pub direction: Direction,
    /// Network faults: how long the toxic stays (None: to the end of the run). Not for `reset`.
    pub lasts: Option<Duration>,
    /// `latency`: added to each chunk, ± `jitter`.
    pub latency: Duration,
    pub jitter: Duration,
    /// `bandwidth`: bytes a second.
    pub rate: u64,
    /// `slicer`: segment size in bytes, and the pause between segments.
    pub slice: usize,
    pub slice_delay: Duration,
    /// `limit_data`: bytes allowed through before the connection is closed.
    pub limit: u64,
}

/// Which way a network fault acts: device to broker, broker to device, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
    Both,
}

impl Default for FaultParams {
    fn default() -> Self {
        Self {
            size: 256 * 1024,
            delay: (Duration::from_millis(500), Duration::from_secs(2)),
            direction: Direction::Both,
            lasts: None,
            latency: Duration::from_millis(100),
            jitter: Duration::ZERO,
            rate: 10 * 1024,
            slice: 16,
            slice_delay: Duration::from_millis(1),
            limit: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Drop the TCP connection without DISCONNECT: the broker publishes the Will.
    Kill,
    /// Keep the socket open but send nothing, PINGREQ included, until the broker gives up at
    /// 1.5 x keepalive: the broker publishes the Will.
    Stall,
    /// DISCONNECT 0x00: no Will.
    Disconnect,
    /// DISCONNECT 0x04 (Disconnect with Will Message): the broker publishes the Will.
    DisconnectWithWill,
    /// Drop the connection and come back within the Will Delay: the broker must not publish it.
    Flap,
    // Request content faults, aimed at the backend: a phone's next request is malformed so.
    /// Sent without Response Topic: nobody can answer it.
    NoResponseTopic,
    /// Sent without Correlation Data: an answer cannot name it.
    NoCorrelationData,
    /// Sent with empty Correlation Data.
    EmptyCorrelationData,
    /// Sent with a wildcard in its Response Topic (a protocol error a broker must refuse).
    WildcardResponseTopic,
    /// Sent with a payload of `FaultParams::size` bytes.
    HugePayload,
    /// Sent with `FaultParams::size` random bytes as payload.
    BinaryPayload,
    /// Sent twice, with the same Correlation Data.
    DuplicateRequest,
    // Responder misbehaviour, for lights and sensors: how the next request is (mis)answered.
    /// Answered after a delay drawn from `FaultParams::delay`.
    Slow,
    /// Applied but not answered.
    NoAnswer,
    /// Answered with different Correlation Data.
    WrongCorrelation,
    /// Answered twice.
    DuplicateAnswer,
    /// Answered on another topic than the Response Topic.
    WrongTopic,
    /// Answered with an error payload.
    ErrorPayload,
    // Network faults, Toxiproxy's toxics on an in-process proxy between the device and the
    // broker, for `FaultParams::lasts` (or the rest of the run).
    /// Each chunk waits `latency` ± `jitter`.
    Latency,
    /// At most `rate` bytes a second.
    Bandwidth,
    /// Stop forwarding but keep the socket open.
    Blackhole,
    /// Close the connection with a TCP RST, at once.
    Reset,
    /// Forward in segments of at most `slice` bytes, `slice_delay` apart.
    Slicer,
    /// Close the connection once `limit` more bytes have passed.
    LimitData,
    // Protocol faults, on the device's own MQTT connection.
    /// Send no PUBACK/PUBREC for incoming QoS 1/2 messages for `lasts`, then reconnect: the
    /// broker must redeliver them with DUP set.
    WithholdAcks,
    /// Write a malformed packet: the broker must close this connection, and only this one.
    MalformedPacket,
    /// Write a PUBLISH larger than the broker's Maximum Packet Size (`size` bytes): the broker
    /// must refuse it and close this connection.
    OversizePacket,
}

/// Where a fault acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClass {
    /// On the device's connection: it goes away for `down_for`.
    Connection,
    /// On a phone's next request (phones only).
    Request,
    /// On a responder's next answer (lights and sensors only).
    Responder,
    /// On the bytes between the device and the broker, through an in-process proxy.
    Network,
    /// On the device's own MQTT packets.
    Protocol,
}

impl FaultKind {
    /// Every kind, grouped by class, in the order messages list them.
    pub const ALL: [FaultKind; 27] = [
        FaultKind::Kill,
        FaultKind::Stall,
        FaultKind::Disconnect,
        FaultKind::DisconnectWithWill,
        FaultKind::Flap,
        FaultKind::NoResponseTopic,
        FaultKind::NoCorrelationData,
        FaultKind::EmptyCorrelationData,
        FaultKind::WildcardResponseTopic,
        FaultKind::HugePayload,
        FaultKind::BinaryPayload,
        FaultKind::DuplicateRequest,
        FaultKind::Slow,
        FaultKind::NoAnswer,
        FaultKind::WrongCorrelation,
        FaultKind::DuplicateAnswer,
        FaultKind::WrongTopic,
        FaultKind::ErrorPayload,
        FaultKind::Latency,
        FaultKind::Bandwidth,
        FaultKind::Blackhole,
        FaultKind::Reset,
        FaultKind::Slicer,
        FaultKind::LimitData,
        FaultKind::WithholdAcks,
        FaultKind::MalformedPacket,
        FaultKind::OversizePacket,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stall => "stall",
            FaultKind::Disconnect => "disconnect",
            FaultKind::DisconnectWithWill => "disconnect_with_will",
            FaultKind::Flap => "flap",
            FaultKind::NoResponseTopic => "no_response_topic",
            FaultKind::NoCorrelationData => "no_correlation_data",
            FaultKind::EmptyCorrelationData => "empty_correlation_data",
            FaultKind::WildcardResponseTopic => "wildcard_response_topic",
            FaultKind::HugePayload => "huge_payload",
            FaultKind::BinaryPayload => "binary_payload",
            FaultKind::DuplicateRequest => "duplicate_request",
            FaultKind::Slow => "slow",
            FaultKind::NoAnswer => "no_answer",
            FaultKind::WrongCorrelation => "wrong_correlation",
            FaultKind::DuplicateAnswer => "duplicate_answer",
            FaultKind::WrongTopic => "wrong_topic",
            FaultKind::ErrorPayload => "error_payload",
            FaultKind::Latency => "latency",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Blackhole => "blackhole",
            FaultKind::Reset => "reset",
            FaultKind::Slicer => "slicer",
            FaultKind::LimitData => "limit_data",
            FaultKind::WithholdAcks => "withhold_acks",
            FaultKind::MalformedPacket => "malformed_packet",
            FaultKind::OversizePacket => "oversize_packet",
        }
    }

    pub fn class(self) -> FaultClass {
        use FaultKind::*;
        match self {
            Kill | Stall | Disconnect | DisconnectWithWill | Flap => FaultClass::Connection,
            NoResponseTopic
            | NoCorrelationData
            | EmptyCorrelationData
            | WildcardResponseTopic
            | HugePayload
            | BinaryPayload
            | DuplicateRequest => FaultClass::Request,
            Slow | NoAnswer | WrongCorrelation | DuplicateAnswer | WrongTopic | ErrorPayload => {
                FaultClass::Responder
            }
            Latency | Bandwidth | Blackhole | Reset | Slicer | LimitData => FaultClass::Network,
            WithholdAcks | MalformedPacket | OversizePacket => FaultClass::Protocol,
        }
    }

    /// Whether a device with a Will should see it published after this fault.
    pub fn publishes_will(self) -> bool {
        matches!(
            self,
            FaultKind::Kill | FaultKind::Stall | FaultKind::DisconnectWithWill
        )
    }
}

/// When a fault fires, counted from the start of the run (every device connected). A request
/// or responder fault fired at a time applies to the device's next request or answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Once, at this offset.
    At(Duration),
    /// At `every`, `2 x every`, ... while before the end of the run.
    Every(Duration),
    /// Request and responder faults only: each request or answer, with this probability
    /// (seeded), from 0.0 to 1.0.
    Probability(f64),
}
