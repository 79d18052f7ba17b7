//! The command line: arguments, logging set-up, and the mapping of outcomes to exit codes.
//! Errors surface here once, with the whole cause, prefixed by the program name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::fleet::{self, BrokerTarget, Fleet};
use crate::interrupt::Signal;
use crate::lang::Lang;
use crate::output::{self, Escaped};
use crate::report::{FleetFacts, Report, ReportTarget, Table};
use crate::run::{RunError, RunOptions, run};

mod merge;
mod serve;
mod shards;

const EXAMPLES: &str = "\
Examples:
  fleetsim fleets/home.yaml                         the article's demo on the embedded broker
  fleetsim fleets/multi.yaml --broker mqtt://127.0.0.1:1883 --report out.json
  fleetsim fleets/home.yaml --duration 1m --seed 7 -q
  fleetsim validate fleets/home.yaml                check a fleet file without running it
  fleetsim broker fleets/home.yaml                  its light and sensors on 127.0.0.1:1883 until
                                                    Ctrl-C: play the phone with MQTTX or mosquitto_rr
  fleetsim schema > fleet.schema.json               the fleet file's JSON Schema, for editors
  fleetsim big.yaml --shard 2/3 --report s2.json    one shard of three (on this machine or another)
  fleetsim merge s1.json s2.json s3.json            the shards added up, judged as one run

