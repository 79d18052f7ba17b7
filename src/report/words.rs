//! The summary table's words, in each [`Lang`]: its row labels, and each row's text with the
//! numbers in place, English and Japanese side by side. What the rows quote from the report
//! (fault effects, Will stories, problems, sample reasons) is the JSON report's own text and
//! stays as it is there.

use crate::lang::Lang::{self, En, Ja};

use super::{Refusals, Requests, Responders, ResponseInfo, Wills};

/// `1 reading`, `2 readings`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", noun(n, one, many))
}

/// The noun for `n` of it.
fn noun<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// A row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Devices,
    Connections,
    Requests,
    Load,
    Strays,
    OthersAnswers,
    BadAnswers,
    RoundTrip,
    Silent,
    Responders,
    Telemetry,
    ResponseInfo,
    Refused,
    Wills,
    Faults,
    Expect,
    Verdict,
}

impl Row {
    #[cfg(test)]
    pub const ALL: [Row; 17] = [
        Row::Devices,
        Row::Connections,
        Row::Requests,
        Row::Load,
        Row::Strays,
        Row::OthersAnswers,
        Row::BadAnswers,
        Row::RoundTrip,
        Row::Silent,
        Row::Responders,
        Row::Telemetry,
        Row::ResponseInfo,
        Row::Refused,
        Row::Wills,
        Row::Faults,
        Row::Expect,
        Row::Verdict,
    ];
}

/// Terminal columns of the label column: the longest label of the language.
pub fn label_columns(lang: Lang) -> usize {
    lang.pick(14, 16)
}

pub fn label(lang: Lang, row: Row) -> &'static str {
    match row {
        Row::Devices => lang.pick("devices", "デバイス"),
        Row::Connections => lang.pick("connections", "接続"),
        Row::Requests => lang.pick("requests", "リクエスト"),
        Row::Load => lang.pick("load", "負荷"),
        Row::Strays => lang.pick("stray answers", "想定外の応答"),
        Row::OthersAnswers => lang.pick("for others", "ほかの応答"),
        Row::BadAnswers => lang.pick("bad answers", "不正な応答"),
        Row::RoundTrip => lang.pick("round trip ms", "往復時間 ms"),
        Row::Silent => lang.pick("went silent", "応答が途絶"),
        Row::Responders => lang.pick("responders", "レスポンダー"),
        Row::Telemetry => lang.pick("telemetry", "テレメトリー"),
        Row::ResponseInfo => lang.pick("response info", "レスポンス情報"),
        Row::Refused => lang.pick("refused", "拒否"),
        Row::Wills => lang.pick("wills", "ウィルメッセージ"),
        Row::Faults => lang.pick("faults", "障害"),
        Row::Expect => lang.pick("expect", "期待値"),
        Row::Verdict => lang.pick("verdict", "判定"),
    }
}

pub fn heading(lang: Lang, fleet: &str, broker: &str, seed: u64) -> String {
    match lang {
        En => format!("fleet {fleet}  on {broker}  seed {seed}"),
        Ja => format!("フリート {fleet}  ブローカー {broker}  シード {seed}"),
    }
}

/// `kinds`: "2 phone, 1 light" (the kind names are the fleet file's).
pub fn devices(lang: Lang, total: u64, kinds: &str, connected: u64, reconnects: u64) -> String {
    match lang {
        En => format!(
            "{total} ({kinds}), {connected} connected, {}",
            count(reconnects, "reconnect", "reconnects")
        ),
        Ja => format!("{total} 台（{kinds}）、接続 {connected}、再接続 {reconnects} 回"),
    }
}

/// `reasons`: "2 reset, 1 keepalive" or empty.
pub fn connections(lang: Lang, d: &super::Devices, reasons: &str) -> String {
    let reasons = match (lang, reasons.is_empty()) {
        (_, true) => String::new(),
        (En, false) => format!(" ({reasons})"),
        (Ja, false) => format!("（{reasons}）"),
    };
    match lang {
        En => format!(
            "{}{reasons}, {} planned; {:.1} s disconnected; {} offline at the end",
            count(d.unplanned_drops, "unplanned drop", "unplanned drops"),
            d.planned_drops,
            d.disconnected_s,
            d.offline_at_end
        ),
        Ja => format!(
            "予定外の切断 {}{reasons}、予定どおり {}; 切断時間 {:.1} 秒; 終了時にオフライン {}",
            d.unplanned_drops, d.planned_drops, d.disconnected_s, d.offline_at_end
        ),
    }
}

