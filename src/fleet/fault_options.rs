//! The options only some fault kinds take: `delay` (a `slow` answer's wait) and `size` (the
//! payload of `huge_payload` and `binary_payload`), into the fault's [`FaultParams`].

use std::time::Duration;

use serde_saphyr::Spanned;

use super::faults::ALL_KINDS;
use super::model::{FaultKind, FaultParams};
use super::raw::RawFault;
use super::values::Problems;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Large enough to test a backend's limits, small enough that a typo cannot exhaust memory.
const MAX_SIZE: u64 = 16 * MIB;
const BINARY_DEFAULT_SIZE: usize = 64;

/// The names of the kinds that pass `keep`, as "a, b and c" (or "a, b or c").
pub(super) fn kinds_of(keep: impl Fn(FaultKind) -> bool, last: &str) -> String {
    let names: Vec<&str> = ALL_KINDS
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

/// `delay` and `size`, each only for the kinds that use it; the kind's defaults otherwise.
/// With a bad kind, values are still checked, but not whether the kind takes them.
pub(super) fn check_params(
    problems: &mut Problems,
    f: &RawFault,
    index: usize,
    kind: Option<FaultKind>,
) -> Option<FaultParams> {
    let mut params = FaultParams::default();
    if kind == Some(FaultKind::BinaryPayload) {
        params.size = BINARY_DEFAULT_SIZE;
    }
    let mut ok = true;
    let takes_delay = |k: FaultKind| k == FaultKind::Slow;
    let takes_size = |k: FaultKind| matches!(k, FaultKind::HugePayload | FaultKind::BinaryPayload);
    if let Some(raw) = &f.delay {
        match option_for(kind, takes_delay, "delay").and_then(|()| delay_range(&raw.value)) {
            Ok(delay) => params.delay = delay,
            Err(message) => {
                report(problems, raw, index, "delay", message);
                ok = false;
            }
        }
    }
    if let Some(raw) = &f.size {
        match option_for(kind, takes_size, "size").and_then(|()| size(&raw.value)) {
            Ok(size) => params.size = size,
            Err(message) => {
                report(problems, raw, index, "size", message);
                ok = false;
            }
        }
    }
    ok.then_some(params)
}

fn report(
    problems: &mut Problems,
    raw: &Spanned<String>,
    index: usize,
    name: &str,
    message: String,
) {
    problems.at(raw.referenced, format!("faults[{index}].{name}"), message);
}

/// Err naming the kinds that take option `name`, when `kind` is known and is not one of them.
fn option_for(
    kind: Option<FaultKind>,
    takes: impl Fn(FaultKind) -> bool + Copy,
    name: &str,
) -> Result<(), String> {
    match kind {
        Some(k) if !takes(k) => Err(format!(
            "`{name}` is only for {}, not {}",
            kinds_of(takes, "and"),
            k.as_str()
        )),
        _ => Ok(()),
    }
}

/// `MIN..MAX` (`200ms..1s`), or one duration `D` meaning `D..D`.
fn delay_range(text: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = text.split_once("..").unwrap_or((text, text));
    let parse = |part: &str| {
        humantime::parse_duration(part.trim()).map_err(|e| {
            format!(
                "invalid duration `{}` in delay `{text}`: {e} (write MIN..MAX like 200ms..1s, or one duration)",
                part.trim()
            )
        })
    };
    let (min, max) = (parse(min)?, parse(max)?);
    if min > max {
        return Err(format!(
            "delay must be MIN..MAX with MIN <= MAX, got `{text}`"
        ));
    }
    Ok((min, max))
}

/// Bytes: `64`, `512B`, `300KiB`, `1MiB`; more than 0, at most [`MAX_SIZE`].
fn size(text: &str) -> Result<usize, String> {
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
            "size must be a number of bytes, bare or with a unit B, KiB or MiB (like 64, 512B, 300KiB, 1MiB), got `{text}`"
        ));
    }
    // Only ASCII digits are left, so parsing fails on overflow alone: too big either way.
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .unwrap_or(u64::MAX);
    if bytes == 0 {
        return Err(format!("size must be greater than 0, got `{text}`"));
    }
    if bytes > MAX_SIZE {
        return Err(format!(
            "size must be at most 16MiB ({MAX_SIZE} bytes), got `{text}`"
        ));
    }
    usize::try_from(bytes).map_err(|_| format!("size `{text}` is too big for this platform"))
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
        assert_eq!(kinds_of(|k| k == FaultKind::Slow, "or"), "slow");
    }
}
