//! The narration's words, in each [`Lang`]: one function per message, English and Japanese
//! side by side, so a translator reads both at once and the compiler sees that neither is
//! missing. The Japanese uses the terms of the article the project grew from (レスポンストピック,
//! コリレーションデータ, レスポンス情報, ウィルメッセージ). Layout (columns, arrows, labels) is
//! `mod.rs`'s; the sequence diagram stays English (it is committed in the English docs).

use std::fmt::Write as _;

use crate::events::Failure;
use crate::lang::Lang::{self, En, Ja};

/// What a subscription is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The Response Topic of a device's own Will: acks arrive there.
    WillAcks,
    /// Other devices' Wills, consumed and acked.
    Wills,
    /// A phone's Response Topic.
    Answers,
    /// A light's command topic.
    Commands,
    /// A sensor's request topic.
    Requests,
    Other,
}

/// How a SUBACK answered one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granted {
    Qos(u8),
    /// Refused, with the reason code (`NotAuthorized (0x87)`).
    Refused(String),
}

/// Why an answer ended none of a phone's requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Stray {
    /// A second answer to one request.
    Duplicate,
    /// The answer to a request already counted timed out, `ms` after it was sent.
    Late { ms: f64 },
    /// Its Correlation Data names none of the phone's requests.
    Unmatched,
    /// No Correlation Data, and no request left open to take it for.
    NothingOpen,
    /// Without Correlation Data, taken for request `taken` but the answer to `truth`.
    MixedUp { taken: String, truth: String },
    /// The answer to a request from outside the fleet, on a Response Topic it shares.
    Outsiders,
}

/// "none", for a missing property.
pub fn none(lang: Lang) -> &'static str {
    lang.pick("none", "なし")
}

pub fn heading(lang: Lang, exchanges: usize) -> String {
    match lang {
        En => format!(
            "narration: the first {exchanges} request{}, step by step (-> a packet sent to the broker, <- one the broker delivered)",
            if exchanges == 1 { "" } else { "s" }
        ),
        Ja => format!(
            "ナレーション: 最初の {exchanges} 件のリクエストを順を追って表示します（-> ブローカーへ送ったパケット、<- ブローカーから届いたパケット）"
        ),
    }
}

pub fn connect(lang: Lang, clean_start: bool, keepalive_s: u16, user: Option<&str>) -> String {
    let mut text = match (lang, clean_start) {
        (En, true) => format!("clean start, keepalive {keepalive_s} s"),
        (En, false) => format!("resume the session, keepalive {keepalive_s} s"),
        (Ja, true) => format!("クリーンスタート、キープアライブ {keepalive_s} 秒"),
        (Ja, false) => format!("セッションを再開、キープアライブ {keepalive_s} 秒"),
    };
    if let Some(user) = user {
        let _ = write!(text, "{}{user}", lang.pick(", user ", "、ユーザー "));
    }
    text
}

pub fn request_response_information(lang: Lang) -> &'static str {
    lang.pick(
        "Request Response Information = 1: asks the broker for a Response Topic it will allow",
        "Request Response Information = 1: ブローカーが許可するレスポンストピックを、レスポンス情報として求める",
    )
}

pub fn will(lang: Lang, topic: &str, delay_s: u64, response_topic: &str, data: &str) -> String {
    match lang {
        En => format!(
            "Will on {topic}{}, with Response Topic {response_topic} and Correlation Data {data}: whoever consumes it can say so",
            if delay_s > 0 {
                format!(" after {delay_s} s")
            } else {
                String::new()
            }
        ),
        Ja => format!(
            "ウィルメッセージ {topic}{}、レスポンストピック {response_topic}、コリレーションデータ {data}: 受け取った側はそのレスポンストピックへ受領を知らせられる",
            if delay_s > 0 {
                format!("（{delay_s} 秒後）")
            } else {
                String::new()
            }
        ),
    }
}

pub fn connack_refused(lang: Lang, reason: &str) -> String {
    format!("{}{reason}", lang.pick("refused: ", "拒否: "))
}

