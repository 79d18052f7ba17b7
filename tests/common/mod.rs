//! Helpers shared by the integration tests: fleets from text, a Mosquitto on a free port.
#![allow(dead_code)] // each test binary uses its own subset

pub mod fake;
pub mod hand;
pub mod schema;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetsim::fleet::{self, BrokerTarget, Fleet};
use fleetsim::report::Report;
use fleetsim::run::{RunOptions, run};

/// The fleetsim binary, in an environment of its own: no log filter, an English locale, and
/// none of the variables that would point it elsewhere (broker, shard, run id), whatever the
/// environment of whoever runs the tests. A test sets what it means to test on top.
pub fn fleetsim_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetsim"));
    for name in [
        "RUST_LOG",
        "LC_ALL",
        "LC_MESSAGES",
        "LANG",
        "FLEETSIM_BROKER",
        "FLEETSIM_SHARD",
        "FLEETSIM_RUN_ID",
        "JOB_COMPLETION_INDEX",
    ] {
        command.env_remove(name);
    }
    command
}

pub fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A fleet file from the repo, on the given broker, shortened to `duration`.
pub fn repo_fleet(path: &str, broker: BrokerTarget, duration: Duration) -> Fleet {
    let mut fleet = fleet::load(&repo_file(path)).expect("repo fleets are valid");
    fleet.broker = broker;
    fleet.duration = duration;
    fleet
}

pub fn fleet_from(yaml: &str) -> Fleet {
    fleet::parse(yaml, "<test>").unwrap_or_else(|e| panic!("test fleet invalid: {e}"))
}

pub fn embedded() -> BrokerTarget {
    BrokerTarget::Embedded { port: 0 }
}

/// A broker fleetsim does not start, on a loopback port.
pub fn loopback(port: u16) -> BrokerTarget {
    BrokerTarget::External {
        host: "127.0.0.1".into(),
        port,
        tls: false,
    }
}

pub fn run_fleet(fleet: Fleet) -> Report {
    let options = RunOptions {
        threads: 2,
        ..RunOptions::default()
    };
    run(fleet, &options).unwrap_or_else(|e| panic!("run failed: {e}"))
}

/// The accounting identity, checked in every integration test.
pub fn assert_adds_up(report: &Report) {
    let q = &report.requests;
    assert_eq!(
        q.sent,
        q.matched + q.late + q.timed_out + q.failed + q.in_flight,
        "requests do not add up: {q:?}"
    );
}

/// The effect recorded for the first fault of `kind`.
pub fn fault_effect(report: &Report, kind: &str) -> String {
    report
        .faults
        .events
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} event: {:?}", report.faults))
        .effect
        .clone()
}

/// Publishes with mosquitto_pub (MQTT 5, QoS 1) to a broker on a loopback port; `args` add
/// topic, message, properties. Panics unless it succeeds.
pub fn mosquitto_pub(port: u16, args: &[&str]) {
    let status = Command::new("mosquitto_pub")
        .args([
            "-V",
            "mqttv5",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
        ])
        .args(args)
        .status()
        .expect("mosquitto_pub");
    assert!(status.success(), "mosquitto_pub {args:?} failed");
}

