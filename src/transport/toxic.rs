//! Network faults between a device and its broker, in process: a two-way byte pump in the style
//! of Toxiproxy, whose toxics (latency with jitter, bandwidth, blackhole, slicer, limit_data,
//! reset) can be switched per direction while the connection runs.
//!
//! [`proxy`] puts the pump between the device's codec and its real connection. Each direction is
//! one task that reads a chunk from its source, stamps it with when it may leave (now + latency
//! ± jitter), and writes it out in segments shaped by the slicer, the bandwidth and limit_data.
//! Chunks leave in the order they came, and reading goes on while earlier chunks wait, so
//! latency delays each chunk rather than the whole stream (as Toxiproxy's does). A blackhole
//! stops reading, so TCP backpressure builds up behind it as it would on a dead link.
//!
//! Memory per proxied connection: a 16 KiB in-memory pipe each way plus one 8 KiB read-ahead
//! buffer per direction, reused for every chunk. Devices without network faults get no proxy.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::{BoxRead, BoxWrite};

/// Capacity of the in-memory pipe between the device and each pump, per direction.
const PIPE_BYTES: usize = 16 * 1024;
/// Read-ahead per direction: chunks waiting out their latency live here.
const CHUNK_BYTES: usize = 8 * 1024;
/// Stands in for "never" when a delay would overflow an `Instant`.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Which way a toxic acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Device -> broker.
    Upstream,
    /// Broker -> device.
    Downstream,
    Both,
}

impl Direction {
    /// The lanes (0 = upstream, 1 = downstream) this direction covers.
    fn lanes(self) -> &'static [usize] {
        match self {
            Direction::Upstream => &[UP],
            Direction::Downstream => &[DOWN],
            Direction::Both => &[UP, DOWN],
        }
    }
}

const UP: usize = 0;
const DOWN: usize = 1;

/// One toxic, as Toxiproxy's.
#[derive(Debug, Clone, PartialEq)]
pub enum Toxic {
    /// Each chunk waits `latency` ± a uniform `jitter` (seeded); order is kept, so a chunk never
    /// overtakes an earlier one that drew a longer delay.
    Latency { latency: Duration, jitter: Duration },
    /// At most this many bytes a second, paced in pieces of at most 100 ms worth. 0 lets
    /// nothing through, like a blackhole.
    Bandwidth { bytes_per_sec: u64 },
    /// Stop forwarding and stop reading (backpressure builds), but keep the socket open.
    Blackhole,
    /// Forward in segments of at most `size` bytes (0 counts as 1), at least `delay` apart.
    Slicer { size: usize, delay: Duration },
    /// Forward this many more bytes in this direction (counted from when it is set, as in
    /// Toxiproxy), then close the whole connection.
    LimitData { bytes: u64 },
    /// Close the whole connection at once, whatever the direction: with RST when the proxy has
    /// a [`ResetHandle`], else a plain close. Not kept: it acts once.
    Reset,
}

/// The toxics in force in one direction: at most one of each kind.
#[derive(Debug, Clone, Copy, Default)]
struct Toxics {
    latency: Option<(Duration, Duration)>,
    bandwidth: Option<u64>,
    blackhole: bool,
    slicer: Option<(usize, Duration)>,
    /// Bytes allowed, and the lane's forwarded count when the limit was set.
    limit: Option<(u64, u64)>,
}

impl Toxics {
    fn apply(&mut self, toxic: &Toxic, forwarded: u64) {
        match *toxic {
            Toxic::Latency { latency, jitter } => self.latency = Some((latency, jitter)),
            Toxic::Bandwidth { bytes_per_sec } => self.bandwidth = Some(bytes_per_sec),
            Toxic::Blackhole => self.blackhole = true,
            Toxic::Slicer { size, delay } => self.slicer = Some((size.max(1), delay)),
            Toxic::LimitData { bytes } => self.limit = Some((bytes, forwarded)),
            Toxic::Reset => {}
        }
    }

    /// Nothing may pass at all.
    fn stopped(&self) -> bool {
        self.blackhole || self.bandwidth == Some(0)
    }
}

/// What both pumps watch: the toxics per lane, and whether the connection is closing.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    lanes: [Toxics; 2],
    closing: bool,
}

