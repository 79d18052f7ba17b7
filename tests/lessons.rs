//! The lessons (fleets/lessons/): each runs with one command, ends by itself within 15 s of
//! run time, exits 0, and its narration carries the lesson; each one's sequence diagram is
//! committed under docs/lessons/ and shown in docs/lessons.md.

mod common;

use std::path::Path;
use std::time::Duration;

use common::repo_file;

struct Run {
    stdout: String,
    report: serde_json::Value,
    diagram: String,
}

fn lesson(name: &str) -> Run {
    lesson_in(name, &[], &[])
}

/// A lesson run with extra arguments, in an environment whose locale is `locale` only.
fn lesson_in(name: &str, args: &[&str], locale: &[(&str, &str)]) -> Run {
    let path = repo_file(&format!("fleets/lessons/{name}.yaml"));
    let fleet = fleetsim::fleet::load(&path).expect("the lesson is a valid fleet");
    assert!(
        fleet.duration <= Duration::from_secs(15),
        "{name} runs too long"
    );
    let dir = tempfile::tempdir().unwrap();
    let (report, diagram) = (dir.path().join("r.json"), dir.path().join("d.md"));
    let mut command = common::fleetsim_command();
    command
        .arg(&path)
        .args(["--report", report.to_str().unwrap()])
        .args(["--sequence", diagram.to_str().unwrap()])
        .args(args);
    let out = command
        .envs(locale.iter().copied())
        .output()
        .expect("run fleetsim");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        stdout,
        report: serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap(),
        diagram: std::fs::read_to_string(diagram).unwrap(),
    }
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

fn count(run: &Run, key: &str) -> u64 {
    run.report["requests"][key].as_u64().unwrap()
}

#[test]
fn lesson_1_subscribes_to_the_response_topic_before_it_publishes() {
    let run = lesson("01-response-topic");
    let out = &run.stdout;
    let subscribe = position(out, "-> SUBSCRIBE state/light-in-bedroom/power");
    let suback = position(out, "<- SUBACK    state/light-in-bedroom/power: granted");
    let publish = position(out, "-> PUBLISH   cmnd/light-in-bedroom/power \"ON\"");
    assert!(subscribe < suback && suback < publish, "{out}");
    position(out, "Response Topic    state/light-in-bedroom/power");
    position(
        out,
        "-> PUBLISH   state/light-in-bedroom/power {\"power\":\"ON\"}",
    );
    assert_eq!(count(&run, "matched"), 2);
    assert!(run.diagram.contains("sequenceDiagram"));
}

#[test]
fn lesson_2_matches_answers_that_come_out_of_order_by_correlation_data() {
    let run = lesson("02-correlation-data");
    let ends: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("matched in"))
        .collect();
    assert_eq!(ends.len(), 3, "{}", run.stdout);
    // light-1 is the slowest: the answer to the first request comes last.
    assert!(ends[2].starts_with("phone:1 "), "{ends:?}");
    for (i, end) in ends.iter().enumerate() {
        let label = end.split_whitespace().next().unwrap();
        assert!(
            end.contains(&format!("Correlation Data \"{label}\"")),
            "{i}: {end}"
        );
    }
    assert_eq!(count(&run, "matched"), 3);
    assert_eq!(count(&run, "unmatched_responses"), 0);
}

#[test]
fn lesson_2_before_mqtt5_shows_answers_mixed_up_without_correlation_data() {
    let run = lesson("02-before-mqtt5");
    let out = &run.stdout;
    position(out, "Correlation Data  none, as before MQTT 5");
    position(out, "but it was the answer to phone-2:1: mixed up");
    position(out, "no request left open to take it for: unmatched");
    assert_eq!(count(&run, "mixed_up"), 1);
    assert_eq!(count(&run, "unmatched_responses"), 2);
}

#[test]
fn lesson_3_builds_a_response_topic_from_response_information_beside_a_refused_guess() {
    let run = lesson("03-response-information");
    let out = &run.stdout;
    position(out, "Request Response Information = 1");
    position(out, "<- CONNACK   accepted, Response Information \"resp/\"");
    position(out, "<- SUBACK    resp/phone-ri: granted");
    position(
        out,
        "<- SUBACK    replies/phone-guess: refused, NotAuthorized (0x87)",
    );
    assert_eq!(count(&run, "matched"), 2);
    assert_eq!(count(&run, "failed"), 1);
}

