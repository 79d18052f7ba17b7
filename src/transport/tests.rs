//! Tests of the transport against tokio-rustls servers with rcgen certificates.

use std::fs;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::WebPkiClientVerifier;

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// A CA, a server certificate for localhost and 127.0.0.1, a client certificate, and a
/// second CA that signed neither, as PEM files in a scratch directory.
struct Pki {
    dir: TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    server_key: PathBuf,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_der: PrivateKeyDer<'static>,
    client_der: CertificateDer<'static>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> (rcgen::Certificate, KeyPair) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    (params.signed_by(&key, ca).unwrap(), key)
}

fn pki() -> Pki {
    let dir = TempDir::new().unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        fs::write(&path, pem).unwrap();
        path
    };
    let ca = ca("fleetsim test CA");
    let (server, server_key) = leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &ca,
    );
    let (client, client_key) = leaf(&["phone-1"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
    Pki {
        ca: write("ca.pem", ca.pem()),
        other_ca: write("other-ca.pem", self::ca("someone else's CA").pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        server_chain: vec![server.der().clone()],
        server_key_der: PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
        client_der: client.der().clone(),
        dir,
    }
}

fn addr(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().unwrap()
}

async fn listen() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A TLS echo server for one connection. It returns the client certificate it saw, or why
/// its handshake failed.
async fn tls_server(
    pki: &Pki,
    require_client_cert: bool,
) -> (
    SocketAddr,
    JoinHandle<Result<Option<CertificateDer<'static>>, String>>,
) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        roots.add(certificates(&pki.ca).unwrap().remove(0)).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(pki.server_chain.clone(), pki.server_key_der.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = listen().await;
    let addr = addr(&listener);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let seen = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first().cloned());
        let (mut read, mut write) = tokio::io::split(stream);
        tokio::io::copy(&mut read, &mut write)
            .await
            .map_err(|e| e.to_string())?;
        Ok(seen)
    });
    (addr, server)
}

/// Writes `bytes`, reads as many back, and closes the writing side.
async fn round_trip((mut read, mut write): (BoxRead, BoxWrite), bytes: &[u8]) -> Vec<u8> {
    write.write_all(bytes).await.unwrap();
    write.flush().await.unwrap();
    let mut back = vec![0; bytes.len()];
    read.read_exact(&mut back).await.unwrap();
    write.shutdown().await.unwrap();
    back
}

#[tokio::test]
async fn plain_connect_carries_bytes_both_ways() {
    let listener = listen().await;
    let endpoint = Endpoint::plain(addr(&listener));
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let (mut read, mut write) = tcp.split();
        tokio::io::copy(&mut read, &mut write).await.unwrap()
    });

    let halves = endpoint.connect(WAIT).await.unwrap();

    assert!(!endpoint.is_tls());
    assert_eq!(round_trip(halves, b"\x10\x00plain").await, b"\x10\x00plain");
    assert_eq!(server.await.unwrap(), 7);
}

#[tokio::test]
async fn tls_connect_with_the_right_ca_carries_bytes_both_ways() {
    let pki = pki();
    let (addr, server) = tls_server(&pki, false).await;
    let endpoint = Endpoint::tls(addr, "127.0.0.1", &pki.ca, None).unwrap();

    let halves = endpoint.connect(WAIT).await.unwrap();

    assert!(endpoint.is_tls());
    assert_eq!(endpoint.addr(), addr);
    assert_eq!(
        round_trip(halves, b"\x10\x00secret").await,
        b"\x10\x00secret"
    );
    assert_eq!(server.await.unwrap(), Ok(None));
}

#[tokio::test]
async fn tls_connect_with_another_ca_names_the_address_and_unknown_issuer() {
    let pki = pki();
    let (addr, _server) = tls_server(&pki, false).await;
    let endpoint = Endpoint::tls(addr, "127.0.0.1", &pki.other_ca, None).unwrap();

    let err = endpoint.connect(WAIT).await.err().unwrap();

    assert!(
        matches!(err, ConnectError::Tls { addr: a, .. } if a == addr),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("TLS handshake with {addr} failed: invalid peer certificate: UnknownIssuer")
    );
}

