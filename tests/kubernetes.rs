//! The Kubernetes example under docs/kubernetes/ (docs/scale-out.md): the manifests parse,
//! agree with each other on the number of shards, pass only flags fleetsim's `--help` lists,
//! and carry a fleet file that validates; the Dockerfile builds in stages and runs as non-root.
//! A renamed flag or a moved file then breaks this test, not a run on somebody's cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn kubernetes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes")
}

/// One YAML document of one manifest file.
struct Manifest {
    file: String,
    doc: Value,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn containers(&self) -> &[Value] {
        self.doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map_or(&[], Vec::as_slice)
    }
}

/// Every document of every docs/kubernetes/*.yaml, files in name order.
fn manifests() -> Vec<Manifest> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kubernetes_dir())
        .expect("docs/kubernetes exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in docs/kubernetes");
    let mut all = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
        assert!(!docs.is_empty(), "{file} holds no document");
        for doc in docs {
            let manifest = Manifest {
                file: file.clone(),
                doc,
            };
            for field in ["apiVersion", "kind"] {
                assert!(
                    manifest.doc[field].is_string(),
                    "{file}: a document without {field}"
                );
            }
            assert!(
                !manifest.name().is_empty(),
                "{file}: a document without a name"
            );
            all.push(manifest);
        }
    }
    all
}

fn only<'a>(all: &'a [Manifest], kind: &str, name: &str) -> &'a Manifest {
    let found: Vec<&Manifest> = all
        .iter()
        .filter(|m| m.kind() == kind && m.name() == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} {name}");
    found[0]
}

/// A container's arguments. The image's ENTRYPOINT is fleetsim, so `args` is its command
/// line; a `command` would replace fleetsim itself.
fn args(manifest: &Manifest, container: &Value) -> Vec<String> {
    assert!(
        container.get("command").is_none(),
        "{}: {} sets `command`, which replaces the image's ENTRYPOINT (fleetsim): use `args`",
        manifest.file,
        manifest.name()
    );
    container["args"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: {} has no args", manifest.file, manifest.name()))
        .iter()
        .map(|arg| {
            arg.as_str()
                .unwrap_or_else(|| panic!("{}: argument {arg} is not a string", manifest.file))
                .to_owned()
        })
        .collect()
}

/// The value after `flag` in a command line.
fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// The shards' Job: the one whose container runs a fleet rather than `merge`.
fn shard_job(all: &[Manifest]) -> &Manifest {
    let jobs: Vec<&Manifest> = all
        .iter()
        .filter(|m| m.kind() == "Job")
        .filter(|m| m.containers().iter().any(|c| c["args"][0] != "merge"))
        .collect();
    assert_eq!(jobs.len(), 1, "expected one Job running shards");
    jobs[0]
}

fn merge_job(all: &[Manifest]) -> &Manifest {
    let jobs: Vec<&Manifest> = all
        .iter()
        .filter(|m| m.kind() == "Job")
        .filter(|m| m.containers().iter().any(|c| c["args"][0] == "merge"))
        .collect();
    assert_eq!(jobs.len(), 1, "expected one Job running `fleetsim merge`");
    jobs[0]
}

/// Completions of the shards' Job, checked equal to its parallelism: every shard must run at
/// once, since the start barrier waits for all of them.
fn shard_count(job: &Manifest) -> u64 {
    let spec = &job.doc["spec"];
    assert_eq!(
        spec["completionMode"], "Indexed",
        "{}: not Indexed",
        job.file
    );
    let completions = spec["completions"].as_u64().expect("completions");
    assert!(completions >= 1);
    assert_eq!(
        spec["parallelism"].as_u64(),
        Some(completions),
        "{}: parallelism must equal completions",
        job.file
    );
    completions
}

#[test]
fn the_shards_job_is_indexed_with_one_pod_per_shard_and_says_so_to_fleetsim() {
    let all = manifests();
    let job = shard_job(&all);
    let n = shard_count(job);
    let spec = &job.doc["spec"]["template"]["spec"];
    assert_eq!(
        spec["restartPolicy"], "Never",
        "a restarted shard would miss the start barrier"
    );
    let [container] = job.containers() else {
        panic!("{}: expected one container", job.file);
    };
    let args = args(job, container);
    assert_eq!(value_of(&args, "--shards"), Some(n.to_string().as_str()));
    assert!(value_of(&args, "--run-id").is_some(), "{args:?}");
    let report = value_of(&args, "--report").expect("--report");
    assert!(
        report.contains("$(JOB_COMPLETION_INDEX)"),
        "each shard needs a report of its own: {report}"
    );
    // The metrics port is named for the PodMonitor, and is the one fleetsim serves.
    let metrics = value_of(&args, "--metrics").expect("--metrics");
    let port = metrics.rsplit(':').next().unwrap().parse::<u64>().unwrap();
    let ports = container["ports"].as_array().expect("ports");
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"].as_u64() == Some(port)),
        "{ports:?}"
    );
}