struct Shared {
    state: watch::Sender<State>,
    forwarded: [AtomicU64; 2],
    /// Taken by a reset, or dropped when both pumps stop: holding it keeps the socket open.
    reset: Mutex<Option<ResetHandle>>,
    /// Pumps still running.
    running: AtomicUsize,
}

impl Shared {
    fn close(&self) {
        self.state
            .send_if_modified(|s| !std::mem::replace(&mut s.closing, true));
    }

    fn take_reset(&self) -> Option<ResetHandle> {
        // A panic elsewhere cannot leave an `Option` half-written, so a poisoned lock is fine.
        self.reset
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Controls the toxics of one proxied connection; cheap to clone, usable from another task.
#[derive(Clone)]
pub struct ToxicControl {
    shared: Arc<Shared>,
}

impl ToxicControl {
    /// Replaces any toxic of the same kind in that direction; `Reset` closes the connection.
    pub fn set(&self, direction: Direction, toxic: Toxic) {
        if toxic == Toxic::Reset {
            self.reset();
            return;
        }
        let forwarded = self.forwarded();
        self.shared.state.send_modify(|state| {
            for &lane in direction.lanes() {
                state.lanes[lane].apply(&toxic, forwarded[lane]);
            }
        });
    }

    /// Removes all toxics from that direction.
    pub fn clear(&self, direction: Direction) {
        self.shared.state.send_modify(|state| {
            for &lane in direction.lanes() {
                state.lanes[lane] = Toxics::default();
            }
        });
    }

    /// Bytes forwarded so far: (upstream, downstream).
    pub fn bytes(&self) -> (u64, u64) {
        let [up, down] = self.forwarded();
        (up, down)
    }

    fn forwarded(&self) -> [u64; 2] {
        let [up, down] = &self.shared.forwarded;
        [up.load(Ordering::Relaxed), down.load(Ordering::Relaxed)]
    }

    fn reset(&self) {
        // Linger 0 goes on before the pumps drop their halves, so the last close sends RST;
        // dropping the duplicate here first leaves the pumps' halves as the last references.
        if let Some(handle) = self.shared.take_reset()
            && let Err(error) = handle.socket.set_linger(Some(Duration::ZERO))
        {
            tracing::warn!(%error, "cannot set SO_LINGER 0: the connection closes without RST");
        }
        self.shared.close();
    }
}

impl fmt::Debug for ToxicControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToxicControl")
            .field("state", &*self.shared.state.borrow())
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// Lets the proxy reset the TCP connection with RST: holds a duplicate of the socket's fd; Reset
/// sets SO_LINGER 0 on it, and the proxy then drops its halves so the final close sends RST.
///
/// For that close to be an RST alone, dropping the write half must not send a FIN first: split
/// the stream with `tokio::io::split`, not `TcpStream::into_split`, whose write half shuts down
/// on drop (the peer would then read EOF before the reset).
#[derive(Debug)]
pub struct ResetHandle {
    socket: socket2::Socket,
}

impl ResetHandle {
    pub fn from_tcp(stream: &tokio::net::TcpStream) -> io::Result<Self> {
        let socket = socket2::SockRef::from(stream).try_clone()?;
        Ok(Self { socket })
    }
}

/// Puts a proxy between the device and its connection: returns the device's side (what the codec
/// reads and writes) and the control.
///
/// Two pump tasks, spawned with `tokio::spawn` on the current runtime (so this must be called
/// inside one; an actix arbiter's runtime does), move bytes between the device's side and
/// `(read, write)`. A clean close (EOF) is passed on after the bytes still pending, one
/// direction at a time as TCP does (a broker closes its side when it sees the device's FIN); a
/// failed read or write, limit_data or Reset closes the whole connection at once. The device
/// sees EOF, never an error. `seed` makes the jitter reproducible.
pub fn proxy(
    read: BoxRead,
    write: BoxWrite,
    reset: Option<ResetHandle>,
    seed: u64,
) -> (BoxRead, BoxWrite, ToxicControl) {
    let (device, ours) = tokio::io::duplex(PIPE_BYTES);
    let (device_read, device_write) = tokio::io::split(device);
    let (our_read, our_write) = tokio::io::split(ours);
    let (state, watched) = watch::channel(State::default());
    let shared = Arc::new(Shared {
        state,
        forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
        reset: Mutex::new(reset),
        running: AtomicUsize::new(2),
    });
    let up = Pump::new(UP, Box::new(our_read), write, seed, &shared, &watched);
    // A different stream of draws downstream, still fixed by the seed.
    let down_seed = seed ^ 0x9e37_79b9_7f4a_7c15;
    let down = Pump::new(
        DOWN,
        read,
        Box::new(our_write),
        down_seed,
        &shared,
        &watched,
    );
    tokio::spawn(up.run());
    tokio::spawn(down.run());
    (
        Box::new(device_read),
        Box::new(device_write),
        ToxicControl { shared },
    )
}

/// How a pump stopped.
enum End {
    /// Its source closed; everything read was delivered and the close passed on.
    Eof,
    /// limit_data let its last byte through.
    Limit,
    /// The connection is closing: Reset, or the other direction failed or hit its limit.
    Closed,
    Failed(io::Error),
}

/// One direction: reads from `src` into `buf`, queues chunks with the time each may leave, and
/// writes them to `dst` when the toxics allow.
struct Pump {
    lane: usize,
    src: BoxRead,
    dst: BoxWrite,
    /// Read-ahead: the bytes of `chunks` are `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// (when it may leave, length) of each chunk read and not yet written, oldest first.
    chunks: VecDeque<(Instant, usize)>,
    eof: bool,
    rng: SmallRng,
    /// The slicer's next segment may not leave before this.
    next_slice: Instant,
    /// When the throttled link finishes sending what was written so far.
    link_free: Instant,
    state: watch::Receiver<State>,
    /// A second receiver, so a blocked write can watch for closing alone.
    closing: watch::Receiver<State>,
    shared: Arc<Shared>,
}

impl Pump {
    fn new(
        lane: usize,
        src: BoxRead,
        dst: BoxWrite,
        seed: u64,
        shared: &Arc<Shared>,
        watched: &watch::Receiver<State>,
    ) -> Self {
        let now = Instant::now();
        Self {
            lane,
            src,
            dst,
            buf: vec![0; CHUNK_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            chunks: VecDeque::new(),
            eof: false,
            rng: SmallRng::seed_from_u64(seed),
            next_slice: now,
            link_free: now,
            state: watched.clone(),
            closing: watched.clone(),
            shared: Arc::clone(shared),
        }
    }

    async fn run(mut self) {
        let end = self.pump().await;
        let lane = if self.lane == UP {
            "upstream"
        } else {
            "downstream"
        };
        match &end {
            End::Eof => tracing::debug!(lane, "toxic proxy: source closed"),
            End::Limit => tracing::debug!(lane, "toxic proxy: limit_data reached"),
            End::Closed => {}
            End::Failed(error) => tracing::debug!(lane, %error, "toxic proxy: failed"),
        }
        if !matches!(end, End::Eof) {
            self.shared.close();
        }
        // The last pump out drops the duplicate fd, so that dropping the halves really closes
        // the socket.
        if self.shared.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            drop(self.shared.take_reset());
        }
    }

    async fn pump(&mut self) -> End {
        loop {
            let state = *self.state.borrow_and_update();
            if state.closing {
                return End::Closed;
            }
            let toxics = state.lanes[self.lane];
            let left = toxics
                .limit
                .map(|(bytes, from)| bytes.saturating_sub(self.forwarded().saturating_sub(from)));
            if left == Some(0) {
                return End::Limit;
            }
            if toxics.stopped() {
                if self.state.changed().await.is_err() {
                    return End::Closed;
                }
                continue;
            }
            let Some(&(due, len)) = self.chunks.front() else {
                if self.eof {
                    return self.pass_close().await;
                }
                tokio::select! {
                    read = self.src.read(&mut self.buf[self.end..]) => {
                        if let Err(error) = self.took(read, &toxics) {
                            return End::Failed(error);
                        }
                    }
                    _ = self.state.changed() => {}
                }
                continue;
            };

            let mut segment = len;
            let mut at = due;
            if let Some((size, _)) = toxics.slicer {
                segment = segment.min(size);
                at = at.max(self.next_slice);
            }
            if let Some(left) = left {
                segment = segment.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            if let Some(rate) = toxics.bandwidth {
                // 100 ms worth at most, so the pace stays even (Toxiproxy does the same).
                let quantum = usize::try_from(rate / 10).unwrap_or(usize::MAX).max(1);
                segment = segment.min(quantum);
                at = later(at.max(self.link_free), transmit(segment, rate));
            }
            if Instant::now() < at {
                // Keep reading meanwhile: later chunks start their own latency now.
                let room = !self.eof && self.make_room();
                tokio::select! {
                    () = sleep_until(at) => {}
                    read = self.src.read(&mut self.buf[self.end..]), if room => {
                        if let Err(error) = self.took(read, &toxics) {
                            return End::Failed(error);
                        }
                    }
                    _ = self.state.changed() => {}
                }
                continue;
            }

            let data = &self.buf[self.start..self.start + segment];
            let written = tokio::select! {
                written = write_flush(&mut self.dst, data) => written,
                _ = self.closing.wait_for(|s| s.closing) => return End::Closed,
            };
            match written {
                Ok(0) => return End::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent(n),
                Err(error) => return End::Failed(error),
            }
            if let Some((_, delay)) = toxics.slicer {
                self.next_slice = later(Instant::now(), delay);
            }
            if toxics.bandwidth.is_some() {
                self.link_free = at;
            }
        }
    }

    fn forwarded(&self) -> u64 {
        self.shared.forwarded[self.lane].load(Ordering::Relaxed)
    }

    /// Queues what a read brought, stamped with when it may leave.
    fn took(&mut self, read: io::Result<usize>, toxics: &Toxics) -> io::Result<()> {
        let n = read?;
        if n == 0 {
            self.eof = true;
            return Ok(());
        }
        let now = Instant::now();
        let due = match toxics.latency {
            Some((latency, jitter)) => later(now, jittered(&mut self.rng, latency, jitter)),
            None => now,
        };
        self.end += n;
        self.chunks.push_back((due, n));
        Ok(())
    }

    /// Accounts for `n` bytes written from the front chunk.
    fn sent(&mut self, n: usize) {
        self.shared.forwarded[self.lane].fetch_add(n as u64, Ordering::Relaxed);
        self.start += n;
        if let Some(front) = self.chunks.front_mut() {
            front.1 -= n;
            if front.1 == 0 {
                self.chunks.pop_front();
            }
        }
        if self.chunks.is_empty() {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether there is room to read more, moving the pending bytes to the front if need be.
    fn make_room(&mut self) -> bool {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.end < self.buf.len()
    }

    /// The source closed and everything was delivered: close the destination's side too.
    async fn pass_close(&mut self) -> End {
        tokio::select! {
            shut = self.dst.shutdown() => match shut {
                Ok(()) => End::Eof,
                Err(error) => End::Failed(error),
            },
            _ = self.closing.wait_for(|s| s.closing) => End::Closed,
        }
    }
}

/// One write and its flush (TLS keeps records back until flushed). Cancelled only when the
/// connection is closing, so bytes written but not yet counted do not matter.
async fn write_flush(dst: &mut BoxWrite, data: &[u8]) -> io::Result<usize> {
    let n = dst.write(data).await?;
    dst.flush().await?;
    Ok(n)
}

/// `latency` ± a uniform draw within `jitter`, never below zero.
fn jittered(rng: &mut SmallRng, latency: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let spread = u64::try_from(jitter.as_nanos())
        .unwrap_or(u64::MAX)
        .min(u64::MAX / 2);
    let offset = Duration::from_nanos(rng.random_range(0..=2 * spread));
    latency
        .saturating_add(offset)
        .saturating_sub(Duration::from_nanos(spread))
}

/// How long `bytes` take at `rate` bytes a second (`rate` > 0).
fn transmit(bytes: usize, rate: u64) -> Duration {
    let nanos = bytes as u128 * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn later(t: Instant, by: Duration) -> Instant {
    t.checked_add(by).unwrap_or(t + FOREVER)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    use super::*;

    /// Upper bound for anything that should happen: generous, so a loaded machine never fails.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A client and the server's side of its connection, both with TCP_NODELAY as in fleetsim.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.set_nodelay(true).unwrap();
        server.set_nodelay(true).unwrap();
        (client, server)
    }

    /// Echoes until EOF or an error.
    fn echo(mut server: TcpStream) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = server.read(&mut buf).await {
                if server.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        })
    }

    /// The client behind a proxy that can reset it. `tokio::io::split`, not `into_split`, so
    /// that dropping the write half sends no FIN (see `ResetHandle`).
    fn proxied(client: TcpStream) -> (BoxRead, BoxWrite, ToxicControl) {
        let reset = ResetHandle::from_tcp(&client).unwrap();
        let (read, write) = tokio::io::split(client);
        proxy(Box::new(read), Box::new(write), Some(reset), 7)
    }

    /// Sends `data` and waits for all of it back; returns how long that took.
    async fn round_trip(read: &mut BoxRead, write: &mut BoxWrite, data: &[u8]) -> Duration {
        let start = Instant::now();
        write.write_all(data).await.unwrap();
        let mut back = vec![0; data.len()];
        timeout(PATIENCE, read.read_exact(&mut back))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(back, data);
        start.elapsed()
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !check() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn without_toxics_bytes_pass_and_are_counted() {
        let (client, server) = connected().await;
        echo(server);
        let (mut read, mut write, control) = proxied(client);
        let data: Vec<u8> = (0..100).collect();
        round_trip(&mut read, &mut write, &data).await;
        eventually("100 bytes counted each way", || {
            control.bytes() == (100, 100)
        })
        .await;
    }

    #[tokio::test]
    async fn latency_delays_a_round_trip_both_ways() {
        let (client, server) = connected().await;
        echo(server);
        let (mut read, mut write, control) = proxied(client);
        let latency = Duration::from_millis(100);
        let jitter = Duration::ZERO;
        control.set(Direction::Both, Toxic::Latency { latency, jitter });
        let took = round_trip(&mut read, &mut write, b"ping").await;
        assert!(took >= 2 * latency, "round trip took {took:?}");
    }

    #[tokio::test]
    async fn latency_delays_each_chunk_not_the_whole_queue() {
        let (client, server) = connected().await;
        echo(server);
        let (mut read, mut write, control) = proxied(client);
        let latency = Duration::from_millis(300);
        let jitter = Duration::ZERO;
        control.set(Direction::Upstream, Toxic::Latency { latency, jitter });
        let start = Instant::now();
        for i in 0..5u8 {
            write.write_all(&[i]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut back = [0; 5];
        timeout(PATIENCE, read.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        let took = start.elapsed();
        assert_eq!(back, [0, 1, 2, 3, 4]);
        // One after another they would take 5 x 300 ms; overlapped, about 340 ms.
        assert!(took >= latency, "took {took:?}");
        assert!(
            took < Duration::from_millis(1200),
            "latencies added up: {took:?}"
        );
    }

    #[tokio::test]
    async fn jitter_keeps_the_order_of_bytes() {
        let (client, server) = connected().await;
        echo(server);
        let (mut read, mut write, control) = proxied(client);
        let toxic = Toxic::Latency {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(20),
        };
        control.set(Direction::Both, toxic);
        let sent: Vec<u8> = (0..60).collect();
        for byte in &sent {
            write.write_all(&[*byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut back = vec![0; sent.len()];
        timeout(PATIENCE, read.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, sent);
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_follows_the_seed() {
        let latency = Duration::from_millis(50);
        let jitter = Duration::from_millis(10);
        let draw = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..200)
                .map(|_| jittered(&mut rng, latency, jitter))
                .collect::<Vec<_>>()
        };
        let delays = draw(1);
        assert_eq!(delays, draw(1));
        assert_ne!(delays, draw(2));
        assert!(
            delays
                .iter()
                .all(|d| *d >= latency - jitter && *d <= latency + jitter)
        );
        assert!(delays.iter().any(|d| *d < latency) && delays.iter().any(|d| *d > latency));
        // A jitter wider than the latency never goes below zero.
        let mut rng = SmallRng::seed_from_u64(3);
        let (short, wide) = (Duration::from_millis(10), Duration::from_millis(50));
        let delays: Vec<_> = (0..100).map(|_| jittered(&mut rng, short, wide)).collect();
        assert!(delays.iter().all(|d| *d <= short + wide));
        assert!(delays.contains(&Duration::ZERO));
    }

    #[tokio::test]
    async fn bandwidth_throttles_to_the_rate() {
        let (client, server) = connected().await;
        echo(server);
        let (mut read, mut write, control) = proxied(client);
        control.set(
            Direction::Upstream,
            Toxic::Bandwidth {
                bytes_per_sec: 50_000,
            },
        );
        let data = vec![7; 20_000];
        let took = round_trip(&mut read, &mut write, &data).await;
        // 20 kB at 50 kB/s.
        assert!(took >= Duration::from_millis(400), "took {took:?}");
    }

    #[tokio::test]
    async fn blackhole_stops_reading_keeps_the_socket_and_clears() {
        let (client, server) = connected().await;
        let server = echo(server);
        let (mut read, mut write, control) = proxied(client);
        control.set(Direction::Upstream, Toxic::Blackhole);
        // More than the pipe and the read-ahead hold: the writer must block on backpressure.
        let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let to_send = data.clone();
        let writer = tokio::spawn(async move {
            write.write_all(&to_send).await.unwrap();
            write
        });
        let mut first = [0; 1];
        let heard = timeout(Duration::from_millis(300), read.read(&mut first)).await;
        assert!(heard.is_err(), "something came through a blackhole");
        assert!(!writer.is_finished(), "a blackhole kept reading");
        assert!(!server.is_finished(), "the server saw the connection close");
        assert_eq!(control.bytes(), (0, 0));

        control.clear(Direction::Upstream);
        let mut back = vec![0; data.len()];
        timeout(PATIENCE, read.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, data);
        timeout(PATIENCE, writer).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn slicer_sends_small_segments_apart() {
        let (client, mut server) = connected().await;
        let (_read, mut write, control) = proxied(client);
        let delay = Duration::from_millis(150);
        control.set(Direction::Upstream, Toxic::Slicer { size: 10, delay });
        write.write_all(&[1; 30]).await.unwrap();
        let mut reads = Vec::new();
        let mut buf = [0; 1024];
        let start = Instant::now();
        while reads.iter().sum::<usize>() < 30 {
            let n = timeout(PATIENCE, server.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed early after {reads:?}");
            reads.push(n);
        }
        let took = start.elapsed();
        assert!(reads.len() >= 3, "reads: {reads:?}");
        assert!(reads.iter().all(|n| *n <= 10), "reads: {reads:?}");
        assert!(took >= 2 * delay, "took {took:?}");
    }

    #[tokio::test]
    async fn limit_data_closes_after_exactly_that_many_bytes() {
        let (client, mut server) = connected().await;
        let (mut read, mut write, control) = proxied(client);
        control.set(Direction::Upstream, Toxic::LimitData { bytes: 10 });
        let data: Vec<u8> = (0..25).collect();
        write.write_all(&data).await.unwrap();
        let mut got = Vec::new();
        timeout(PATIENCE, server.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, data[..10]);
        let mut rest = Vec::new();
        timeout(PATIENCE, read.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
        assert_eq!(control.bytes(), (10, 0));
    }

    #[tokio::test]
    async fn limit_data_counts_from_when_it_is_set() {
        let (client, server) = connected().await;
        echo(server);
        let (mut read, mut write, control) = proxied(client);
        round_trip(&mut read, &mut write, &[1; 50]).await;
        eventually("echo counted", || control.bytes() == (50, 50)).await;
        control.set(Direction::Downstream, Toxic::LimitData { bytes: 5 });
        write.write_all(&[2; 8]).await.unwrap();
        let mut rest = Vec::new();
        timeout(PATIENCE, read.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rest, [2; 5]);
        eventually("5 more bytes down", || control.bytes().1 == 55).await;
    }

    #[tokio::test]
    async fn reset_sends_rst() {
        let (client, mut server) = connected().await;
        let (mut read, mut write, control) = proxied(client);
        write.write_all(b"hello").await.unwrap();
        let mut buf = [0; 16];
        let n = timeout(PATIENCE, server.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"hello");

        control.set(Direction::Upstream, Toxic::Reset);
        let failed = timeout(PATIENCE, server.read(&mut buf)).await.unwrap();
        assert_eq!(
            failed.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset)
        );
        let device = timeout(PATIENCE, read.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(device, 0, "the device sees EOF");
    }

    #[tokio::test]
    async fn reset_without_a_handle_still_closes() {
        let (client, mut server) = connected().await;
        let (read, write) = tokio::io::split(client);
        let (mut read, _write, control) = proxy(Box::new(read), Box::new(write), None, 1);
        control.set(Direction::Both, Toxic::Reset);
        let mut buf = [0; 16];
        let server_saw = timeout(PATIENCE, server.read(&mut buf)).await.unwrap();
        assert!(matches!(server_saw, Ok(0)), "{server_saw:?}");
        let device = timeout(PATIENCE, read.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(device, 0);
    }

    #[tokio::test]
    async fn downstream_latency_does_not_delay_upstream() {
        let (client, mut server) = connected().await;
        let (mut read, mut write, control) = proxied(client);
        let latency = Duration::from_secs(1);
        let jitter = Duration::ZERO;
        control.set(Direction::Downstream, Toxic::Latency { latency, jitter });
        let start = Instant::now();
        write.write_all(b"up").await.unwrap();
        let mut buf = [0; 2];
        timeout(PATIENCE, server.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let up = start.elapsed();
        server.write_all(b"down").await.unwrap();
        let mut back = [0; 4];
        timeout(PATIENCE, read.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        let total = start.elapsed();
        assert!(up < Duration::from_millis(500), "upstream took {up:?}");
        assert!(total >= latency, "round trip took {total:?}");
    }

    #[tokio::test]
    async fn set_replaces_the_same_kind_and_clear_removes_all() {
        let (client, server) = connected().await;
        echo(server);
        let (mut read, mut write, control) = proxied(client);
        let jitter = Duration::ZERO;
        let slow = Duration::from_secs(30);
        control.set(
            Direction::Upstream,
            Toxic::Latency {
                latency: slow,
                jitter,
            },
        );
        let latency = Duration::from_millis(50);
        control.set(Direction::Upstream, Toxic::Latency { latency, jitter });
        control.set(
            Direction::Upstream,
            Toxic::Slicer {
                size: 2,
                delay: latency,
            },
        );
        // 4 bytes in 2 segments 50 ms apart, after 50 ms of latency.
        let took = round_trip(&mut read, &mut write, b"abcd").await;
        assert!(took >= 2 * latency && took < slow, "took {took:?}");
        control.set(Direction::Upstream, Toxic::Blackhole);
        control.clear(Direction::Both);
        let took = round_trip(&mut read, &mut write, b"efgh").await;
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[tokio::test]
    async fn a_close_passes_through_after_pending_bytes() {
        let (client, server) = connected().await;
        let server = echo(server);
        let (mut read, mut write, control) = proxied(client);
        let latency = Duration::from_millis(100);
        let jitter = Duration::ZERO;
        control.set(Direction::Both, Toxic::Latency { latency, jitter });
        write.write_all(b"bye").await.unwrap();
        write.shutdown().await.unwrap();
        // The echo server stops at EOF and closes; the device gets the echo, then EOF.
        let mut back = Vec::new();
        timeout(PATIENCE, read.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, b"bye");
        timeout(PATIENCE, server).await.unwrap().unwrap();
    }

    #[test]
    fn runs_on_an_actix_arbiter_runtime() {
        actix_rt::System::new().block_on(async {
            let (client, server) = connected().await;
            echo(server);
            let (mut read, mut write, control) = proxied(client);
            let latency = Duration::from_millis(20);
            let jitter = Duration::from_millis(5);
            control.set(Direction::Both, Toxic::Latency { latency, jitter });
            let took = round_trip(&mut read, &mut write, b"actix").await;
            assert!(took >= 2 * (latency - jitter), "took {took:?}");
        });
    }
}
