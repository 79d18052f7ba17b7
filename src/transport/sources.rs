//! Source addresses: which local address each device's connection is bound to.
//!
//! A TCP connection to one broker address needs a local port of its own from the kernel's
//! ephemeral range (`net.ipv4.ip_local_port_range`, 28,232 ports by default), *per source
//! address*. Past that, `connect` fails with EADDRNOTAVAIL (binding to a source address, with
//! EADDRINUSE). On loopback every 127.x.y.z is a
//! local address, so a fleet larger than one range is spread over 127.0.0.1, 127.0.0.2, ...
//! without any setup; elsewhere the fleet file lists addresses the machine has
//! (`source_addresses:`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Where Linux keeps the ephemeral port range (per network namespace).
const PORT_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The size of Linux's default range, 32768-60999, used when the file cannot be read.
pub const DEFAULT_PORT_RANGE: u32 = 28_232;

/// Share of the port range a source address is planned to fill, in percent. Not more than
/// half: past that, the kernel's search for a free port at each connect costs more than the
/// connection (at 19,800 connections to one Mosquitto from one address, 6.2 s of system CPU
/// and 4,100 connects/s; spread over two addresses, 1.4 s and 17,000/s). Ports in TIME_WAIT
/// after reconnects and other programs on the machine take some too.
pub const FILL_PERCENT: u32 = 50;

/// A source address the run cannot connect from, found before any device starts.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "source_addresses: {source_ip} is {} but the broker {broker} is not: a connection cannot change family",
        if .source_ip.is_ipv4() { "IPv4" } else { "IPv6" }
    )]
    Family {
        source_ip: IpAddr,
        broker: SocketAddr,
    },
    #[error(
        "source_addresses: cannot use {source_ip} (is it an address of this machine?): {error}"
    )]
    Bind { source_ip: IpAddr, error: io::Error },
}

/// How many connections to one broker address a source address is planned to hold, with a
/// range of `ports` ephemeral ports.
pub fn per_source(ports: u32) -> usize {
    // u32 -> usize cannot lose anything on the 32- and 64-bit targets fleetsim builds for.
    (u64::from(ports) * u64::from(FILL_PERCENT) / 100).max(1) as usize
}

/// The source addresses for a run: the fleet's own list when it has one; otherwise, for a
/// broker on IPv4 loopback and more `connections` than one source address holds with `ports`
/// ephemeral ports, 127.0.0.1, 127.0.0.2, ... as many as needed; otherwise none (the kernel
/// chooses, as for any connection).
///
/// Only IPv4 loopback is spread on its own: it is the one place where other local addresses
/// exist on every Linux machine and reach the broker (`::1` is alone in its range, and a
/// machine's other addresses may not route to a remote broker).
pub fn plan(
    explicit: &[IpAddr],
    broker: SocketAddr,
    connections: usize,
    ports: u32,
) -> Vec<IpAddr> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    let IpAddr::V4(ip) = broker.ip() else {
        return Vec::new();
    };
    let each = per_source(ports);
    if !ip.is_loopback() || connections <= each {
        return Vec::new();
    }
    let needed = connections.div_ceil(each);
    let first = u32::from(Ipv4Addr::new(127, 0, 0, 1));
    let last = u32::from(Ipv4Addr::new(127, 255, 255, 254));
    (first..=last)
        .take(needed)
        .map(|n| IpAddr::V4(Ipv4Addr::from(n)))
        .collect()
}

/// The size of the ephemeral port range, or [`DEFAULT_PORT_RANGE`] when it cannot be read
/// (not Linux).
pub fn port_range() -> u32 {
    std::fs::read_to_string(PORT_RANGE_FILE)
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(DEFAULT_PORT_RANGE)
}

/// `"32768\t60999\n"` -> 28232.
fn parse_port_range(text: &str) -> Option<u32> {
    let mut parts = text.split_whitespace().map(str::parse::<u32>);
    let (low, high) = (parts.next()?.ok()?, parts.next()?.ok()?);
    (high >= low).then(|| high - low + 1)
}

/// The sources for a run of `devices` devices (plus the supervisor's connection) to `broker`,
/// checked: every address the devices will use is of the broker's family and can be bound
/// here, so a wrong list stops the run before it starts instead of failing each device's
/// connect. Logs one line when devices are spread.
pub fn choose(
    explicit: &[IpAddr],
    broker: SocketAddr,
    devices: usize,
) -> Result<Arc<[IpAddr]>, SourceError> {
    let ports = port_range();
    let connections = devices.saturating_add(1);
    let sources = plan(explicit, broker, connections, ports);
    // Device `i` uses `sources[i % len]`: with more addresses than devices, the rest go unused.
    let checked = sources
        .iter()
        .take(devices)
        .try_for_each(|&ip| check(ip, broker));
    if let Err(e) = checked {
        if !explicit.is_empty() {
            return Err(e);
        }
        // Only Linux makes all of 127.0.0.0/8 local; elsewhere run as before, and let the
        // kernel say when it runs out of ports.
        tracing::warn!("not spreading devices over loopback addresses: {e}");
        return Ok(Arc::from([]));
    }
    if !explicit.is_empty() {
        tracing::info!(
            sources = sources.len(),
            "devices connect from the fleet's {} source address(es), round-robin",
            sources.len()
        );
    } else if let (Some(first), Some(last)) = (sources.first(), sources.last()) {
        tracing::info!(
            sources = sources.len(),
            "spreading {devices} devices over source addresses {first}..{last}: one source address holds about {} connections to {broker} ({ports} ephemeral ports, {FILL_PERCENT}% of them)",
            per_source(ports)
        );
    }
    Ok(sources.into())
}