pub fn requests(lang: Lang, q: &Requests) -> String {
    let skipped = skipped(lang, q.skipped_offline, q.skipped_backlog);
    match lang {
        En => format!(
            "{} sent: {} matched, {} late, {} timed out, {} failed, {} in flight{skipped}",
            q.sent, q.matched, q.late, q.timed_out, q.failed, q.in_flight
        ),
        Ja => format!(
            "送信 {}: 一致 {}、遅延 {}、タイムアウト {}、失敗 {}、応答待ち {}{skipped}",
            q.sent, q.matched, q.late, q.timed_out, q.failed, q.in_flight
        ),
    }
}

/// `offered`: the rate asked for, or None for a closed loop.
pub fn load(lang: Lang, offered: Option<f64>, achieved: f64, run_s: f64) -> String {
    match (lang, offered) {
        (En, Some(rate)) => {
            format!("{rate:.1}/s asked for, {achieved:.1}/s sent over {run_s:.1}s")
        }
        (En, None) => format!("a closed loop, {achieved:.1}/s sent over {run_s:.1}s"),
        (Ja, Some(rate)) => {
            format!("指定 {rate:.1}/s、実際 {achieved:.1}/s（{run_s:.1} 秒間）")
        }
        (Ja, None) => format!("クローズドループ、実際 {achieved:.1}/s（{run_s:.1} 秒間）"),
    }
}

pub fn strays(lang: Lang, q: &Requests) -> String {
    let mixed_up = match (lang, q.mixed_up) {
        (_, 0) => String::new(),
        (En, n) => format!("; {n} taken for the wrong request"),
        (Ja, n) => format!("; 別のリクエストへの応答と取り違え {n}"),
    };
    match lang {
        En => format!(
            "{} unmatched, {} duplicate; {} carried an error{mixed_up}",
            q.unmatched_responses,
            q.duplicate_responses,
            count(q.error_answers, "matched answer", "matched answers")
        ),
        Ja => format!(
            "不一致 {}、重複 {}; 一致したうちエラーを含む応答 {}{mixed_up}",
            q.unmatched_responses, q.duplicate_responses, q.error_answers
        ),
    }
}

/// Answers at a fleet phone to requests from outside the fleet (a shared Response Topic).
pub fn others_answers(lang: Lang, n: u64) -> String {
    match lang {
        En => format!(
            "{} to requests from outside the fleet, on a shared Response Topic (not counted against the run)",
            count(n, "answer", "answers")
        ),
        Ja => format!(
            "共有のレスポンストピックに届いた、フリート外からのリクエストへの応答 {n}（実行の判定には数えない）"
        ),
    }
}

pub fn bad_answers(lang: Lang, n: u64) -> String {
    match lang {
        En => format!(
            "{} failed expect_answer",
            count(n, "matched answer", "matched answers")
        ),
        Ja => format!("一致した応答のうち expect_answer を満たさないもの {n}"),
    }
}

/// A sample answer: `kind` and `why` are the JSON report's.
pub fn sample(lang: Lang, s: &super::AnswerSample) -> String {
    match lang {
        En => format!(
            "    {} {} @{:.1}s: {} on {}, Correlation Data {}: {}",
            s.phone, s.kind, s.at_s, s.payload, s.topic, s.correlation, s.why
        ),
        Ja => format!(
            "    {} {} @{:.1}s: {} に {}、コリレーションデータ {}: {}",
            s.phone, s.kind, s.at_s, s.topic, s.payload, s.correlation, s.why
        ),
    }
}

/// After the heading of a shard's summary.
pub fn of_shard(lang: Lang, index: u32, count: u32) -> String {
    match lang {
        En => format!("  (shard {index}/{count}: its devices only)"),
        Ja => format!("  （シャード {index}/{count}: このシャードのデバイスのみ）"),
    }
}