#[tokio::test]
async fn tls_connect_to_a_name_the_certificate_lacks_fails() {
    let pki = pki();
    let (addr, _server) = tls_server(&pki, false).await;
    let endpoint = Endpoint::tls(addr, "broker.example", &pki.ca, None).unwrap();

    let err = endpoint.connect(WAIT).await.err().unwrap().to_string();

    assert!(
        err.starts_with(&format!("TLS handshake with {addr} failed: ")),
        "{err}"
    );
    assert!(
        err.contains(r#"not valid for name "broker.example""#),
        "{err}"
    );
}

#[tokio::test]
async fn client_certificate_is_presented_when_the_server_requires_one() {
    let pki = pki();
    let (addr, server) = tls_server(&pki, true).await;
    let client = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let endpoint = Endpoint::tls(addr, "localhost", &pki.ca, client).unwrap();

    let halves = endpoint.connect(WAIT).await.unwrap();

    assert_eq!(round_trip(halves, b"hello").await, b"hello");
    assert_eq!(server.await.unwrap(), Ok(Some(pki.client_der.clone())));
}

#[tokio::test]
async fn without_a_client_certificate_a_server_requiring_one_refuses() {
    let pki = pki();
    let (addr, server) = tls_server(&pki, true).await;
    let endpoint = Endpoint::tls(addr, "localhost", &pki.ca, None).unwrap();

    // TLS 1.3: our side of the handshake completes; the server's refusal is the first read.
    let (mut read, _write) = endpoint.connect(WAIT).await.unwrap();
    let err = read.read(&mut [0; 8]).await.unwrap_err();

    assert_eq!(err.to_string(), "received fatal alert: CertificateRequired");
    let refused = server.await.unwrap().unwrap_err();
    assert_eq!(refused, "peer sent no certificates");
}

#[tokio::test]
async fn a_silent_server_times_the_handshake_out() {
    let pki = pki();
    // Bound but never accepted: the kernel completes TCP, nobody answers the ClientHello.
    let listener = listen().await;
    let endpoint = Endpoint::tls(addr(&listener), "localhost", &pki.ca, None).unwrap();
    let after = Duration::from_millis(300);

    let err = endpoint.connect(after).await.err().unwrap();

    assert!(matches!(err, ConnectError::Timeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no answer from {} within 300ms", addr(&listener))
    );
}

#[tokio::test]
async fn connect_to_a_closed_port_names_the_address() {
    let addr = addr(&listen().await); // dropped: nothing listens there now

    let err = Endpoint::plain(addr).connect(WAIT).await.err().unwrap();

    assert!(
        matches!(err, ConnectError::Tcp { addr: a, .. } if a == addr),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to {addr}: ")),
        "{err}"
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn devices_are_dealt_round_robin_over_the_sources() {
    let broker: SocketAddr = "127.0.0.1:1883".parse().unwrap();
    let sources: Arc<[IpAddr]> = Arc::from([ip("127.0.0.2"), ip("127.0.0.3"), ip("127.0.0.4")]);
    let endpoint = Endpoint::plain(broker).with_sources(sources);
    let dealt: Vec<_> = (0..7).map(|i| endpoint.for_device(i).source()).collect();
    let want = [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
    ];
    let want: Vec<_> = want
        .iter()
        .chain(&["127.0.0.2"])
        .map(|s| Some(ip(s)))
        .collect();
    assert_eq!(dealt, want);
    assert_eq!(
        endpoint.source(),
        None,
        "the run's endpoint itself stays unbound"
    );
    assert_eq!(endpoint.for_device(4).addr(), broker);
    // Without sources every device lets the kernel choose.
    let unbound = Endpoint::plain(broker);
    assert!((0..3).all(|i| unbound.for_device(i).source().is_none()));
}

/// Accepts one connection, echoes it, and returns the peer's address.
fn echo_peer(listener: TcpListener) -> JoinHandle<IpAddr> {
    tokio::spawn(async move {
        let (mut tcp, peer) = listener.accept().await.unwrap();
        let (mut read, mut write) = tcp.split();
        tokio::io::copy(&mut read, &mut write).await.unwrap();
        peer.ip()
    })
}

#[tokio::test]
async fn a_device_connects_from_its_source_address() {
    let listener = listen().await;
    let endpoint = Endpoint::plain(addr(&listener))
        .with_sources(Arc::from([ip("127.0.0.7"), ip("127.0.0.8")]));
    let server = echo_peer(listener);

    let halves = endpoint.for_device(1).connect(WAIT).await.unwrap();

    assert_eq!(round_trip(halves, b"bound").await, b"bound");
    assert_eq!(server.await.unwrap(), ip("127.0.0.8"));
}

#[tokio::test]
async fn a_proxied_device_connects_from_its_source_address_too() {
    let listener = listen().await;
    let endpoint = Endpoint::plain(addr(&listener)).with_sources(Arc::from([ip("127.0.0.9")]));
    let server = echo_peer(listener);

    let (read, write, _control) = endpoint
        .for_device(0)
        .connect_proxied(WAIT, 1)
        .await
        .unwrap();

    assert_eq!(round_trip((read, write), b"proxied").await, b"proxied");
    assert_eq!(server.await.unwrap(), ip("127.0.0.9"));
}

#[tokio::test]
async fn tls_runs_over_a_bound_connection() {
    let pki = pki();
    let (addr, server) = tls_server(&pki, false).await;
    let endpoint = Endpoint::tls(addr, "localhost", &pki.ca, None)
        .unwrap()
        .with_sources(Arc::from([ip("127.0.0.10")]))
        .for_device(0);

    let halves = endpoint.connect(WAIT).await.unwrap();

    assert_eq!(round_trip(halves, b"secret").await, b"secret");
    assert!(server.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_failed_connect_names_the_source_address() {
    let addr = addr(&listen().await); // dropped: nothing listens there now
    let endpoint = Endpoint::plain(addr)
        .with_sources(Arc::from([ip("127.0.0.7")]))
        .for_device(0);

    let err = endpoint.connect(WAIT).await.err().unwrap();

    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to {addr} from 127.0.0.7: ")),
        "{err}"
    );
}

#[tokio::test]
async fn a_timeout_names_the_source_address() {
    let pki = pki();
    // Bound but never accepted: nobody answers the ClientHello.
    let listener = listen().await;
    let endpoint = Endpoint::tls(addr(&listener), "localhost", &pki.ca, None)
        .unwrap()
        .with_sources(Arc::from([ip("127.0.0.7")]))
        .for_device(0);

    let err = endpoint
        .connect(Duration::from_millis(300))
        .await
        .err()
        .unwrap();

    assert_eq!(
        err.to_string(),
        format!(
            "no answer from {} within 300ms (connecting from 127.0.0.7)",
            addr(&listener)
        )
    );
}

fn tls_error(ca: &Path, client: Option<(&Path, &Path)>) -> TlsError {
    let addr = SocketAddr::from(([127, 0, 0, 1], 8883));
    Endpoint::tls(addr, "localhost", ca, client).unwrap_err()
}

fn scratch(pki: &Pki, name: &str, contents: &str) -> PathBuf {
    let path = pki.dir.path().join(name);
    fs::write(&path, contents).unwrap();
    path
}

#[test]
fn a_missing_ca_file_is_named() {
    let pki = pki();
    let missing = pki.dir.path().join("nope.pem");

    let err = tls_error(&missing, None);

    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display()))
    );
}

#[test]
fn a_ca_file_without_certificates_is_named() {
    let pki = pki();
    let garbage = scratch(&pki, "garbage.pem", "this is not PEM at all\n");
    // A key where the CA belongs: PEM, but no certificate in it.
    let key_only = pki.server_key.clone();

    for path in [garbage, key_only] {
        let err = tls_error(&path, None);
        assert_eq!(
            err.to_string(),
            format!("no certificate in {}", path.display())
        );
    }
}

#[test]
fn broken_pem_is_named_with_the_reason() {
    let pki = pki();
    let path = scratch(
        &pki,
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!! not base64 !!!\n-----END CERTIFICATE-----\n",
    );

    let err = tls_error(&path, None);

    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("bad PEM in {}: ", path.display())),
        "{message}"
    );
}