Environment:
  FLEETSIM_BROKER  broker to run against instead of the fleet's, as --broker takes it
                   (--broker wins over it, and both over the file's `broker:`)
  FLEETSIM_SHARD   I/N, as --shard takes it (--shard wins over it)
  FLEETSIM_RUN_ID  the run id, as --run-id takes it
  JOB_COMPLETION_INDEX  with --shards N: this shard's index from 0 (Kubernetes Indexed Jobs)
  other variables  `${NAME}` and `${NAME:-default}` in a fleet file's broker, user names,
                   passwords, request topics and targets (docs/fleet-format.md)

Exit codes:
  0  the run finished and is ok
  1  the run finished but is not ok (timeouts, refusals, stray answers; see the report)
  2  invalid fleet file or arguments
  3  broker unreachable or refusing connections (after bounded retries)
  130, 143  interrupted by SIGINT or SIGTERM: the report (marked interrupted) covers what ran";

#[derive(Debug, Parser)]
#[command(
    name = "fleetsim",
    version,
    about = "Simulate a fleet of MQTT 5 devices that talk request/response",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output: warnings and errors only, no exchange trace.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Language of the narration and the summary: en or ja [default: ja when LC_ALL,
    /// LC_MESSAGES or LANG starts with ja, else en]. The JSON report is the same in both.
    #[arg(long, value_enum, global = true)]
    pub lang: Option<Lang>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a fleet (the default when a file is given).
    Run(Box<RunArgs>),
    /// Check a fleet file and print what it would run, without connecting anywhere.
    Validate {
        /// The fleet file (YAML).
        fleet: PathBuf,
    },
    /// Print the JSON Schema of fleet files (docs/fleet.schema.json), for editors: put
    /// `# yaml-language-server: $schema=PATH` on a fleet file's first line.
    Schema,
    /// Keep the embedded broker up with the fleet's lights and sensors answering, until
    /// Ctrl-C, and tell every request sent from outside (play the phone with MQTTX or
    /// mosquitto_rr).
    Broker(serve::BrokerArgs),
    /// Add up the reports of a run's shards (`--shard I/N`) into the fleet's report, judged on
    /// the fleet's `expect:` as a whole.
    Merge(merge::MergeArgs),
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// The fleet file (YAML).
    pub fleet: Option<PathBuf>,
    /// Broker to use instead of the fleet's: `embedded`, `embedded:PORT`, `mqtt://host:port`
    /// or `mqtts://host:port` (TLS, with --ca-file)
    /// [env: FLEETSIM_BROKER, which this option wins over]
    #[arg(long, value_name = "URL", value_parser = parse_broker)]
    pub broker: Option<BrokerTarget>,
    /// How long devices send (e.g. 30s, 2m), instead of the fleet's duration.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Seed for every random choice, instead of the fleet's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the report as JSON to this file (`-`: to stdout, the summary then goes to
    /// stderr). Written on every exit, atomically.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Also write the verdict as JUnit XML to this file, for CI: one testcase per `expect:`
    /// entry and one for the verdict. Written on every exit, atomically.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// How the end of the run is printed on stdout: `text` (the summary table) or `json` (the
    /// report as one line of JSON, for scripts; the narration then goes to stderr).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Run shard I of N (1 <= I <= N): the devices whose index in the file (from 0) is I-1
    /// modulo N; `fleetsim merge` adds the shards' reports up. [env: FLEETSIM_SHARD]
    #[arg(long, value_name = "I/N", value_parser = fleet::Shard::parse)]
    pub shard: Option<fleet::Shard>,
    /// In a Kubernetes Indexed Job: N shards, this one given by JOB_COMPLETION_INDEX (from 0).
    #[arg(long, value_name = "N", conflicts_with = "shard",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(fleet::MAX_SHARDS)))]
    pub shards: Option<u32>,
    /// The run's name, shared by its shards: each shard publishes a retained "ready" message
    /// under fleetsim/runs/RUN/ready/ and waits for all N before sending. [env: FLEETSIM_RUN_ID]
    #[arg(long, value_name = "RUN", value_parser = shards::parse_run_id)]
    pub run_id: Option<String>,
    /// Once ready, start sending at this wall-clock instant (RFC 3339, e.g.
    /// 2026-12-02T15:00:00Z), so shards on several machines start together.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// Wait this long once every device is connected and subscribed, before the first
    /// request (e.g. 5s), so a watcher attached then sees exchange 1.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub start_delay: Option<Duration>,
    /// Print a progress line on stderr every 5 s of the run (connected, sent, matched, timed
    /// out, answers/s, p99) [default: when stderr is a terminal].
    #[arg(long)]
    pub progress: bool,
    /// Serve the run's counts for Prometheus at http://ADDR/metrics while it runs
    /// (OpenMetrics text; e.g. 127.0.0.1:9464, port 0 for a free one, logged).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Threads (arbiters) to spread the device actors over [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// CA certificate (PEM) to check an mqtts:// broker against, instead of the fleet's.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mqtts://, with --key-file.
    #[arg(long, value_name = "PEM", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mqtts://, with --cert-file.
    #[arg(long, value_name = "PEM", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Put PREFIX in front of every client id (and so of every topic built from `{id}`), so
    /// two runs can share one broker without taking over each other's sessions.
    #[arg(long, value_name = "PREFIX", value_parser = parse_id_prefix)]
    pub id_prefix: Option<String>,
    /// How many request/response exchanges to print step by step (with the connection
    /// set-up of fleets of up to 32 devices).
    /// [default: the fleet's `show_exchanges`, or 3]
    #[arg(long, value_name = "N")]
    pub show_exchanges: Option<usize>,
    /// Also draw the narrated steps as a Mermaid sequence diagram into PATH (a Markdown file
    /// with a ```mermaid block when PATH ends in .md).
    #[arg(long, value_name = "PATH")]
    pub sequence: Option<PathBuf>,
}

/// `--format`: what the end of a run prints on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The summary table.
    #[default]
    Text,
    /// The report as one line of JSON.
    Json,
}

/// Requests the narration tells when neither the command line nor the fleet says.
const DEFAULT_SHOW_EXCHANGES: usize = 3;

/// Documented exit codes (README.md, `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    NotOk = 1,
    Invalid = 2,
    Broker = 3,
    /// SIGINT ended the run early (128 + 2).
    Interrupted = 130,
    /// SIGTERM ended the run early (128 + 15).
    Terminated = 143,
}

/// `--duration`: what a fleet file's `duration` accepts.
fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".into()),
        Ok(d) if d > fleet::MAX_DURATION => {
            Err(format!("must be at most {}", fleet::max_duration_text()))
        }
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (use a form like 10s, 2m or 1m30s)")),
    }
}

fn parse_id_prefix(text: &str) -> Result<String, String> {
    match fleet::id_prefix_problem(text) {
        Some(problem) => Err(problem),
        None => Ok(text.to_owned()),
    }
}

/// `--start-at`: an RFC 3339 instant.
fn parse_start_at(text: &str) -> Result<std::time::SystemTime, String> {
    let at = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{e} (write an RFC 3339 time, like 2026-12-02T15:00:00Z)"))?;
    // A day is plenty to start shards on several machines; more is a typo, not a plan.
    let limit = std::time::SystemTime::now() + Duration::from_secs(24 * 3600);
    if at > limit {
        return Err("is more than a day away: start shards together within 24 hours".into());
    }
    Ok(at)
}