#[test]
fn lesson_4_follows_a_will_from_connect_to_its_ack_learned_on_reconnect() {
    let run = lesson("04-will-feedback");
    let out = &run.stdout;
    let will = position(
        out,
        "Will on status/light-in-bedroom, with Response Topic will-ack/light-in-bedroom and Correlation Data \"light-in-bedroom#1\"",
    );
    let delivered = position(out, "<- PUBLISH   status/light-in-bedroom");
    let acked = position(out, "-> PUBLISH   will-ack/light-in-bedroom");
    let learned = position(out, "its Will of connection 1 was consumed, by phone");
    assert!(
        will < delivered && delivered < acked && acked < learned,
        "{out}"
    );
    assert_eq!(run.report["wills"]["consumed"], 1);
    assert_eq!(run.report["wills"]["learned_on_reconnect"], 1);
}

#[test]
fn lesson_5_shows_each_responder_fault_from_the_requester() {
    let run = lesson("05-faults");
    let out = &run.stdout;
    position(out, "withholds its answer (a no_answer fault)");
    position(
        out,
        "Correlation Data \"wrong:phone:3\": matches none of its requests: unmatched",
    );
    position(
        out,
        "a second answer to a request already answered: a duplicate",
    );
    position(out, "timed out");
    for (key, n) in [
        ("matched", 1),
        ("late", 1),
        ("timed_out", 2),
        ("unmatched_responses", 1),
        ("duplicate_responses", 1),
    ] {
        assert_eq!(count(&run, key), n, "{key}");
    }
}

/// Every lesson has its diagram committed, and docs/lessons.md shows each one as committed.
#[test]
fn each_lesson_has_its_diagram_in_the_docs() {
    let guide = std::fs::read_to_string(repo_file("docs/lessons.md")).unwrap();
    let lessons = std::fs::read_dir(repo_file("fleets/lessons")).unwrap();
    let mut seen = 0;
    for entry in lessons {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let diagram = repo_file(&format!("docs/lessons/{stem}.md"));
        let text = std::fs::read_to_string(&diagram)
            .unwrap_or_else(|_| panic!("no {}", diagram.display()));
        assert!(text.starts_with("```mermaid\nsequenceDiagram\n"), "{stem}");
        assert!(text.contains("participant broker as broker"), "{stem}");
        assert!(
            guide.contains(text.trim_end()),
            "docs/lessons.md lacks {stem}'s diagram"
        );
        assert!(
            guide.contains(&format!("fleets/lessons/{stem}.yaml")),
            "docs/lessons.md never runs {stem}"
        );
        seen += 1;
    }
    assert_eq!(seen, 6);
    assert!(Path::new(&repo_file("docs/lessons")).is_dir());
}

