//! Tests of `source_addresses:`: what a good list becomes, and each bad entry located.

use std::net::IpAddr;

use super::test_support::{fleet, problems};

/// A fleet whose `source_addresses` are `list`, written from line 5 on (block style, one
/// entry a line, so entry `i` is on line `5 + i`).
fn with_sources(list: &[&str]) -> String {
    let mut yaml = String::from(
        "name: t\ndevices:\n  - { kind: light, id: \"l-{n}\", count: 3 }\nsource_addresses:\n",
    );
    for entry in list {
        yaml.push_str(&format!("  - \"{entry}\"\n"));
    }
    yaml
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn addresses_and_ranges_expand_in_the_order_written() {
    let f = fleet(&with_sources(&[
        "127.0.0.9",
        "127.0.0.2-127.0.0.4",
        "127.0.1.1",
    ]));
    assert_eq!(
        f.source_addresses,
        ips(&[
            "127.0.0.9",
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.1.1"
        ])
    );
    // Flow style, unquoted, as the docs show it; and IPv6.
    let f = fleet(
        "name: t\ndevices: [{kind: light, id: l}]\nsource_addresses: [127.0.0.2, 127.0.0.3]\n",
    );
    assert_eq!(f.source_addresses, ips(&["127.0.0.2", "127.0.0.3"]));
    let f = fleet(&with_sources(&["::1", "fd00::1-fd00::2"]));
    assert_eq!(f.source_addresses, ips(&["::1", "fd00::1", "fd00::2"]));
}

#[test]
fn without_the_field_fleetsim_chooses() {
    let f = fleet("name: t\ndevices: [{kind: light, id: l}]\n");
    assert!(f.source_addresses.is_empty());
}

#[test]
fn each_bad_entry_is_named_with_its_line() {
    let p = problems(&with_sources(&[
        "127.0.0.2",           // 5: fine
        "127.0.0.300",         // 6
        "127.0.0.9-127.0.0.5", // 7
        "127.0.0.1-::1",       // 8
        "10.0.0.0-10.1.0.0",   // 9: 65,537 addresses
        "127.0.0.1-127.0.0.3", // 10: 127.0.0.2 again
        "::1",                 // 11: the list is IPv4
        "0.0.0.0",             // 12
        "127.0.0.x-127.0.0.9", // 13
        "127.0.0.4-127.0.0.4", // 14: fine, a range of one
        "127.0.0.4",           // 15: the same address again
    ]));
    let want = [
        "6:5: source_addresses[1]: `127.0.0.300` is not an IP address",
        "7:5: source_addresses[2]: range `127.0.0.9-127.0.0.5` ends before it starts",
        "8:5: source_addresses[3]: range `127.0.0.1-::1` mixes IPv4 and IPv6",
        "9:5: source_addresses[4]: range `10.0.0.0-10.1.0.0` holds 65537 addresses (at most 65536)",
        "10:5: source_addresses[5]: 127.0.0.2 is listed twice (also in source_addresses[0])",
        "11:5: source_addresses[6]: `::1` is IPv6 but source_addresses[0] is IPv4",
        "12:5: source_addresses[7]: 0.0.0.0 cannot be a source address (it is the unspecified address",
        "13:5: source_addresses[8]: `127.0.0.x` in range `127.0.0.x-127.0.0.9` is not an IP address",
        "15:5: source_addresses[10]: 127.0.0.4 is listed twice (also in source_addresses[9])",
    ];
    assert_eq!(p.len(), want.len(), "{p:#?}");
    for (got, want) in p.iter().zip(want) {
        assert!(got.starts_with(want), "want `{want}...`, got `{got}`");
    }
}

#[test]
fn an_empty_list_is_refused_where_it_is_written() {
    let p = problems("name: t\ndevices: [{kind: light, id: l}]\nsource_addresses: []\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("3:19: source_addresses: source_addresses must list at least one"),
        "{p:#?}"
    );
}

#[test]
fn ranges_may_not_add_up_to_more_than_the_limit() {
    // Two ranges of 40,000 each: each fine alone, too many together.
    let p = problems(&with_sources(&[
        "10.0.0.0-10.0.156.63",
        "10.1.0.0-10.1.156.63",
    ]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("6:5: source_addresses[1]: source_addresses hold more than 65536"),
        "{p:#?}"
    );
}

#[test]
fn a_single_address_must_still_be_in_a_list() {
    let p = parse_error("name: t\ndevices: [{kind: light, id: l}]\nsource_addresses: 127.0.0.2\n");
    assert!(p.contains("line 3"), "{p}");
}

fn parse_error(yaml: &str) -> String {
    match super::parse(yaml, "t.yaml") {
        Err(e @ super::FleetError::Yaml { .. }) => e.to_string(),
        other => panic!("expected a YAML error, got {other:?}"),
    }
}