/// The environment variable that gives a broker like `--broker` does.
pub const BROKER_ENV: &str = "FLEETSIM_BROKER";

/// The broker the command line chose: `--broker`, else [`BROKER_ENV`] (read with `env`; unset
/// or empty: none), else None, and the fleet file's stands.
fn chosen_broker(
    flag: Option<BrokerTarget>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Option<BrokerTarget>, String> {
    if flag.is_some() {
        return Ok(flag);
    }
    let Some(text) = shards::env_text(env, BROKER_ENV)? else {
        return Ok(None);
    };
    parse_broker(&text)
        .map(Some)
        .map_err(|e| format!("{BROKER_ENV}: {e}"))
}

/// `--broker`: what a fleet file's `broker:` accepts, plus `embedded:PORT`.
fn parse_broker(text: &str) -> Result<BrokerTarget, String> {
    match text.strip_prefix("embedded:") {
        Some(port) => port
            .parse()
            .map(|port| BrokerTarget::Embedded { port })
            .map_err(|_| format!("`{port}` is not a port number (0 to 65535)")),
        // The file's other form, `{embedded: {port: N}}`, is `embedded:PORT` here.
        None if text != "embedded" && !text.contains("://") => Err(format!(
            "`{text}` is not a broker: give `embedded`, `embedded:PORT`, or a URL like mqtt://host:1883 or mqtts://host:8883"
        )),
        None => fleet::parse_broker(text),
    }
}

impl Cli {
    /// Logs go to stderr, so stdout holds only the trace and the report.
    ///
    /// Lines go through a background writer, so a device thread that logs never waits on the
    /// terminal (it blocks only if the writer falls 128k lines behind: no line is dropped).
    /// Keep the returned guard until exit: dropping it flushes what is still queued. Colours
    /// only on a terminal, and not with `NO_COLOR` set.
    #[must_use = "dropping the guard stops the log writer"]
    pub fn init_tracing(&self) -> tracing_appender::non_blocking::WorkerGuard {
        let default = match (self.quiet, self.verbose) {
            // The embedded broker's own warnings (a stalled client timing out) are expected.
            (true, _) => "warn,mqtt5=error",
            (false, 0) => "info,mqtt5=error",
            (false, 1) => "debug,mqtt5=info",
            (false, _) => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .finish(std::io::stderr());
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(colour)
            .with_target(false)
            .init();
        guard
    }
}

/// Carries out the command and returns the exit code.
pub fn execute(cli: Cli) -> Exit {
    // Chosen once: the narration and the table are handed the language, never look it up.
    let lang = Lang::choose(cli.lang, |name| std::env::var(name).ok());
    match cli.command {
        Some(Command::Validate { fleet }) => validate(&fleet),
        Some(Command::Schema) => {
            output::line(fleet::json_schema());
            Exit::Ok
        }
        Some(Command::Run(args)) => run_fleet(*args, cli.quiet, lang),
        Some(Command::Broker(args)) => serve::serve(args, cli.quiet, lang),
        Some(Command::Merge(args)) => merge::run(args, lang),
        None => run_fleet(cli.run, cli.quiet, lang),
    }
}

/// Messages quote fleet files and brokers: escaped, so they cannot drive the terminal.
fn fail(exit: Exit, message: impl std::fmt::Display) -> Exit {
    let message = message.to_string();
    output::error_line(format_args!("fleetsim: {}", Escaped::lines(&message)));
    exit
}

fn load(path: &Path) -> Result<Fleet, Exit> {
    fleet::load(path).map_err(|e| fail(Exit::Invalid, e))
}

fn validate(path: &Path) -> Exit {
    match load(path) {
        Ok(fleet) => {
            output::line(summary(&fleet));
            // Valid, but the embedded broker would refuse these (an external one may not).
            let limit = crate::broker::MAX_PACKET_SIZE;
            for warning in fleet::oversized_payloads(&fleet, limit) {
                output::error_line(format_args!(
                    "fleetsim: warning: {warning} (the embedded broker's limit)"
                ));
            }
            Exit::Ok
        }
        Err(exit) => exit,
    }
}

/// What the fleet would run, one line per device and per fault, for `validate`.
fn summary(fleet: &Fleet) -> String {
    // Names and topics come from the file: escaped, like everything fleetsim prints.
    fn e(text: &str) -> Escaped<'_> {
        Escaped::value(text)
    }
    let mut out = format!(
        "ok: valid fleet \"{}\", {} devices, {}, seed {}",
        e(&fleet.name),
        fleet.devices.len(),
        humantime::format_duration(fleet.duration),
        fleet.seed
    );
    for device in &fleet.devices {
        out += &format!("\n  {:<7} {}", device.kind().as_str(), e(&device.id));
        if let fleet::Role::Phone(phone) = &device.role {
            let targets = &phone.targets;
            for i in 0..targets.len() {
                out += &format!(
                    "\n            -> {}  (Response Topic {})",
                    e(targets.request_topic(i, fleet)),
                    e(targets.response_topic(i))
                );
            }
        }
        if let Some(will) = &device.will {
            out += &format!(
                "\n            Will on {} (Response Topic {}, delay {})",
                e(&will.topic),
                e(&will.response_topic),
                humantime::format_duration(will.delay)
            );
        }
        if let Some(consumer) = &device.consume_wills {
            out += &format!(
                "\n            consumes Wills on {}",
                e(&consumer.filters.join(", "))
            );
        }
    }
    for injection in crate::faults::schedule(fleet) {
        out += &format!(
            "\n  fault   {}@{} on {}, away {}",
            injection.kind.as_str(),
            humantime::format_duration(injection.at),
            e(&fleet.devices[injection.device].id),
            humantime::format_duration(injection.down_for)
        );
    }
    out
}

fn run_fleet(args: RunArgs, quiet: bool, lang: Lang) -> Exit {
    if args.format == Format::Json && args.report.as_deref() == Some(Path::new("-")) {
        return fail(
            Exit::Invalid,
            "--report - and --format json both write JSON to stdout: choose one",
        );
    }
    let target = match output_target(args.report.as_deref(), "report", true) {
        Ok(target) => target,
        Err(exit) => return exit,
    };
    let junit = match output_target(args.junit.as_deref(), "JUnit file", false) {
        Ok(junit) => junit,
        Err(exit) => return exit,
    };
    let format = args.format;
    if format == Format::Json {
        output::keep_stdout_for_data();
    }
    let sequence = args.sequence.clone();
    if sequence.is_some() && (quiet || args.show_exchanges == Some(0)) {
        return fail(
            Exit::Invalid,
            "--sequence draws the narrated exchanges: it needs --show-exchanges above 0, and no -q",
        );
    }
    if let Err(exit) = output_target(sequence.as_deref(), "sequence diagram", false) {
        return exit;
    }
    let (report, exit) = match load_and_run(args, quiet, lang) {
        Ok(report) => {
            if let (Some(path), Some(diagram)) = (&sequence, &report.sequence)
                && let Err(e) = write_sequence(path, diagram)
            {
                fail(
                    Exit::NotOk,
                    format!(
                        "cannot write the sequence diagram to {}: {e}",
                        path.display()
                    ),
                );
            }
            match format {
                Format::Text => finish(&report, lang),
                Format::Json => output::line(report.to_json_line()),
            }
            let exit = match report.signal {
                Some(Signal::Term) => Exit::Terminated,
                Some(Signal::Int) => Exit::Interrupted,
                None if report.ok => Exit::Ok,
                None => Exit::NotOk,
            };
            (report, exit)
        }
        Err(failure) => {
            fail(failure.exit, &failure.message);
            let report = Report::failed(failure.fleet, failure.kind, failure.message);
            if format == Format::Json {
                output::line(report.to_json_line());
            }
            (report, failure.exit)
        }
    };
    // Written on every exit: a failed run says so instead of leaving no report, or an old one.
    let junit = write_output(junit.as_ref(), "JUnit file", || {
        crate::report::junit(&report)
    });
    let written = write_output(target.as_ref(), "report", || report.to_json());
    junit.and(written).err().unwrap_or(exit)
}

/// A file the command line names for output, checked before anything runs: a bad path
/// fails in a second, not after the run. `-` (stdout, where `stdout_ok`) keeps stdout for it.
fn output_target(
    path: Option<&Path>,
    what: &str,
    stdout_ok: bool,
) -> Result<Option<ReportTarget>, Exit> {
    let Some(path) = path else { return Ok(None) };
    let target = if stdout_ok {
        ReportTarget::from_arg(path)
    } else {
        ReportTarget::File(path.to_path_buf())
    };
    if let Err(e) = target.check() {
        return Err(fail(
            Exit::Invalid,
            format!("cannot write the {what} to {target}: {e}"),
        ));
    }
    if target == ReportTarget::Stdout {
        output::keep_stdout_for_data();
    }
    Ok(Some(target))
}

/// Writes an output the command line asked for; on failure says so, and the exit is 1.
fn write_output(
    target: Option<&ReportTarget>,
    what: &str,
    text: impl FnOnce() -> String,
) -> Result<(), Exit> {
    match target.map(|t| (t, t.write(&text()))) {
        Some((target, Err(e))) => Err(fail(
            Exit::NotOk,
            format!("cannot write the {what} to {target}: {e}"),
        )),
        _ => Ok(()),
    }
}

/// `--threads`, or one arbiter per core.
fn threads(arg: Option<u16>) -> usize {
    arg.map_or_else(|| RunOptions::default().threads, usize::from)
}

/// The summary table, at the end of a run.
fn finish(report: &Report, lang: Lang) {
    // The table quotes ids, topics and the broker's reasons.
    output::human(Escaped::lines(&Table(report, lang).to_string()));
}

/// The diagram as Mermaid text, or as a Markdown file around it (`.md`), which GitHub and
/// most Markdown viewers draw.
fn write_sequence(path: &Path, diagram: &str) -> std::io::Result<()> {
    let markdown = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("md"));
    let text = if markdown {
        format!("```mermaid\n{diagram}```\n")
    } else {
        diagram.to_owned()
    };
    std::fs::write(path, text)
}