/// After the heading of `fleetsim merge`'s summary.
pub fn merged(lang: Lang, shards: u32) -> String {
    match lang {
        En => format!("  ({shards} shards merged)"),
        Ja => format!("  （{shards} シャードを統合）"),
    }
}

pub fn more_faults(lang: Lang, n: usize) -> String {
    match lang {
        En => format!(
            "    ... {n} more {} in the JSON report (faults.events)",
            noun(n as u64, "fault event", "fault events")
        ),
        Ja => format!("    ... ほか {n} 件のフォールトは JSON レポートに（faults.events）"),
    }
}

pub fn more_samples(lang: Lang, n: usize) -> String {
    match lang {
        En => format!(
            "    ... {n} more {} in the JSON report",
            noun(n as u64, "sample", "samples")
        ),
        Ja => format!("    ... ほか {n} 件は JSON レポートに"),
    }
}

pub fn silent(lang: Lang, target: &crate::timeline::TargetReport, until: Option<f64>) -> String {
    let t = target;
    match (lang, until) {
        (En, Some(s)) => format!(
            "{}: answered until {s:.1}s, then {} timed out, {} failed of {} sent",
            t.topic, t.timed_out, t.failed, t.sent
        ),
        (En, None) => format!(
            "{}: never answered, then {} timed out, {} failed of {} sent",
            t.topic, t.timed_out, t.failed, t.sent
        ),
        (Ja, Some(s)) => format!(
            "{}: {s:.1} 秒まで応答、その後 送信 {} のうちタイムアウト {}、失敗 {}",
            t.topic, t.sent, t.timed_out, t.failed
        ),
        (Ja, None) => format!(
            "{}: 一度も応答なし、送信 {} のうちタイムアウト {}、失敗 {}",
            t.topic, t.sent, t.timed_out, t.failed
        ),
    }
}

pub fn more_silent(lang: Lang, n: usize) -> String {
    match lang {
        En => format!(
            "    ... {n} more {} in the JSON report (targets)",
            noun(n as u64, "silent topic", "silent topics")
        ),
        Ja => format!("    ... ほか {n} トピックは JSON レポートに（targets）"),
    }
}

pub fn responders(lang: Lang, s: &Responders) -> String {
    let outside = match (lang, s.from_outside) {
        (_, 0) => String::new(),
        (En, n) => format!("; {n} from outside the fleet"),
        (Ja, n) => format!("; うちフリート外から {n}"),
    };
    match lang {
        En => format!(
            "{} received, {} answered, {} without Response Topic, {} rejected, {} withheld{outside}",
            count(s.received, "request", "requests"),
            s.answered,
            s.without_response_topic,
            s.rejected,
            s.withheld
        ),
        Ja => format!(
            "受信したリクエスト {}、応答 {}、レスポンストピックなし {}、拒否 {}、応答せず {}{outside}",
            s.received, s.answered, s.without_response_topic, s.rejected, s.withheld
        ),
    }
}

pub fn telemetry(lang: Lang, published: u64, offline: u64, backlog: u64) -> String {
    let skipped = skipped(lang, offline, backlog);
    match lang {
        En => format!(
            "{} published{skipped}",
            count(published, "reading", "readings")
        ),
        Ja => format!("発行した測定値 {published}{skipped}"),
    }
}

pub fn response_info(lang: Lang, ri: &ResponseInfo) -> String {
    match lang {
        En => format!(
            "{} asked for it: {} got it in CONNACK, {} used their fallback",
            ri.requested, ri.received, ri.fallback
        ),
        Ja => format!(
            "要求 {}: CONNACK で受け取った {}、代替（fallback）を使った {}",
            ri.requested, ri.received, ri.fallback
        ),
    }
}