#[test]
fn the_merge_lists_every_shards_report_once() {
    let all = manifests();
    let shards = shard_job(&all);
    let n = shard_count(shards);
    let report = value_of(&args(shards, &shards.containers()[0]), "--report")
        .unwrap()
        .to_owned();
    let merge = merge_job(&all);
    let merge_args = args(merge, &merge.containers()[0]);
    let inputs: Vec<&String> = merge_args[1..]
        .iter()
        .take_while(|arg| !arg.starts_with('-'))
        .collect();
    let expected: Vec<String> = (0..n)
        .map(|i| report.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()))
        .collect();
    assert_eq!(
        inputs,
        expected.iter().collect::<Vec<_>>(),
        "merge-job.yaml must list the {n} reports job.yaml writes"
    );
    assert!(value_of(&merge_args, "--report").is_some());
    // Both sides write to and read from the same volume.
    let claim = |job: &Manifest| -> BTreeSet<String> {
        job.doc["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .map(str::to_owned)
            .collect()
    };
    assert!(!claim(shards).is_empty());
    assert_eq!(claim(shards), claim(merge));
    let pvc = only(
        &all,
        "PersistentVolumeClaim",
        claim(shards).first().unwrap(),
    );
    let modes = &pvc.doc["spec"]["accessModes"];
    assert!(
        modes.as_array().unwrap().contains(&"ReadWriteMany".into()),
        "pods on several nodes write the reports: {modes}"
    );
}

/// The names a container's environment defines: `env` entries and the keys of the ConfigMaps
/// it takes whole (`envFrom`).
fn environment(all: &[Manifest], container: &Value) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        if let Some(name) = source["configMapRef"]["name"].as_str() {
            let map = only(all, "ConfigMap", name);
            names.extend(map.doc["data"].as_object().unwrap().keys().cloned());
        }
    }
    names
}

#[test]
fn every_variable_an_argument_uses_is_defined_for_its_container() {
    let all = manifests();
    for manifest in all.iter().filter(|m| m.kind() == "Job") {
        for container in manifest.containers() {
            let defined = environment(&all, container);
            for arg in args(manifest, container) {
                for part in arg.split("$(").skip(1) {
                    let name = part.split(')').next().unwrap();
                    assert!(
                        defined.contains(name),
                        "{}: $({name}) in {arg:?} is not in the container's environment {defined:?}",
                        manifest.file
                    );
                }
            }
        }
    }
}

/// The flags a help text names (`--report`, `-q`), wherever it names them.
fn flags_in_help(help: &str) -> BTreeSet<String> {
    help.split_whitespace()
        .map(|word| word.trim_matches(|c: char| "[](),.:`'\"".contains(c)))
        .map(|word| word.split(['=', '<']).next().unwrap())
        .filter(|word| is_flag(word))
        .map(str::to_owned)
        .collect()
}

fn is_flag(word: &str) -> bool {
    match word.strip_prefix("--") {
        Some(long) => {
            !long.is_empty()
                && long
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }
        None => {
            let short = word.strip_prefix('-').unwrap_or_default();
            short.len() == 1 && short.chars().all(|c| c.is_ascii_alphabetic())
        }
    }
}