/// The CONNACK of an accepted connection.
pub fn connack(
    lang: Lang,
    session_present: bool,
    response_information: Option<&str>,
    receive_maximum: Option<u16>,
) -> String {
    let mut text = String::from(lang.pick("accepted", "受理"));
    if session_present {
        text += lang.pick(", session resumed", "、セッションを再開");
    }
    if let Some(info) = response_information {
        match lang {
            En => {
                let _ = write!(
                    text,
                    ", Response Information {info}: the prefix to build its Response Topic on"
                );
            }
            Ja => {
                let _ = write!(
                    text,
                    "、レスポンス情報 {info}: これを先頭にレスポンストピックを組み立てる"
                );
            }
        }
    }
    if let Some(max) = receive_maximum {
        let _ = write!(
            text,
            "{}{max}",
            lang.pick(", Receive Maximum ", "、Receive Maximum ")
        );
    }
    text
}

pub fn purpose(lang: Lang, purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::WillAcks => lang.pick(
            "its Will's Response Topic: acks of its Will arrive here",
            "自分のウィルメッセージのレスポンストピック: ウィルへの応答がここに届く",
        ),
        Purpose::Wills => lang.pick(
            "other devices' Wills, to consume and ack",
            "ほかのデバイスのウィルメッセージ: 受け取って応答する",
        ),
        Purpose::Answers => lang.pick(
            "its Response Topic, subscribed before any request",
            "自分のレスポンストピック: リクエストより先にサブスクライブ",
        ),
        Purpose::Commands => lang.pick(
            "its command topic: requests arrive here",
            "自分のコマンドトピック: リクエストがここに届く",
        ),
        Purpose::Requests => lang.pick("its request topic", "自分のリクエストトピック"),
        Purpose::Other => "",
    }
}

pub fn granted(lang: Lang, granted: &Granted) -> String {
    match (lang, granted) {
        (En, Granted::Qos(qos)) => format!("granted QoS {qos}"),
        (Ja, Granted::Qos(qos)) => format!("許可（QoS {qos}）"),
        (En, Granted::Refused(reason)) => format!("refused, {reason}"),
        (Ja, Granted::Refused(reason)) => format!("拒否、{reason}"),
    }
}

/// The packet column of a request held back (its Response Topic was refused).
pub fn held(lang: Lang) -> &'static str {
    lang.pick("(held)", "(保留)")
}

pub fn request_response_topic(lang: Lang, topic: &str) -> String {
    match lang {
        En => format!("Response Topic    {topic}   (where the answer must go)"),
        Ja => format!("レスポンストピック    {topic}   （レスポンスの送り先）"),
    }
}

pub fn request_correlation(lang: Lang, data: &str) -> String {
    match lang {
        En => format!("Correlation Data  {data}   (the answer must carry it back)"),
        Ja => format!("コリレーションデータ  {data}   （レスポンスにそのまま付いて戻る）"),
    }
}

pub fn request_without_correlation(lang: Lang) -> &'static str {
    lang.pick(
        "Correlation Data  none, as before MQTT 5: nothing ties the answer to this request",
        "コリレーションデータ  なし（MQTT 5 以前と同じ）: レスポンスをこのリクエストに結び付けるものがない",
    )
}

/// A responder received a request.
pub fn received(
    lang: Lang,
    topic: &str,
    payload: &str,
    response_topic: &str,
    data: &str,
) -> String {
    match lang {
        En => {
            format!("{topic} {payload}, Response Topic {response_topic}, Correlation Data {data}")
        }
        Ja => format!(
            "{topic} {payload}、レスポンストピック {response_topic}、コリレーションデータ {data}"
        ),
    }
}

/// A responder's answer, `copied`: with the request's Correlation Data.
pub fn answered(lang: Lang, topic: &str, answer: &str, data: &str, copied: bool) -> String {
    match (lang, copied) {
        (En, true) => format!("{topic} {answer}, Correlation Data {data} copied unchanged"),
        (En, false) => format!("{topic} {answer}, Correlation Data {data}"),
        (Ja, true) => format!("{topic} {answer}、コリレーションデータ {data} をそのまま返す"),
        (Ja, false) => format!("{topic} {answer}、コリレーションデータ {data}"),
    }
}

