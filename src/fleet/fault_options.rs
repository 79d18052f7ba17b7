//! The options only some fault kinds take, into the fault's [`FaultParams`]: `delay` (a `slow`
//! answer's wait), `size` (the payload of `huge_payload` and `binary_payload`, the packet of
//! `oversize_packet`), the options of network faults (`direction`, `lasts`, `latency`,
//! `jitter`, `rate`, `slice`, `slice_delay`, `limit`), and `lasts` of `withhold_acks`, which
//! requires it.

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::model::{Direction, FaultClass, FaultKind, FaultParams};
use super::raw::RawFault;
use super::values::{Problems, at_most_max, parse_duration};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Large enough to test a backend's limits, small enough that a typo cannot exhaust memory.
/// Also the bound of the other byte counts (`rate`, `slice`, `limit`).
const MAX_SIZE: u64 = 16 * MIB;
const BINARY_DEFAULT_SIZE: usize = 64;
/// Above the usual Maximum Packet Size of a broker, well within [`MAX_SIZE`].
const OVERSIZE_DEFAULT_SIZE: usize = 2 * 1024 * 1024;

/// The names of the kinds that pass `keep`, as "a, b and c" (or "a, b or c").
pub(super) fn kinds_of(keep: impl Fn(FaultKind) -> bool, last: &str) -> String {
    let names: Vec<&str> = FaultKind::ALL
        .into_iter()
        .filter(|&k| keep(k))
        .map(FaultKind::as_str)
        .collect();
    match names.split_last() {
        Some((tail, [])) => tail.to_string(),
        Some((tail, head)) => format!("{} {last} {tail}", head.join(", ")),
        None => String::new(),
    }
}

fn takes_delay(k: FaultKind) -> bool {
    k == FaultKind::Slow
}

fn takes_size(k: FaultKind) -> bool {
    matches!(
        k,
        FaultKind::HugePayload | FaultKind::BinaryPayload | FaultKind::OversizePacket
    )
}

/// A reset closes the whole connection, so it has no way to go.
fn takes_direction(k: FaultKind) -> bool {
    k.class() == FaultClass::Network && k != FaultKind::Reset
}

/// Not `reset` (instant) nor `limit_data` (it ends by closing the connection); required by
/// `withhold_acks` (see [`check_params`]).
fn takes_lasts(k: FaultKind) -> bool {
    matches!(
        k,
        FaultKind::Latency
            | FaultKind::Bandwidth
            | FaultKind::Blackhole
            | FaultKind::Slicer
            | FaultKind::WithholdAcks
    )
}

fn takes_latency(k: FaultKind) -> bool {
    k == FaultKind::Latency
}

fn takes_rate(k: FaultKind) -> bool {
    k == FaultKind::Bandwidth
}

fn takes_slice(k: FaultKind) -> bool {
    k == FaultKind::Slicer
}

fn takes_limit(k: FaultKind) -> bool {
    k == FaultKind::LimitData
}