fn help(subcommand: Option<&str>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetsim"));
    command.args(subcommand).arg("--help");
    let out = command.output().expect("run fleetsim --help");
    assert!(out.status.success(), "{command:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_flag_in_the_manifests_is_one_fleetsim_lists() {
    let run_flags = flags_in_help(&help(None));
    let merge_flags = flags_in_help(&help(Some("merge")));
    assert!(run_flags.contains("--report") && run_flags.contains("-q"));
    let all = manifests();
    for manifest in all.iter().filter(|m| m.kind() == "Job") {
        for container in manifest.containers() {
            let args = args(manifest, container);
            let (known, which) = match args.first().map(String::as_str) {
                Some("merge") => (&merge_flags, "fleetsim merge --help"),
                _ => (&run_flags, "fleetsim --help"),
            };
            for arg in &args {
                let flag = arg.split('=').next().unwrap();
                if is_flag(flag) {
                    assert!(
                        known.contains(flag),
                        "{}: {flag} is not in `{which}`: {known:?}",
                        manifest.file
                    );
                }
            }
        }
    }
}

#[test]
fn the_shards_read_the_configmaps_fleet_and_it_validates() {
    let all = manifests();
    let job = shard_job(&all);
    let container = &job.containers()[0];
    let fleet_path = args(job, container)[0].clone();
    // The fleet file argument is a key of a ConfigMap mounted where the argument points.
    let volumes = job.doc["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let mut fleet_text = None;
    for mount in container["volumeMounts"].as_array().unwrap() {
        let Some(dir) = mount["mountPath"].as_str() else {
            continue;
        };
        let Some(volume) = volumes.iter().find(|v| v["name"] == mount["name"]) else {
            continue;
        };
        let Some(map_name) = volume["configMap"]["name"].as_str() else {
            continue;
        };
        let map = only(&all, "ConfigMap", map_name);
        for item in volume["configMap"]["items"].as_array().unwrap() {
            let path = format!("{dir}/{}", item["path"].as_str().unwrap());
            if path == fleet_path {
                let key = item["key"].as_str().unwrap();
                fleet_text = map.doc["data"][key].as_str().map(str::to_owned);
            }
        }
    }
    let fleet_text =
        fleet_text.unwrap_or_else(|| panic!("{fleet_path} is not a mounted ConfigMap key"));

    // As a pod would read it: the broker's ${BROKER_URL} from the run ConfigMap.
    assert!(environment(&all, container).contains("BROKER_URL"));
    let broker_url = all
        .iter()
        .filter(|m| m.kind() == "ConfigMap")
        .find_map(|m| m.doc["data"]["BROKER_URL"].as_str())
        .expect("a ConfigMap gives BROKER_URL");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, &fleet_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetsim"))
        .arg("validate")
        .arg(&file)
        .env("BROKER_URL", broker_url)
        .env_remove("FLEETSIM_BROKER")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each shard fits one process: 19,800 devices is the ceiling on an external broker with a
    // 20,000 open-files hard limit (docs/performance.md).
    let fleet = fleetsim::fleet::parse(&fleet_text.replace("${BROKER_URL}", broker_url), "fleet")
        .expect("valid fleet");
    let per_shard = fleet.devices.len().div_ceil(shard_count(job) as usize);
    assert!(per_shard <= 19_800, "{per_shard} devices a shard");
}

#[test]
fn the_podmonitor_scrapes_the_shards_metrics_port() {
    let all = manifests();
    let job = shard_job(&all);
    let labels = job.doc["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let monitors: Vec<&Manifest> = all.iter().filter(|m| m.kind() == "PodMonitor").collect();
    assert_eq!(monitors.len(), 1);
    let spec = &monitors[0].doc["spec"];
    for (key, value) in spec["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(labels.get(key), Some(value), "the PodMonitor selects {key}");
    }
    let endpoints = spec["podMetricsEndpoints"].as_array().unwrap();
    assert!(endpoints.iter().all(|e| e["port"] == "metrics"));
}

/// The Dockerfile's instructions, continuation lines joined and comments left out.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(kubernetes_dir().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions
}

#[test]
fn the_image_builds_in_a_builder_stage_and_runs_as_non_root() {
    let instructions = dockerfile();
    let word = |i: &String, n: usize| i.split_whitespace().nth(n).unwrap_or_default().to_owned();
    let froms: Vec<usize> = (0..instructions.len())
        .filter(|&i| word(&instructions[i], 0).eq_ignore_ascii_case("FROM"))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {instructions:?}");
    assert!(
        instructions.iter().any(|i| {
            let words: Vec<&str> = i.split_whitespace().collect();
            words.len() == 4
                && words[0] == "FROM"
                && words[2].eq_ignore_ascii_case("AS")
                && words[3] == "builder"
        }),
        "a `FROM ... AS builder` stage"
    );
    assert!(
        instructions
            .iter()
            .any(|i| i.contains("cargo build --release --locked")),
        "the builder builds what Cargo.lock says"
    );

    let last = &instructions[*froms.last().unwrap()..];
    let image = word(&last[0], 1);
    let user = last
        .iter()
        .rev()
        .find(|i| word(i, 0) == "USER")
        .map(|i| word(i, 1));
    match user {
        Some(user) => {
            let name = user.split(':').next().unwrap();
            assert!(name != "root" && name != "0", "runs as {user}");
        }
        None => assert!(image.contains("nonroot"), "{image} may run as root"),
    }
    assert!(
        last.iter()
            .any(|i| word(i, 0) == "ENTRYPOINT" && i.contains("fleetsim")),
        "the image runs fleetsim"
    );

    // The build context is the repository root: copy only what the build reads, and only
    // paths that exist.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut copied = BTreeSet::new();
    for copy in instructions.iter().filter(|i| word(i, 0) == "COPY") {
        let words: Vec<&str> = copy.split_whitespace().skip(1).collect();
        if words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let sources: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let (_, sources) = sources.split_last().expect("COPY SRC... DEST");
        assert!(!sources.is_empty(), "{copy}");
        for source in sources {
            let path = source.trim_end_matches('/');
            assert!(
                !path.is_empty() && path != "." && !path.contains(".."),
                "copies the whole context: {copy}"
            );
            assert!(
                root.join(path).exists(),
                "{copy}: {source} is not in the repo"
            );
            copied.insert(PathBuf::from(path));
        }
    }
    // ... and everything the release build reads: the manifest, the lock file, the sources, a
    // build script if one appears, and whatever a non-test source includes from elsewhere.
    let mut needed = vec![
        PathBuf::from("Cargo.toml"),
        PathBuf::from("Cargo.lock"),
        PathBuf::from("src"),
    ];
    if root.join("build.rs").exists() {
        needed.push(PathBuf::from("build.rs"));
    }
    needed.extend(included_by_sources(root));
    for path in needed {
        assert!(
            copied.iter().any(|c| path.starts_with(c)),
            "the build reads {}, which the Dockerfile does not copy",
            path.display()
        );
    }
}

/// Files that `include_str!`/`include_bytes!` read from `src/` outside test modules (files
/// named `test*.rs`), relative to the repository root.
fn included_by_sources(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy();
            if !name.ends_with(".rs") || name.starts_with("test") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for rest in text.split(macro_name).skip(1) {
                    let relative = rest.split('"').next().unwrap();
                    let file = path.parent().unwrap().join(relative);
                    let file = std::path::absolute(&file).unwrap();
                    // Lexically, without the `..`s, as the repository holds it.
                    let mut clean = PathBuf::new();
                    for part in file.components() {
                        match part {
                            std::path::Component::ParentDir => {
                                clean.pop();
                            }
                            other => clean.push(other),
                        }
                    }
                    found.push(clean.strip_prefix(root).unwrap_or(&clean).to_path_buf());
                }
            }
        }
    }
    found
}
