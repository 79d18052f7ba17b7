//! The byte transport under a device's MQTT codec: plain TCP, or TLS (rustls) over TCP.
//!
//! An [`Endpoint`] is built once per run (PEM files read and checked there, so a bad file stops
//! the run before any device starts) and cloned into every device; `connect` hands back boxed
//! read and write halves, so the codec and the actor do not care which transport is underneath.
//! A device hit by network faults connects through [`toxic::proxy`] instead. With source
//! addresses ([`sources`]), each device's copy is bound to one of them ([`Endpoint::for_device`]).

pub mod sources;
pub mod toxic;

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, InvalidDnsNameError, PrivateKeyDer, ServerName,
};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// The reading half of a connection, whichever the transport.
pub type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
/// The writing half of a connection; shutting it down closes the connection (with TLS, after a
/// close_notify).
pub type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// Where and how to connect: built once per run, cloned cheaply into every device.
#[derive(Clone, Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    tls: Option<Tls>,
    /// The local addresses devices are dealt over; empty: the kernel picks, as usual.
    sources: Arc<[IpAddr]>,
    /// The local address this copy connects from, set by [`Endpoint::for_device`].
    source: Option<IpAddr>,
}

/// One config shared by every device: rustls keeps its session-resumption cache there.
#[derive(Clone, Debug)]
struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

/// A TLS setup that cannot work, found before connecting. Each names the file or name at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "mqtts:// needs a CA file (tls.ca_file in the fleet, or --ca-file): fleetsim bundles no root certificates"
    )]
    NoCaFile,
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// A FIFO would block the run until something writes to it; a device like /dev/zero
    /// would never end.
    #[error("cannot read {}: it is {what}, not a regular file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("cannot read {}: larger than {} KiB, too large for a PEM file", path.display(), MAX_PEM_BYTES / 1024)]
    TooLarge { path: PathBuf },
    #[error("bad PEM in {}: {source}", path.display())]
    Pem { path: PathBuf, source: pem::Error },
    #[error("no certificate in {}", path.display())]
    NoCertificate { path: PathBuf },
    #[error("no private key in {}", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("invalid CA certificate in {}: {source}", path.display())]
    InvalidCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot use client certificate {} with key {}: {source}", cert.display(), key.display())]
    ClientCert {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("bad server name {host:?}: not a DNS name or an IP address")]
    ServerName {
        host: String,
        source: InvalidDnsNameError,
    },
    #[error("rustls config error: {0}")]
    Config(#[source] rustls::Error),
}

/// Why one connection attempt failed. Shown to users as is, so each names the address, and
/// the source address when the connection was bound to one (`from`): running out of ports is
/// a matter of the source, not only of the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no answer from {addr} within {after:?}{}", Via(*from).connecting())]
    Timeout {
        addr: SocketAddr,
        from: Option<IpAddr>,
        after: Duration,
    },
    #[error("cannot connect to {addr}{}: {source}", Via(*from))]
    Tcp {
        addr: SocketAddr,
        from: Option<IpAddr>,
        source: io::Error,
    },
    /// `reason` is rustls' own words, e.g. "invalid peer certificate: UnknownIssuer".
    #[error("TLS handshake with {addr}{} failed: {reason}", Via(*from))]
    Tls {
        addr: SocketAddr,
        from: Option<IpAddr>,
        reason: String,
    },
}

/// ` from 127.0.0.7` for a bound connection; nothing otherwise.
struct Via(Option<IpAddr>);

impl Via {
    /// ` (connecting from 127.0.0.7)`, where a plain `from` would read as the broker's.
    fn connecting(self) -> String {
        self.0
            .map(|ip| format!(" (connecting from {ip})"))
            .unwrap_or_default()
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, " from {ip}"),
            None => Ok(()),
        }
    }
}

