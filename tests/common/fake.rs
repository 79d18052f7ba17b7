//! A tiny misbehaving MQTT broker for tests: it accepts TCP connections on a loopback port and
//! plays a script per connection, so a test can make it do what no real broker would (close
//! right after CONNACK, answer a SUBSCRIBE with the wrong packet id, send bad bytes...).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use fleetsim::mqtt::MqttCodec;
use fleetsim::mqtt::codec::encode;
use mqtt5_protocol::packet::connack::ConnAckPacket;
use mqtt5_protocol::packet::suback::{SubAckPacket, SubAckReasonCode};
use mqtt5_protocol::{Packet, ReasonCode};
use tokio_util::codec::Decoder;

/// One accepted connection, as the script sees it.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    codec: MqttCodec,
    /// 0 for the first connection the broker accepted, then 1, 2...
    pub index: usize,
}

impl Conn {
    /// The next packet from the client, or None when it closed (or sent nothing for 10 s).
    pub fn read(&mut self) -> Option<Packet> {
        loop {
            if let Ok(Some(packet)) = self.codec.decode(&mut self.buf) {
                return Some(packet);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a packet of this type arrives, answering PINGREQs on the way.
    pub fn expect(&mut self, name: &str) -> Option<Packet> {
        loop {
            let packet = self.read()?;
            if matches!(packet, Packet::PingReq) {
                self.write(&Packet::PingResp);
            }
            if packet.packet_type_name() == name {
                return Some(packet);
            }
        }
    }

    pub fn write(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        encode(packet, &mut out).expect("encode a test packet");
        self.write_raw(&out);
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads the CONNECT and accepts it; returns the client id.
    pub fn accept(&mut self) -> Option<String> {
        let Packet::Connect(connect) = self.expect("CONNECT")? else {
            return None;
        };
        self.write(&Packet::ConnAck(ConnAckPacket::new(
            false,
            ReasonCode::Success,
        )));
        Some(connect.client_id.clone())
    }

    /// Reads a SUBSCRIBE and grants every filter; returns its packet id.
    pub fn grant_subscribe(&mut self) -> Option<u16> {
        let Packet::Subscribe(subscribe) = self.expect("SUBSCRIBE")? else {
            return None;
        };
        let id = subscribe.packet_id;
        let reasons = vec![SubAckReasonCode::GrantedQoS1; subscribe.filters.len()];
        self.write(&Packet::SubAck(suback(id, reasons)));
        Some(id)
    }

    /// Answers PINGREQs (and ignores everything else) until the client goes away.
    pub fn idle(&mut self) {
        while let Some(packet) = self.read() {
            if matches!(packet, Packet::PingReq) {
                self.write(&Packet::PingResp);
            }
        }
    }

    /// The client's address: which source address it connected from.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }

    pub fn close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

pub fn suback(packet_id: u16, reasons: Vec<SubAckReasonCode>) -> SubAckPacket {
    let mut packet = SubAckPacket::new(packet_id);
    packet.reason_codes = reasons;
    packet
}

/// The broker: a listener thread and a thread per connection, each playing `script`.
pub struct FakeBroker {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeBroker {
    pub fn start(script: impl Fn(&mut Conn) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let (count, stopped) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let index = count.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                std::thread::spawn(move || {
                    let mut conn = Conn {
                        stream,
                        buf: BytesMut::new(),
                        codec: MqttCodec::default(),
                        index,
                    };
                    script(&mut conn);
                });
            }
        });
        Self {
            port,
            accepted,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn target(&self) -> fleetsim::fleet::BrokerTarget {
        super::loopback(self.port)
    }

    /// Stops accepting: the port is closed once the listener thread sees this.
    pub fn stop_listening(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the listener so it sees the flag and drops the socket.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop_listening();
    }
}