/// Whether a connection to `broker` can come from `ip`: same family, and bindable here.
fn check(ip: IpAddr, broker: SocketAddr) -> Result<(), SourceError> {
    if ip.is_ipv4() != broker.is_ipv4() {
        return Err(SourceError::Family {
            source_ip: ip,
            broker,
        });
    }
    // Bound and dropped at once, never connected: the port goes straight back.
    std::net::TcpListener::bind((ip, 0))
        .map(drop)
        .map_err(|error| SourceError::Bind {
            source_ip: ip,
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    const LOOPBACK: &str = "127.0.0.1:1883";

    #[test]
    fn below_the_limit_nothing_is_spread() {
        // 1000 ports hold 500 connections at 50 %.
        assert_eq!(per_source(1000), 500);
        assert!(plan(&[], addr(LOOPBACK), 500, 1000).is_empty());
        assert!(plan(&[], addr(LOOPBACK), 14_000, DEFAULT_PORT_RANGE).is_empty());
    }

    #[test]
    fn above_the_limit_enough_loopback_addresses_are_used() {
        assert_eq!(
            plan(&[], addr(LOOPBACK), 501, 1000),
            ips(&["127.0.0.1", "127.0.0.2"])
        );
        // 19,801 connections (the bench's largest run) with the default range: two addresses.
        assert_eq!(
            plan(&[], addr(LOOPBACK), 19_801, DEFAULT_PORT_RANGE),
            ips(&["127.0.0.1", "127.0.0.2"])
        );
        // 1201 connections (1200 devices and the supervisor) in 500 ports: 250 each.
        assert_eq!(
            plan(&[], addr("127.0.0.1:40000"), 1201, 500),
            ips(&[
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "127.0.0.5"
            ])
        );
        // The default range at a million devices: 71 addresses, counting on past .255.
        let many = plan(&[], addr(LOOPBACK), 1_000_001, DEFAULT_PORT_RANGE);
        assert_eq!(many.len(), 71);
        assert_eq!(many[70], "127.0.0.71".parse::<IpAddr>().unwrap());
        let wide = plan(&[], addr(LOOPBACK), 300 * 5, 10);
        assert_eq!(wide.len(), 300);
        assert_eq!(wide[299], "127.0.1.44".parse::<IpAddr>().unwrap());
        // Any 127.x broker address is loopback.
        assert_eq!(plan(&[], addr("127.0.0.5:1883"), 501, 1000).len(), 2);
    }

    #[test]
    fn the_fleets_own_list_wins() {
        let own = ips(&["127.0.0.7", "127.0.0.8"]);
        assert_eq!(plan(&own, addr(LOOPBACK), 10, 1000), own);
        assert_eq!(plan(&own, addr(LOOPBACK), 100_000, 1000), own);
        assert_eq!(plan(&own, addr("[::1]:1883"), 10, 1000), own);
    }

    #[test]
    fn brokers_off_ipv4_loopback_are_never_spread() {
        for broker in ["192.0.2.10:1883", "[::1]:1883", "[2001:db8::1]:1883"] {
            assert!(
                plan(&[], addr(broker), 1_000_000, 1000).is_empty(),
                "{broker}"
            );
        }
    }

    #[test]
    fn the_port_range_file_is_read_as_its_size() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(DEFAULT_PORT_RANGE));
        assert_eq!(parse_port_range("40000 40499"), Some(500));
        assert_eq!(parse_port_range("5 5"), Some(1));
        for bad in ["", "40000", "9 5", "a b"] {
            assert_eq!(parse_port_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sources_of_the_wrong_family_or_not_here_are_refused_before_the_run() {
        let v4 = addr(LOOPBACK);
        let e = choose(&ips(&["::1"]), v4, 3).unwrap_err();
        assert!(matches!(e, SourceError::Family { .. }), "{e}");
        assert!(e.to_string().contains("::1 is IPv6"), "{e}");
        // TEST-NET-1: documentation only, never an address of this machine. Binding fails
        // locally; nothing is sent.
        let e = choose(&ips(&["127.0.0.2", "192.0.2.1"]), v4, 3).unwrap_err();
        assert!(e.to_string().contains("cannot use 192.0.2.1"), "{e}");
        // With a single device, only the first address is used, so only it is checked.
        let one = choose(&ips(&["127.0.0.2", "192.0.2.1"]), v4, 1).unwrap();
        assert_eq!(one.len(), 2);
        let ok = choose(&ips(&["127.0.0.2", "127.0.0.3"]), v4, 3).unwrap();
        assert_eq!(&ok[..], &ips(&["127.0.0.2", "127.0.0.3"])[..]);
    }
}