#[test]
fn a_ca_that_is_not_a_certificate_is_named() {
    let pki = pki();
    // Valid PEM and base64, but the bytes are no X.509 certificate.
    let path = scratch(
        &pki,
        "not-x509.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );

    let err = tls_error(&path, None);

    assert!(matches!(err, TlsError::InvalidCa { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("invalid CA certificate in {}: ", path.display())),
        "{message}"
    );
}

#[test]
fn client_files_are_checked_and_named() {
    let pki = pki();
    let missing = pki.dir.path().join("missing.key");
    let cert = pki.client_cert.as_path();

    let err = tls_error(&pki.ca, Some((cert, &missing)));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display()))
    );

    // The certificate where the key belongs.
    let err = tls_error(&pki.ca, Some((cert, cert)));
    assert_eq!(
        err.to_string(),
        format!("no private key in {}", cert.display())
    );

    let err = tls_error(&pki.ca, Some((&pki.client_key, &pki.client_key)));
    assert_eq!(
        err.to_string(),
        format!("no certificate in {}", pki.client_key.display())
    );

    // The server's key does not belong to the client's certificate.
    let err = tls_error(&pki.ca, Some((cert, &pki.server_key)));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot use client certificate {} with key {}: keys may not be consistent: KeyMismatch",
            cert.display(),
            pki.server_key.display()
        )
    );
}