impl Endpoint {
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            sources: Arc::from([]),
            source: None,
        }
    }

    /// TLS to `addr`, checking the server certificate against `ca_file` for name `host` (a DNS
    /// name or an IP literal), presenting `client` (cert_file, key_file) when given. Reads and
    /// parses the PEM files here, once.
    pub fn tls(
        addr: SocketAddr,
        host: &str,
        ca_file: &Path,
        client: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        let name = server_name(host)?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(ca_file)? {
            roots.add(cert).map_err(|source| TlsError::InvalidCa {
                path: ca_file.to_owned(),
                source,
            })?;
        }
        // An explicit provider, rather than the process default, so nothing depends on which
        // rustls crypto features other crates in the graph happen to enable.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let chain = certificates(cert_file)?;
                let key = private_key(key_file)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsError::ClientCert {
                        cert: cert_file.to_owned(),
                        key: key_file.to_owned(),
                        source,
                    })?
            }
        };
        let tls = Tls {
            config: Arc::new(config),
            name,
        };
        Ok(Self {
            tls: Some(tls),
            ..Self::plain(addr)
        })
    }

    /// The same endpoint, dealing its devices over `sources` (see [`Endpoint::for_device`]);
    /// empty: every connection lets the kernel pick its local address.
    pub fn with_sources(self, sources: Arc<[IpAddr]>) -> Self {
        Self { sources, ..self }
    }

    /// The copy device `index` connects with: bound to `sources[index % len]`, round-robin,
    /// or unbound when there are no sources. As cheap as a clone.
    pub fn for_device(&self, index: usize) -> Endpoint {
        let source = match self.sources.len() {
            0 => None,
            len => Some(self.sources[index % len]),
        };
        Self {
            source,
            ..self.clone()
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The local address this copy connects from, if bound to one.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects within `timeout`: TCP (TCP_NODELAY set), then the TLS handshake if any.
    ///
    /// With TLS 1.3 the client finishes its handshake before the server checks the client
    /// certificate, so a server refusing it is seen on the first read, not here.
    pub async fn connect(&self, timeout: Duration) -> Result<(BoxRead, BoxWrite), ConnectError> {
        let (read, write, _) = self.open_within(timeout, false).await?;
        Ok((read, write))
    }

    /// Like [`Endpoint::connect`], through a network-fault proxy whose toxics the returned
    /// control switches; `seed` drives its jitter.
    pub async fn connect_proxied(
        &self,
        timeout: Duration,
        seed: u64,
    ) -> Result<(BoxRead, BoxWrite, toxic::ToxicControl), ConnectError> {
        let (read, write, reset) = self.open_within(timeout, true).await?;
        Ok(toxic::proxy(read, write, reset, seed))
    }

    async fn open_within(
        &self,
        timeout: Duration,
        resettable: bool,
    ) -> Result<(BoxRead, BoxWrite, Option<toxic::ResetHandle>), ConnectError> {
        tokio::time::timeout(timeout, self.open(resettable))
            .await
            .map_err(|_| ConnectError::Timeout {
                addr: self.addr,
                from: self.source,
                after: timeout,
            })?
    }

    /// `resettable`: also hand out a [`toxic::ResetHandle`], for a proxy that may have to end
    /// the connection with RST.
    async fn open(
        &self,
        resettable: bool,
    ) -> Result<(BoxRead, BoxWrite, Option<toxic::ResetHandle>), ConnectError> {
        let (addr, from) = (self.addr, self.source);
        let tcp = |source| ConnectError::Tcp { addr, from, source };
        let stream = match from {
            None => TcpStream::connect(addr).await,
            Some(ip) => connect_from(ip, addr).await,
        }
        .map_err(tcp)?;
        // Without NODELAY a small answer can wait ~40 ms for a delayed ACK.
        stream.set_nodelay(true).map_err(tcp)?;
        let reset = if resettable {
            Some(toxic::ResetHandle::from_tcp(&stream).map_err(tcp)?)
        } else {
            None
        };
        let Some(tls) = &self.tls else {
            if reset.is_some() {
                // `into_split`'s write half sends a FIN when dropped, which would turn the
                // proxy's RST into a clean close: keep one stream behind a shared split.
                let (read, write) = tokio::io::split(stream);
                return Ok((Box::new(read), Box::new(write), reset));
            }
            let (read, write) = stream.into_split();
            return Ok((Box::new(read), Box::new(write), None));
        };
        let stream = TlsConnector::from(Arc::clone(&tls.config))
            .connect(tls.name.clone(), stream)
            .await
            // tokio-rustls wraps rustls' error in an io::Error whose Display is rustls' own.
            .map_err(|e| ConnectError::Tls {
                addr,
                from,
                reason: e.to_string(),
            })?;
        // One TLS session cannot be split into independent halves: `split` shares it behind a
        // lock, which costs nothing here since both halves live in the same actor.
        let (read, write) = tokio::io::split(stream);
        Ok((Box::new(read), Box::new(write), reset))
    }
}

/// A TCP connection to `addr` from local address `source`. Binding with port 0 makes the
/// kernel pick the port at `bind`, from `source`'s own share of the ephemeral range: that is
/// what lets several source addresses hold more connections than one range.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// `host` as rustls wants it; an IPv6 literal may come bracketed, as in a URL.
fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|source| TlsError::ServerName {
        host: host.to_owned(),
        source,
    })
}

/// The most a PEM file may hold: a bundle of a thousand CA certificates fits.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A regular file (symlinks followed) of at most [`MAX_PEM_BYTES`].
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let failed = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    // Checked before opening: opening a FIFO already blocks until a writer comes. A file
    // swapped for one between the check and the open is not guarded against.
    let kind = std::fs::metadata(path).map_err(failed)?.file_type();
    if !kind.is_file() {
        return Err(TlsError::NotAFile {
            path: path.to_owned(),
            what: describe(kind),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// What a path that is not a regular file is, for the message.
#[cfg(unix)]
fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something else"
    }
}

#[cfg(not(unix))]
fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else {
        "something else"
    }
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

#[cfg(test)]
mod tests;
