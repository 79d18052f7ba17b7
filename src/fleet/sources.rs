//! `source_addresses:`, the local addresses devices connect from: single IPs and inclusive
//! ranges (`127.0.0.2-127.0.0.40`), expanded in the order written.
//!
//! Only the text is checked here (addresses, ranges, one family, no address twice); whether an
//! address belongs to this machine, and matches the broker's family, is known only at run time,
//! where `transport::sources` checks it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_saphyr::Spanned;

use super::values::Problems;

/// The most addresses a range, or the whole list, may hold. Each source address holds tens of
/// thousands of connections, so this is far beyond any fleet, and it keeps the expanded list
/// small (a careless `10.0.0.0-10.255.255.255` would be 16 million entries).
pub(super) const MAX_SOURCE_ADDRESSES: u128 = 65_536;

const FIELD: &str = "source_addresses";

/// The expanded list; empty when the field is absent (fleetsim then chooses) or has problems.
pub(super) fn check_sources(
    problems: &mut Problems,
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Vec<IpAddr> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    if raw.value.is_empty() {
        problems.at(
            raw.referenced,
            FIELD,
            "source_addresses must list at least one address or range; leave it out to let fleetsim choose",
        );
        return Vec::new();
    }
    let mut addresses = Vec::new();
    // Which entry first gave each address, to name it when another gives it again.
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    // The family of the first good entry, and which entry that was.
    let mut family: Option<(bool, usize)> = None;
    let mut total: u128 = 0;
    for (i, item) in raw.value.iter().enumerate() {
        let field = format!("{FIELD}[{i}]");
        let text = item.value.trim();
        let mut complain = |message: String| problems.at(item.referenced, field.clone(), message);
        let (first, last) = match parse_entry(text) {
            Ok(range) => range,
            Err(message) => {
                complain(message);
                continue;
            }
        };
        match family {
            None => family = Some((first.is_ipv4(), i)),
            Some((v4, j)) if v4 != first.is_ipv4() => {
                complain(format!(
                    "`{text}` is {} but {FIELD}[{j}] is {}: devices reach the broker over one family, so every source address must be of it",
                    family_name(first),
                    if v4 { "IPv4" } else { "IPv6" },
                ));
                continue;
            }
            Some(_) => {}
        }
        let count = width(first, last);
        if total + count > MAX_SOURCE_ADDRESSES {
            complain(format!(
                "source_addresses hold more than {MAX_SOURCE_ADDRESSES} addresses in all"
            ));
            continue;
        }
        total += count;
        let mut duplicate = None;
        let mut unusable = None;
        for ip in expand(first, last) {
            if let Some(why) = not_a_source(ip) {
                unusable.get_or_insert((ip, why));
                continue;
            }
            match seen.get(&ip) {
                Some(&j) => {
                    duplicate.get_or_insert((ip, j));
                }
                None => {
                    seen.insert(ip, i);
                    addresses.push(ip);
                }
            }
        }
        // One problem per entry: a range overlapping another would otherwise repeat it for
        // every address.
        if let Some((ip, why)) = unusable {
            complain(format!("{ip} cannot be a source address ({why})"));
        }
        if let Some((ip, j)) = duplicate {
            let where_ = if j == i {
                "earlier in this entry".to_string()
            } else {
                format!("also in {FIELD}[{j}]")
            };
            complain(format!("{ip} is listed twice ({where_})"));
        }
    }
    addresses
}

/// `A` or `A-B` as its first and last address; the message names what is wrong.
fn parse_entry(text: &str) -> Result<(IpAddr, IpAddr), String> {
    // No IP address, v4 or v6, contains `-`, so it can only separate a range's ends.
    let Some((from, to)) = text.split_once('-') else {
        let ip = text.parse::<IpAddr>().map_err(|_| {
            format!("`{text}` is not an IP address, nor a range like 127.0.0.2-127.0.0.40")
        })?;
        return Ok((ip, ip));
    };
    let end = |part: &str| {
        let part = part.trim();
        part.parse::<IpAddr>()
            .map_err(|_| format!("`{part}` in range `{text}` is not an IP address"))
    };
    let (first, last) = (end(from)?, end(to)?);
    if first.is_ipv4() != last.is_ipv4() {
        return Err(format!(
            "range `{text}` mixes IPv4 and IPv6: both ends must be of one family"
        ));
    }
    if as_number(last) < as_number(first) {
        return Err(format!(
            "range `{text}` ends before it starts: write the lower address first"
        ));
    }
    let count = width(first, last);
    if count > MAX_SOURCE_ADDRESSES {
        return Err(format!(
            "range `{text}` holds {count} addresses (at most {MAX_SOURCE_ADDRESSES})"
        ));
    }
    Ok((first, last))
}

fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Why a connection can never come from `ip`, if so.
fn not_a_source(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("it is the unspecified address: leave source_addresses out to let fleetsim choose")
    } else if ip.is_multicast() {
        Some("it is a multicast address")
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("it is the broadcast address")
    } else {
        None
    }
}

/// An address as a number, so ranges of either family can be compared and walked alike.
fn as_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Addresses from `first` to `last` inclusive (same family, `first <= last`).
fn width(first: IpAddr, last: IpAddr) -> u128 {
    as_number(last) - as_number(first) + 1
}

/// Every address from `first` to `last`; called only on ranges `parse_entry` accepted.
fn expand(first: IpAddr, last: IpAddr) -> impl Iterator<Item = IpAddr> {
    let v4 = first.is_ipv4();
    (as_number(first)..=as_number(last)).map(move |n| match (v4, u32::try_from(n)) {
        (true, Ok(n)) => IpAddr::V4(Ipv4Addr::from(n)),
        // A v4 range's numbers fit in u32 by construction; v6 takes all 128 bits.
        _ => IpAddr::V6(Ipv6Addr::from(n)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_single_addresses_or_ranges_of_one_family() {
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        assert_eq!(
            parse_entry("127.0.0.2"),
            Ok((v4("127.0.0.2"), v4("127.0.0.2")))
        );
        assert_eq!(
            parse_entry("127.0.0.2 - 127.0.0.40"),
            Ok((v4("127.0.0.2"), v4("127.0.0.40")))
        );
        let full = parse_entry("::1-::1:0").unwrap();
        assert_eq!(width(full.0, full.1), 65_536);
        assert!(parse_entry("::1-::1:1").is_err());
        assert!(parse_entry("127.0.0.2-").is_err());
        assert!(parse_entry("localhost").is_err());
    }

    #[test]
    fn ranges_expand_in_order_across_octets() {
        let (a, b) = parse_entry("10.0.0.254-10.0.1.1").unwrap();
        let got: Vec<String> = expand(a, b).map(|ip| ip.to_string()).collect();
        assert_eq!(got, ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]);
    }
}