/// Why a run could not be carried out, and what is known of the fleet.
struct Failure {
    exit: Exit,
    /// For the report's `error.kind`.
    kind: &'static str,
    message: String,
    fleet: Option<FleetFacts>,
}

impl Failure {
    fn invalid(message: impl std::fmt::Display, fleet: Option<FleetFacts>) -> Self {
        Self {
            exit: Exit::Invalid,
            kind: "invalid",
            message: message.to_string(),
            fleet,
        }
    }
}

/// The fleet file with the command line's overrides, run.
fn load_and_run(args: RunArgs, quiet: bool, lang: Lang) -> Result<Report, Failure> {
    let Some(path) = &args.fleet else {
        return Err(Failure::invalid(
            "no fleet file given (try: fleetsim fleets/home.yaml, or fleetsim --help)",
            None,
        ));
    };
    // Through the validator, so the fleet is checked as it will run (faults against the
    // duration given here, mqtts:// against the CA file given here).
    let env = |name: &str| std::env::var_os(name);
    let invalid = |e| Failure::invalid(e, None);
    let broker = chosen_broker(args.broker, &env).map_err(invalid)?;
    let shard = shards::chosen_shard(args.shard, args.shards, &env).map_err(invalid)?;
    let run_id = shards::chosen_run_id(args.run_id.clone(), &env).map_err(invalid)?;
    let overrides = fleet::Overrides {
        id_prefix: args.id_prefix.clone(),
        broker,
        duration: args.duration,
        seed: args.seed,
        ca_file: args.ca_file,
        client_cert: args.cert_file.zip(args.key_file),
        shard,
    };
    let fleet = fleet::load_with(path, &overrides).map_err(|e| Failure::invalid(e, None))?;
    if !fleet.shard.is_whole() && matches!(fleet.broker, BrokerTarget::Embedded { .. }) {
        return Err(Failure::invalid(
            format!(
                "shard {} runs on the embedded broker, which lives inside each process: the shards would never meet; give them one broker (--broker mqtt://host:port or FLEETSIM_BROKER)",
                fleet.shard
            ),
            Some(FleetFacts::from(&fleet)),
        ));
    }
    let options = RunOptions {
        threads: threads(args.threads),
        show_exchanges: match (quiet, args.show_exchanges, fleet.show_exchanges) {
            (true, _, _) => 0,
            (false, Some(n), _) | (false, None, Some(n)) => n,
            (false, None, None) => DEFAULT_SHOW_EXCHANGES,
        },
        sequence: args.sequence.is_some(),
        lang,
        handle_signals: true,
        tell_outside: if quiet {
            0
        } else {
            crate::narrate::OUTSIDE_TOLD
        },
        progress: args.progress || (!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())),
        metrics: args.metrics,
        start_delay: args.start_delay.unwrap_or_default(),
        start_at: args.start_at,
        run_id,
        on_ready: None,
    };
    let known = FleetFacts::from(&fleet);
    run(fleet, &options).map_err(|e| {
        let (exit, kind) = match &e {
            RunError::System(_) => (Exit::NotOk, "system"),
            RunError::TooFewFiles { .. }
            | RunError::Tls(_)
            | RunError::Sources(_)
            | RunError::Metrics { .. } => (Exit::Invalid, "invalid"),
            _ => (Exit::Broker, "broker"),
        };
        Failure {
            exit,
            kind,
            message: e.to_string(),
            fleet: Some(known),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_flag_takes_fleet_forms_and_an_embedded_port() {
        assert_eq!(
            parse_broker("embedded:1884"),
            Ok(BrokerTarget::Embedded { port: 1884 })
        );
        assert_eq!(
            parse_broker("mqtt://localhost"),
            Ok(BrokerTarget::External {
                host: "localhost".into(),
                port: 1883,
                tls: false,
            })
        );
        assert_eq!(
            parse_broker("mqtts://localhost"),
            Ok(BrokerTarget::External {
                host: "localhost".into(),
                port: 8883,
                tls: true,
            })
        );
        assert!(
            parse_broker("embedded:99999")
                .unwrap_err()
                .contains("99999")
        );
        assert!(parse_broker("tcp://x:1").unwrap_err().contains("mqtt://"));
    }

    #[test]
    fn the_broker_comes_from_the_flag_then_the_environment_then_the_file() {
        let url = |s: &str| Some(std::ffi::OsString::from(s));
        let env_broker = |_: &str| url("mqtt://from-env:1884");
        let flag = Some(BrokerTarget::Embedded { port: 7 });
        assert_eq!(chosen_broker(flag.clone(), &env_broker), Ok(flag));
        assert_eq!(
            chosen_broker(None, &env_broker),
            Ok(Some(BrokerTarget::External {
                host: "from-env".into(),
                port: 1884,
                tls: false,
            }))
        );
        // Unset or empty: the file decides.
        assert_eq!(chosen_broker(None, &|_| None), Ok(None));
        assert_eq!(chosen_broker(None, &|_| url("")), Ok(None));
        assert_eq!(
            chosen_broker(None, &|_| url("embedded:1885")),
            Ok(Some(BrokerTarget::Embedded { port: 1885 }))
        );
        let asked = std::cell::RefCell::new(Vec::new());
        let e = chosen_broker(None, &|name| {
            asked.borrow_mut().push(name.to_string());
            url("amqp://x")
        })
        .unwrap_err();
        assert_eq!(asked.into_inner(), [BROKER_ENV]);
        assert!(
            e.starts_with("FLEETSIM_BROKER: unsupported scheme `amqp`"),
            "{e}"
        );
    }

    #[test]
    fn a_broker_variable_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = |_: &str| Some(std::ffi::OsString::from_vec(vec![0x6d, 0xff]));
        assert_eq!(
            chosen_broker(None, &bad),
            Err("FLEETSIM_BROKER is not valid UTF-8".to_string())
        );
    }

    #[test]
    fn the_summary_escapes_what_the_file_holds() {
        let mut fleet = fleet::parse(
            "name: n\ndevices:\n  - {kind: light, id: l, will: {}}\n",
            "<test>",
        )
        .unwrap();
        // Validation refuses these; the summary must not count on it.
        fleet.name = "\u{1b}[2J".into();
        if let Some(will) = &mut fleet.devices[0].will {
            will.topic = "status/\u{202e}x".into();
        }
        let text = summary(&fleet);
        let raw = |c: char| c != '\n' && output::is_unsafe(c);
        assert!(!text.contains(raw), "{text:?}");
        assert!(text.contains("\"\\u{1b}[2J\""), "{text}");
        assert!(text.contains("Will on status/\\u{202e}x"), "{text}");
    }

    #[test]
    fn durations_must_be_positive_and_readable() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").unwrap_err().contains("10s"));
        assert_eq!(parse_duration("30days"), Ok(fleet::MAX_DURATION));
        assert!(
            parse_duration("500000000000years")
                .unwrap_err()
                .contains("at most 30days")
        );
    }
}