/// Every option, each only for the kinds that use it; the kind's defaults otherwise.
/// With a bad kind, values are still checked, but not whether the kind takes them.
/// A missing required option is reported at `fault_loc`, the entry.
pub(super) fn check_params(
    problems: &mut Problems,
    f: &RawFault,
    fault_loc: Location,
    index: usize,
    kind: Option<FaultKind>,
) -> Option<FaultParams> {
    let mut params = FaultParams::default();
    match kind {
        Some(FaultKind::BinaryPayload) => params.size = BINARY_DEFAULT_SIZE,
        Some(FaultKind::OversizePacket) => params.size = OVERSIZE_DEFAULT_SIZE,
        _ => {}
    }
    let mut o = Options {
        problems,
        index,
        kind,
        ok: true,
    };
    if let Some(delay) = o.take(&f.delay, "delay", takes_delay, delay_range) {
        params.delay = delay;
    }
    if let Some(size) = o.take(&f.size, "size", takes_size, |t| bytes_usize("size", t)) {
        params.size = size;
    }
    if let Some(direction) = o.take(&f.direction, "direction", takes_direction, direction) {
        params.direction = direction;
    }
    params.lasts = o.take(&f.lasts, "lasts", takes_lasts, |t| duration_of(t, true));
    // Withheld acks only come back with a reconnect, so there must be one.
    if kind == Some(FaultKind::WithholdAcks) && f.lasts.is_none() {
        o.problems.at(
            fault_loc,
            format!("faults[{index}].lasts"),
            "withhold_acks needs `lasts`: how long acks are held back before the device reconnects",
        );
        o.ok = false;
    }
    let latency = o.take(&f.latency, "latency", takes_latency, |t| {
        duration_of(t, false)
    });
    if let Some(latency) = latency {
        params.latency = latency;
    }
    let jitter = o.take(&f.jitter, "jitter", takes_latency, |t| {
        duration_of(t, false)
    });
    // Only against a good latency (given or the default): a bad one is already a problem.
    if let (Some(jitter), Some(raw)) = (jitter, &f.jitter)
        && (f.latency.is_none() || latency.is_some())
    {
        if jitter <= params.latency {
            params.jitter = jitter;
        } else {
            let default = if f.latency.is_none() {
                ", the default"
            } else {
                ""
            };
            let message = format!(
                "jitter must be at most latency ({}{default}), got `{}`",
                humantime::format_duration(params.latency),
                raw.value
            );
            o.report(raw, "jitter", message);
        }
    }
    if let Some(rate) = o.take(&f.rate, "rate", takes_rate, |t| bytes("rate", t)) {
        params.rate = rate;
    }
    if let Some(slice) = o.take(&f.slice, "slice", takes_slice, |t| bytes_usize("slice", t)) {
        params.slice = slice;
    }
    let slice_delay = o.take(&f.slice_delay, "slice_delay", takes_slice, |t| {
        duration_of(t, false)
    });
    if let Some(slice_delay) = slice_delay {
        params.slice_delay = slice_delay;
    }
    if let Some(limit) = o.take(&f.limit, "limit", takes_limit, |t| bytes("limit", t)) {
        params.limit = limit;
    }
    o.ok.then_some(params)
}

/// Reports the problems of one fault's options, remembering whether there was any.
struct Options<'a> {
    problems: &'a mut Problems,
    index: usize,
    kind: Option<FaultKind>,
    ok: bool,
}

impl Options<'_> {
    /// Option `name`'s value when given, fits the kind and parses; None otherwise (reported
    /// unless absent).
    fn take<T>(
        &mut self,
        raw: &Option<Spanned<String>>,
        name: &str,
        takes: fn(FaultKind) -> bool,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = raw.as_ref()?;
        match option_for(self.kind, takes, name).and_then(|()| parse(&raw.value)) {
            Ok(value) => Some(value),
            Err(message) => {
                self.report(raw, name, message);
                None
            }
        }
    }

    fn report(&mut self, raw: &Spanned<String>, name: &str, message: String) {
        self.problems.at(
            raw.referenced,
            format!("faults[{}].{name}", self.index),
            message,
        );
        self.ok = false;
    }
}

/// Err naming the kinds that take option `name`, when `kind` is known and is not one of them.
fn option_for(
    kind: Option<FaultKind>,
    takes: fn(FaultKind) -> bool,
    name: &str,
) -> Result<(), String> {
    match kind {
        Some(k) if !takes(k) => {
            let why = match (name, k) {
                ("direction", FaultKind::Reset) => ": a reset closes the whole connection",
                ("lasts", FaultKind::Reset) => ": a reset is instant",
                ("lasts", FaultKind::LimitData) => {
                    ": limit_data ends by closing the connection once `limit` bytes have passed"
                }
                ("direction", k) if k.class() == FaultClass::Protocol => {
                    ": a protocol fault acts on the device's own packets"
                }
                _ => "",
            };
            Err(format!(
                "`{name}` is only for {}, not {}{why}",
                kinds_of(takes, "and"),
                k.as_str()
            ))
        }
        _ => Ok(()),
    }
}

/// `MIN..MAX` (`200ms..1s`), or one duration `D` meaning `D..D`.
fn delay_range(text: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = text.split_once("..").unwrap_or((text, text));
    let parse = |part: &str| {
        let part = part.trim();
        let parsed = humantime::parse_duration(part).map_err(|e| {
            format!(
                "invalid duration `{part}` in delay `{text}`: {e} (write MIN..MAX like 200ms..1s, or one duration)"
            )
        })?;
        at_most_max(parsed, part).map_err(|e| format!("delay {e}"))
    };
    let (min, max) = (parse(min)?, parse(max)?);
    if min > max {
        return Err(format!(
            "delay must be MIN..MAX with MIN <= MAX, got `{text}`"
        ));
    }
    Ok((min, max))
}