#[test]
fn server_names_may_be_dns_names_or_ip_literals() {
    let ok = ["localhost", "broker.example", "127.0.0.1", "::1", "[::1]"];
    for host in ok {
        assert!(server_name(host).is_ok(), "{host}");
    }
    assert_eq!(
        server_name("not a host!").unwrap_err().to_string(),
        r#"bad server name "not a host!": not a DNS name or an IP address"#
    );
}

/// `Endpoint::tls` on `ca`, in a thread: Err when it does not return within a few seconds.
fn tls_error_within_seconds(ca: PathBuf) -> Result<TlsError, &'static str> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(tls_error(&ca, None));
    });
    rx.recv_timeout(WAIT).map_err(|_| "still reading after 5 s")
}

#[test]
fn an_endless_device_as_ca_file_is_refused_at_once() {
    let zero = PathBuf::from("/dev/zero");
    let err = tls_error_within_seconds(zero).unwrap();
    assert_eq!(
        err.to_string(),
        "cannot read /dev/zero: it is a character device, not a regular file"
    );
}

#[test]
fn a_fifo_as_ca_file_is_refused_without_waiting_for_a_writer() {
    let pki = pki();
    let fifo = pki.dir.path().join("ca.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    // Nobody ever writes to it: opening it for reading would block for good.
    let err = tls_error_within_seconds(fifo.clone()).unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}: it is a FIFO (named pipe), not a regular file",
            fifo.display()
        )
    );
}

#[test]
fn a_directory_or_an_oversized_file_is_refused_naming_it() {
    let pki = pki();
    let err = tls_error(pki.dir.path(), None);
    assert!(
        matches!(
            err,
            TlsError::NotAFile {
                what: "a directory",
                ..
            }
        ),
        "{err:?}"
    );

    // A real certificate, padded past the limit with comment lines PEM parsers skip.
    let mut big = fs::read_to_string(&pki.ca).unwrap();
    while big.len() as u64 <= MAX_PEM_BYTES {
        big.push_str("padding line, outside any PEM block, ignored by parsers\n");
    }
    let path = scratch(&pki, "big.pem", &big);
    let err = tls_error(&path, None);
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}: larger than 1024 KiB, too large for a PEM file",
            path.display()
        )
    );
    // A symlink to the good CA is followed and read.
    let link = pki.dir.path().join("link.pem");
    std::os::unix::fs::symlink(&pki.ca, &link).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], 8883));
    assert!(Endpoint::tls(addr, "localhost", &link, None).is_ok());
}