/// A Mosquitto password file in `dir` with these users, for `password_file`.
pub fn password_file(dir: &std::path::Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("passwords");
    for (i, (user, password)) in users.iter().enumerate() {
        let mut command = Command::new("mosquitto_passwd");
        if i == 0 {
            command.arg("-c");
        }
        let status = command
            .arg("-b")
            .arg(&path)
            .args([user, password])
            .status()
            .expect("mosquitto_passwd");
        assert!(status.success(), "mosquitto_passwd for {user} failed");
    }
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A Mosquitto broker on a free loopback port, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    binary: &'static str,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

fn spawn_mosquitto(binary: &str, conf: &std::path::Path, port: u16) -> Child {
    let child = Command::new(binary)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let up = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "mosquitto did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Mosquitto {
    /// Starts `mosquitto` (scripts/test installs it). Panics with a hint when it is missing,
    /// unless FLEETSIM_SKIP_MOSQUITTO is set, in which case it returns None.
    pub fn start() -> Option<Self> {
        Self::start_with(|_, _| String::new())
    }

    /// With more configuration after the `listener` line (listener options like `cafile`, or
    /// global ones like `password_file`). `extra` gets the broker's scratch folder, to write the
    /// files it names, and its port. `allow_anonymous true` unless `extra` sets it.
    pub fn start_with(extra: impl FnOnce(&std::path::Path, u16) -> String) -> Option<Self> {
        if std::env::var("FLEETSIM_SKIP_MOSQUITTO").is_ok_and(|v| !v.is_empty() && v != "0") {
            eprintln!("FLEETSIM_SKIP_MOSQUITTO is set: skipping a Mosquitto test");
            return None;
        }
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("mosquitto is not installed: run scripts/test (it installs it) or set FLEETSIM_SKIP_MOSQUITTO=1");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let extra = extra(dir.path(), port);
        let anonymous = if extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        std::fs::write(
            &conf,
            // set_tcp_nodelay: Mosquitto defaults to Nagle, which adds ~40 ms to round trips.
            format!(
                "listener {port} 127.0.0.1\n{extra}\n{anonymous}persistence false\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\n"
            ),
        )
        .expect("write mosquitto.conf");
        let child = spawn_mosquitto(binary, &conf, port);
        Some(Self {
            port,
            child,
            binary,
            conf,
            _dir: dir,
        })
    }

    /// Kills the broker (every connection drops without DISCONNECT), waits `down`, starts it
    /// again on the same port.
    pub fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = spawn_mosquitto(self.binary, &self.conf, self.port);
    }

    pub fn target(&self) -> BrokerTarget {
        loopback(self.port)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A responder that is not fleetsim: mosquitto_sub reads each request's Response Topic and
/// Correlation Data, and mosquitto_pub answers there with the Correlation Data copied.
pub struct ShellResponder {
    _pipeline: KillGroup,
}

/// A child started in its own process group (`process_group(0)`), killed with its whole group
/// on drop: a shell pipeline's processes go with it.
pub struct KillGroup(pub Child);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.0.id()))
            .status();
        let _ = self.0.wait();
    }
}

impl ShellResponder {
    pub fn start(port: u16, topic: &str, answer: &str) -> Self {
        Self::start_with(port, topic, answer, "")
    }

    /// `publish_args` go to every mosquitto_pub, e.g. a user property.
    pub fn start_with(port: u16, topic: &str, answer: &str, publish_args: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let script = format!(
            "mosquitto_sub -V mqttv5 -h 127.0.0.1 -p {port} -i third-party -q 1 -t '{topic}' -F '%R %D' \
             | while read -r rt cd; do \
                 mosquitto_pub -V mqttv5 -h 127.0.0.1 -p {port} -q 1 -t \"$rt\" \
                   -D publish correlation-data \"$cd\" {publish_args} -m '{answer}'; \
               done"
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the mosquitto_sub/mosquitto_pub responder");
        // mosquitto_sub gives no sign that its SUBSCRIBE was granted; give it time to dial in.
        std::thread::sleep(Duration::from_millis(700));
        Self {
            _pipeline: KillGroup(child),
        }
    }
}

/// PEM files for TLS tests: a CA, a server certificate for 127.0.0.1 and localhost signed by
/// it, its key, and a second CA that signed nothing here.
pub struct Pki {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl Pki {
    pub fn write_to(dir: &std::path::Path) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
        };
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        let authority = ca("fleetsim test CA");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let server = params
            .signed_by(&key, &authority)
            .expect("server certificate");
        Self {
            ca: write("ca.pem", authority.pem()),
            other_ca: write("other-ca.pem", ca("someone else's CA").pem()),
            server_cert: write("server.pem", server.pem()),
            server_key: write("server.key", key.serialize_pem()),
        }
    }
}