/// A duration, worded like the other durations of the file; zero only when not `positive`.
fn duration_of(text: &str, positive: bool) -> Result<Duration, String> {
    let parsed = parse_duration(text)?;
    if positive && parsed.is_zero() {
        return Err(format!("must be greater than 0, got `{text}`"));
    }
    Ok(parsed)
}

/// `upstream` (device to broker), `downstream` (broker to device) or `both`.
fn direction(text: &str) -> Result<Direction, String> {
    match text.trim() {
        "upstream" => Ok(Direction::Upstream),
        "downstream" => Ok(Direction::Downstream),
        "both" => Ok(Direction::Both),
        _ => Err(format!(
            "direction must be upstream (device to broker), downstream (broker to device) or both, got `{text}`"
        )),
    }
}

/// The payload `size`.
#[cfg(test)]
fn size(text: &str) -> Result<usize, String> {
    bytes_usize("size", text)
}

/// [`bytes`] as a `usize`, for sizes of buffers.
fn bytes_usize(name: &str, text: &str) -> Result<usize, String> {
    let n = bytes(name, text)?;
    usize::try_from(n).map_err(|_| format!("{name} `{text}` is too big for this platform"))
}

/// Option `name` in bytes: `64`, `512B`, `300KiB`, `1MiB`; more than 0, at most [`MAX_SIZE`].
fn bytes(name: &str, text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let unit = match unit.trim_start() {
        "" | "B" => 1,
        "KiB" => KIB,
        "MiB" => MIB,
        _ => 0,
    };
    if digits.is_empty() || unit == 0 {
        return Err(format!(
            "{name} must be a number of bytes, bare or with a unit B, KiB or MiB (like 64, 512B, 300KiB, 1MiB), got `{text}`"
        ));
    }
    // Only ASCII digits are left, so parsing fails on overflow alone: too big either way.
    let n = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .unwrap_or(u64::MAX);
    if n == 0 {
        return Err(format!("{name} must be greater than 0, got `{text}`"));
    }
    if n > MAX_SIZE {
        return Err(format!(
            "{name} must be at most 16MiB ({MAX_SIZE} bytes), got `{text}`"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_bytes_kib_and_mib() {
        assert_eq!(size("64"), Ok(64));
        assert_eq!(size("512B"), Ok(512));
        assert_eq!(size("300KiB"), Ok(300 * 1024));
        assert_eq!(size(" 1 MiB "), Ok(1024 * 1024));
        assert_eq!(size("16MiB"), Ok(16 * 1024 * 1024));
        for bad in ["", "KiB", "-5", "3kb", "1.5MiB", "1MB", "0x10"] {
            let e = size(bad).unwrap_err();
            assert!(e.contains("B, KiB or MiB"), "{bad}: {e}");
        }
        assert!(size("0KiB").unwrap_err().contains("greater than 0"));
        for big in ["16777217", "17MiB", "99999999999999999999999MiB"] {
            assert!(size(big).unwrap_err().contains("at most 16MiB"), "{big}");
        }
    }

    #[test]
    fn delays_are_a_range_or_one_duration() {
        let ms = Duration::from_millis;
        assert_eq!(delay_range("200ms..1s"), Ok((ms(200), ms(1000))));
        assert_eq!(delay_range("200ms .. 1s"), Ok((ms(200), ms(1000))));
        assert_eq!(delay_range("300ms"), Ok((ms(300), ms(300))));
        assert_eq!(delay_range("0s..0s"), Ok((ms(0), ms(0))));
        assert!(delay_range("2s..1s").unwrap_err().contains("MIN <= MAX"));
        for bad in ["", "..1s", "1s..", "fast", "1s...2s", "1s..2s..3s"] {
            let e = delay_range(bad).unwrap_err();
            assert!(e.contains("invalid duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn kind_lists_read_as_prose() {
        assert_eq!(
            kinds_of(
                |k| matches!(k, FaultKind::HugePayload | FaultKind::BinaryPayload),
                "and"
            ),
            "huge_payload and binary_payload"
        );
        assert_eq!(
            kinds_of(takes_size, "and"),
            "huge_payload, binary_payload and oversize_packet"
        );
        assert_eq!(
            kinds_of(|k| k.class() == FaultClass::Protocol, "or"),
            "withhold_acks, malformed_packet or oversize_packet"
        );
        assert_eq!(kinds_of(|k| k == FaultKind::Slow, "or"), "slow");
    }
}