/// One device that asked for Response Information: what the broker answered, the topics.
pub fn response_info_device(
    lang: Lang,
    device: &str,
    width: usize,
    received: Option<&str>,
    topics: &str,
) -> String {
    match (lang, received) {
        (En, Some(value)) => format!(
            "    {device:<width$}  asked for Response Information: the broker answered {value:?}; Response Topic {topics}"
        ),
        (En, None) => format!(
            "    {device:<width$}  asked for Response Information: the broker answered nothing, so the fallback; Response Topic {topics}"
        ),
        (Ja, Some(value)) => format!(
            "    {device:<width$}  レスポンス情報を要求: ブローカーの答えは {value:?}; レスポンストピック {topics}"
        ),
        (Ja, None) => format!(
            "    {device:<width$}  レスポンス情報を要求: ブローカーの答えはなく、代替を使用; レスポンストピック {topics}"
        ),
    }
}

pub fn refused(lang: Lang, r: &Refusals) -> String {
    match lang {
        En => format!(
            "{} connects, {} subscriptions, {} publishes",
            r.connect, r.subscribe, r.publish
        ),
        Ja => format!(
            "接続 {}、サブスクライブ {}、発行 {}",
            r.connect, r.subscribe, r.publish
        ),
    }
}

/// One refusal: `what` (connect, subscribe, publish) and `reason` are the JSON report's.
pub fn refusal(
    lang: Lang,
    device: &str,
    width: usize,
    what: &str,
    topic: &str,
    reason: &str,
) -> String {
    match lang {
        En => format!("    {device:<width$}  the broker refused its {what}{topic}: {reason}"),
        Ja => {
            let what = match what {
                "connect" => "接続",
                "subscribe" => "サブスクライブ",
                "publish" => "発行",
                other => other,
            };
            format!("    {device:<width$}  ブローカーが{what}{topic} を拒否: {reason}")
        }
    }
}

pub fn wills(lang: Lang, w: &Wills) -> String {
    match lang {
        En => format!(
            "{} expected: {} published, {} consumed, {} unconsumed, {} missing; \
             {} unexpected, {} suppressed, {} learned on reconnect",
            w.expected,
            w.published,
            w.consumed,
            w.unconsumed,
            w.missing,
            w.unexpected,
            w.suppressed,
            w.learned_on_reconnect
        ),
        Ja => format!(
            "想定 {}: 発行 {}、受け取られた {}、受け取られない {}、発行されない {}; \
             想定外 {}、抑止 {}、再接続時に確認 {}",
            w.expected,
            w.published,
            w.consumed,
            w.unconsumed,
            w.missing,
            w.unexpected,
            w.suppressed,
            w.learned_on_reconnect
        ),
    }
}

pub fn unexpected_will(
    lang: Lang,
    device: &str,
    width: usize,
    incarnation: impl std::fmt::Display,
    at_s: f64,
    after: Option<&str>,
) -> String {
    match lang {
        En => format!(
            "    {device:<width$}  unexpected Will of connection {incarnation} @{at_s:.1}s{}",
            after.map(|k| format!(" after {k}")).unwrap_or_default()
        ),
        Ja => format!(
            "    {device:<width$}  接続 {incarnation} の想定外のウィルメッセージ @{at_s:.1}s{}",
            after.map(|k| format!("（{k} の後）")).unwrap_or_default()
        ),
    }
}

pub fn faults(lang: Lang, injected: u64, kinds: &str) -> String {
    match lang {
        En => format!("{injected} injected: {kinds}"),
        Ja => format!("注入 {injected}: {kinds}"),
    }
}

pub fn expectation(lang: Lang, ok: bool, name: &str, actual: Option<f64>) -> String {
    let mark = match (lang, ok) {
        (En, true) => "ok  ",
        (En, false) => "FAIL",
        (Ja, true) => "OK  ",
        (Ja, false) => "NG  ",
    };
    let actual = match (lang, actual) {
        (En, Some(a)) => format!("actual {}", (a * 10_000.0).round() / 10_000.0),
        (En, None) => "no data".to_owned(),
        (Ja, Some(a)) => format!("実測 {}", (a * 10_000.0).round() / 10_000.0),
        (Ja, None) => "データなし".to_owned(),
    };
    match lang {
        En => format!("{mark} {name} ({actual})"),
        Ja => format!("{mark} {name}（{actual}）"),
    }
}