/// Under a request from a client outside the fleet: who sent it.
pub fn sent_from_outside(lang: Lang, sender: &str) -> String {
    match lang {
        En => format!("sent by {sender}, a client outside the fleet"),
        Ja => format!("送信元 {sender}（フリート外のクライアント）"),
    }
}

/// After the last request from outside that is told.
pub fn outside_bounded(lang: Lang, told: usize) -> String {
    match lang {
        En => {
            format!("(the first {told} requests from outside are told; the report counts them all)")
        }
        Ja => format!(
            "（フリート外からのリクエストは最初の {told} 件だけを表示します。レポートはすべてを数えます）"
        ),
    }
}

pub fn withheld(lang: Lang) -> &'static str {
    lang.pick(
        "withholds its answer (a no_answer fault)",
        "レスポンスを返さない（no_answer 障害）",
    )
}

pub fn no_response_topic(lang: Lang) -> &'static str {
    lang.pick(
        "no Response Topic, so no answer",
        "レスポンストピックがないので、レスポンスしない",
    )
}

/// A phone without Correlation Data took an answer for its oldest open request.
pub fn taken_as_oldest(lang: Lang, topic: &str, payload: &str, label: &str, ms: f64) -> String {
    match lang {
        En => format!(
            "{topic} {payload}, no Correlation Data: taken as the answer to its oldest open request, {label}, in {ms:.2} ms"
        ),
        Ja => format!(
            "{topic} {payload}、コリレーションデータなし: 未完了のうち最も古いリクエスト {label} へのレスポンスとみなす（{ms:.2} ms）"
        ),
    }
}

pub fn matched(lang: Lang, topic: &str, payload: &str, data: &str, seq: u64, ms: f64) -> String {
    match lang {
        En => format!(
            "{topic} {payload}, Correlation Data {data}: its request {seq}, matched in {ms:.2} ms"
        ),
        Ja => format!(
            "{topic} {payload}、コリレーションデータ {data}: 自分のリクエスト {seq} に一致（{ms:.2} ms）"
        ),
    }
}

pub fn late(lang: Lang, topic: &str, data: &str, seq: u64, ms: f64) -> String {
    match lang {
        En => format!(
            "{topic} Correlation Data {data}: its request {seq}, answered {ms:.2} ms after sending, past its timeout: late"
        ),
        Ja => format!(
            "{topic} コリレーションデータ {data}: 自分のリクエスト {seq} へのレスポンスだが、送信から {ms:.2} ms でタイムアウトを過ぎている: 遅延（late）"
        ),
    }
}

pub fn timed_out(lang: Lang, seq: u64, after_s: f64) -> String {
    match lang {
        En => format!("no answer to request {seq} within {after_s:.1} s: timed out"),
        Ja => format!(
            "リクエスト {seq} に {after_s:.1} 秒以内のレスポンスがない: タイムアウト（timed out）"
        ),
    }
}

/// A request failed; `Failure`'s texts are already escaped by the caller.
pub fn failed(lang: Lang, seq: u64, reason: &Failure) -> String {
    match (lang, reason) {
        (En, reason) => format!("request {seq} failed: {reason}"),
        (Ja, Failure::ResponseTopicRefused { topic, reason }) => format!(
            "リクエスト {seq} は失敗（failed）: レスポンストピック {topic} のサブスクライブが拒否されている: {reason}"
        ),
        (Ja, Failure::PublishRefused(reason)) => {
            format!("リクエスト {seq} は失敗（failed）: ブローカーが PUBLISH を拒否: {reason}")
        }
        (Ja, Failure::NotSent(reason)) => {
            format!("リクエスト {seq} は失敗（failed）: 送信できない: {reason}")
        }
    }
}