/// The names of every key of a JSON value, with their paths (`requests.matched`), in order:
/// what a program reading the report relies on.
fn keys(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let path = format!("{path}.{key}");
                keys(inner, &path, out);
                out.push(path);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                keys(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn key_set(report: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut out = Vec::new();
    keys(report, "", &mut out);
    out.into_iter().collect()
}

#[test]
fn lesson_1_in_japanese_narrates_and_sums_up_with_the_articles_terms() {
    let run = lesson_in("01-response-topic", &["--lang", "ja"], &[]);
    let out = &run.stdout;
    position(out, "ナレーション: 最初の 2 件のリクエスト");
    let subscribe = position(
        out,
        "-> SUBSCRIBE state/light-in-bedroom/power  (自分のレスポンストピック",
    );
    let publish = position(out, "-> PUBLISH   cmnd/light-in-bedroom/power \"ON\"");
    assert!(subscribe < publish, "{out}");
    position(out, "レスポンストピック    state/light-in-bedroom/power");
    position(out, "コリレーションデータ  \"phone:1\"");
    position(out, "コリレーションデータ \"phone:1\" をそのまま返す");
    position(out, "自分のリクエスト 1 に一致");
    // The summary too: its labels and its counts.
    position(out, "\n  リクエスト       送信 2: 一致 2、");
    position(out, "\n  判定             OK（");
    assert!(!out.contains("Response Topic"), "{out}");
    assert!(!out.contains("verdict"), "{out}");
    // The JSON report and the diagram are the same in every language.
    assert_eq!(count(&run, "matched"), 2);
    assert_eq!(run.report["ok"], true);
    assert!(
        run.diagram
            .contains("Response Topic state/light-in-bedroom/power")
    );
}

#[test]
fn a_japanese_locale_chooses_japanese_and_lang_en_overrides_it() {
    let ja = lesson_in("01-response-topic", &[], &[("LANG", "ja_JP.UTF-8")]);
    position(
        &ja.stdout,
        "レスポンストピック    state/light-in-bedroom/power",
    );
    position(&ja.stdout, "\n  判定  ");
    let en = lesson_in(
        "01-response-topic",
        &["--lang", "en"],
        &[("LANG", "ja_JP.UTF-8")],
    );
    position(&en.stdout, "Response Topic    state/light-in-bedroom/power");
    position(&en.stdout, "\n  verdict        OK after");
    assert!(!en.stdout.contains("レスポンス"), "{}", en.stdout);
    // The JSON report has the same keys, and the same words, in either language.
    assert_eq!(key_set(&ja.report), key_set(&en.report));
    for path in [["requests", "matched"], ["devices", "total"]] {
        assert_eq!(ja.report[path[0]][path[1]], en.report[path[0]][path[1]]);
    }
    assert_eq!(ja.report["problems"], en.report["problems"]);
    assert_eq!(ja.report["fleet"], en.report["fleet"]);
}

#[test]
fn lesson_5_in_japanese_names_each_fault_in_japanese_with_the_english_term() {
    let ja = lesson_in("05-faults", &["--lang", "ja"], &[]);
    let en = lesson("05-faults");
    let out = &ja.stdout;
    position(out, "レスポンスを返さない（no_answer 障害）");
    position(out, "どのリクエストにも一致しない: 不一致（unmatched）");
    position(out, "重複（duplicate）");
    position(out, "タイムアウト（timed out）");
    position(out, "\n  想定外の応答     不一致 1、重複 1;");
    assert_eq!(key_set(&ja.report), key_set(&en.report));
    // Timings differ from run to run; counts and the samples' words do not.
    for key in ["matched", "late", "timed_out", "unmatched_responses"] {
        assert_eq!(count(&ja, key), count(&en, key), "{key}");
    }
    let whys = |run: &Run| -> Vec<serde_json::Value> {
        let samples = run.report["requests"]["samples"].as_array().unwrap();
        samples.iter().map(|s| s["why"].clone()).collect()
    };
    assert_eq!(whys(&ja), whys(&en));
}

/// The Japanese guide runs the very commands of the English one, lesson by lesson, and points
/// at every lesson's diagram.
#[test]
fn the_japanese_guide_has_the_english_guides_commands_and_every_diagram() {
    let commands = |path: &str| -> Vec<String> {
        // The commands of its ```sh blocks, without their comments (those are translated),
        // but the alias (the Japanese one adds --lang ja).
        let text = std::fs::read_to_string(repo_file(path)).unwrap();
        let mut in_sh = false;
        let mut out = Vec::new();
        for line in text.lines() {
            let command = line.split("  #").next().unwrap_or_default().trim_end();
            match line {
                "```sh" => in_sh = true,
                "```" => in_sh = false,
                _ if !in_sh || line.starts_with('#') || line.starts_with("alias ") => {}
                _ => out.push(command.to_owned()),
            }
        }
        out
    };
    let english = commands("docs/lessons.md");
    assert!(english.len() >= 7, "{english:?}");
    assert_eq!(commands("docs/ja/lessons.md"), english);
    let guide = std::fs::read_to_string(repo_file("docs/ja/lessons.md")).unwrap();
    for entry in std::fs::read_dir(repo_file("fleets/lessons")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(
            guide.contains(&format!("(../lessons/{stem}.md)")),
            "docs/ja/lessons.md lacks a link to {stem}'s diagram"
        );
    }
    for term in [
        "レスポンストピック",
        "コリレーションデータ",
        "レスポンス情報",
        "ウィルメッセージ",
    ] {
        assert!(guide.contains(term), "{term}");
    }
}