pub fn verdict(lang: Lang, ok: bool, duration_s: f64) -> String {
    match (lang, ok) {
        (En, true) => format!("OK after {duration_s:.1}s"),
        (En, false) => format!("NOT OK after {duration_s:.1}s"),
        (Ja, true) => format!("OK（{duration_s:.1} 秒）"),
        (Ja, false) => format!("NG（{duration_s:.1} 秒）"),
    }
}

/// `; not sent: 3 while offline, 1 with the queue full`, or nothing when nothing was skipped.
fn skipped(lang: Lang, offline: u64, backlog: u64) -> String {
    let mut parts = Vec::new();
    if offline > 0 {
        parts.push(match lang {
            En => format!("{offline} while offline"),
            Ja => format!("オフライン中 {offline}"),
        });
    }
    if backlog > 0 {
        parts.push(match lang {
            En => format!("{backlog} with the queue full"),
            Ja => format!("キューが満杯 {backlog}"),
        });
    }
    match (lang, parts.is_empty()) {
        (_, true) => String::new(),
        (En, false) => format!("; not sent: {}", parts.join(", ")),
        (Ja, false) => format!("; 未送信: {}", parts.join("、")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::width;
    use crate::report::{Report, Table};

    #[test]
    fn counts_of_one_are_said_in_the_singular_and_cut_lists_say_what_is_left() {
        use crate::report::FaultEvent;
        let mut report = Report::default();
        report.requests.error_answers = 1;
        report.responders.received = 1;
        report.telemetry.published = 2;
        report.faults.injected = 12;
        report.faults.events = (0..12)
            .map(|i| FaultEvent {
                at_s: f64::from(i),
                device: "lamp".into(),
                kind: "slow".into(),
                effect: "answered late".into(),
                connection: false,
            })
            .collect();
        let table = Table(&report, En).to_string();
        assert!(
            table.contains("1 matched answer carried an error"),
            "{table}"
        );
        assert!(table.contains("1 request received"), "{table}");
        assert!(table.contains("2 readings published"), "{table}");
        assert!(table.contains("0 reconnects"), "{table}");
        assert_eq!(
            table.matches("lamp  slow: answered late").count(),
            10,
            "{table}"
        );
        assert!(
            table.contains("... 2 more fault events in the JSON report"),
            "{table}"
        );
        let ja = Table(&report, Ja).to_string();
        assert!(ja.contains("ほか 2 件のフォールト"), "{ja}");
    }

    #[test]
    fn every_label_has_its_own_japanese_and_fits_its_column() {
        for row in Row::ALL {
            let (en, ja) = (label(En, row), label(Ja, row));
            assert_ne!(en, ja, "{row:?} is not translated");
            assert!(width(en) <= label_columns(En), "{en}");
            assert!(width(ja) <= label_columns(Ja), "{ja}");
        }
    }

    #[test]
    fn the_japanese_table_lines_up_its_labels_by_terminal_columns() {
        let report = Report {
            fleet: "home".into(),
            broker: "embedded 127.0.0.1:1883".into(),
            ok: true,
            ..Report::default()
        };
        let table = Table(&report, Ja).to_string();
        assert!(
            table.starts_with("フリート home  ブローカー embedded"),
            "{table}"
        );
        assert!(
            table.contains("\n  リクエスト       送信 0: 一致 0、"),
            "{table}"
        );
        assert!(
            table.contains("\n  判定             OK（0.0 秒）"),
            "{table}"
        );
        // Every row's value starts in the same terminal column, whatever its label's width.
        for line in table.lines().skip(1) {
            let label = line.trim_start().split(' ').next().unwrap_or_default();
            let rest = &line[2 + label.len()..];
            let gap = rest.len() - rest.trim_start().len();
            assert_eq!(2 + width(label) + gap, 2 + label_columns(Ja) + 1, "{line}");
        }
        let english = Table(&report, En).to_string();
        assert!(
            english.contains("\n  requests       0 sent: 0 matched,"),
            "{english}"
        );
        assert!(
            english.contains("\n  verdict        OK after 0.0s"),
            "{english}"
        );
    }
}