/// An answer that ended none of the phone's requests.
pub fn stray(lang: Lang, topic: &str, payload: &str, data: &str, why: &Stray) -> String {
    match lang {
        En => format!(
            "{topic} {payload}, Correlation Data {data}: {}",
            stray_why(En, why)
        ),
        Ja => format!(
            "{topic} {payload}、コリレーションデータ {data}: {}",
            stray_why(Ja, why)
        ),
    }
}

pub fn stray_why(lang: Lang, why: &Stray) -> String {
    match (lang, why) {
        (En, Stray::Duplicate) => {
            "a second answer to a request already answered: a duplicate".into()
        }
        (Ja, Stray::Duplicate) => {
            "レスポンス済みのリクエストへの 2 つ目のレスポンス: 重複（duplicate）".into()
        }
        (En, Stray::Late { ms }) => {
            format!("the answer to a request that timed out, {ms:.0} ms after sending: late")
        }
        (Ja, Stray::Late { ms }) => format!(
            "タイムアウトしたリクエストへの、送信から {ms:.0} ms 後のレスポンス: 遅延（late）"
        ),
        (En, Stray::Unmatched) => "matches none of its requests: unmatched".into(),
        (Ja, Stray::Unmatched) => "どのリクエストにも一致しない: 不一致（unmatched）".into(),
        (En, Stray::NothingOpen) => "no request left open to take it for: unmatched".into(),
        (Ja, Stray::NothingOpen) => {
            "対応づけられる未完了のリクエストが残っていない: 不一致（unmatched）".into()
        }
        (En, Stray::MixedUp { taken, truth }) => format!(
            "taken for its oldest open request, {taken}, but it was the answer to {truth}: mixed up"
        ),
        (En, Stray::Outsiders) => "the answer to a request from outside the fleet, on a shared Response Topic: somebody else's".into(),
        (Ja, Stray::Outsiders) => {
            "共有のレスポンストピックに届いた、フリート外からのリクエストへのレスポンス: ほかのクライアントのもの".into()
        }
        (Ja, Stray::MixedUp { taken, truth }) => format!(
            "未完了のうち最も古いリクエスト {taken} へのレスポンスとみなしたが、実は {truth} へのレスポンス: 取り違え（mixed up）"
        ),
    }
}

/// Under an answer taken for its oldest open request: whose answer it really was.
pub fn mixed_up_note(lang: Lang, truth: &str) -> String {
    match lang {
        En => format!("but it was the answer to {truth}: mixed up"),
        Ja => format!("しかし実は {truth} へのレスポンス: 取り違え（mixed up）"),
    }
}

/// A device, back, reads the ack of a Will of an earlier connection.
pub fn will_learned(lang: Lang, topic: &str, data: &str, incarnation: u32, by: &str) -> String {
    match lang {
        En => format!(
            "{topic}, Correlation Data {data}: its Will of connection {incarnation} was consumed, by {by}"
        ),
        Ja => format!(
            "{topic}、コリレーションデータ {data}: 接続 {incarnation} のウィルメッセージは {by} が受け取っていた"
        ),
    }
}

/// A consumer receives a Will.
pub fn will_received(
    lang: Lang,
    topic: &str,
    payload: &str,
    response_topic: &str,
    data: &str,
) -> String {
    match lang {
        En => format!(
            "{topic} {payload}, Response Topic {response_topic}, Correlation Data {data}: a Will, the broker's notice that a device went away"
        ),
        Ja => format!(
            "{topic} {payload}、レスポンストピック {response_topic}、コリレーションデータ {data}: ウィルメッセージ（デバイスがいなくなったというブローカーからの知らせ）"
        ),
    }
}

/// The consumer's ack of a Will.
pub fn will_acked(lang: Lang, topic: &str, payload: &str, data: &str) -> String {
    match lang {
        En => format!(
            "{topic} {payload}, Correlation Data {data} copied: the ack, to the Will's Response Topic"
        ),
        Ja => format!(
            "{topic} {payload}、コリレーションデータ {data} をそのまま返す: ウィルメッセージのレスポンストピックへの応答"
        ),
    }
}
