//! The actor around a [`Device`]: its socket (a framed reader and writer) and its one timer,
//! nothing else. Everything that happens is handed to the device, and the device's actions are
//! carried out here.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use futures_util::{Stream, StreamExt};
use tokio::time::Sleep;
use tokio_util::codec::FramedRead;

use super::core::{Action, CONNECT_TIMEOUT, Device, DeviceSetup, Out};
use crate::faults::Injection;
use crate::mqtt::{CodecError, Inbound, InboundCodec, Outbound};
use crate::shared::Shared;
use crate::supervisor::WillFact;
use crate::tally::ShardTally;
use crate::transport::toxic::ToxicControl;
use crate::transport::{BoxRead, BoxWrite, Endpoint};

/// Read buffer to start with; it grows for larger packets. Small, because fleets are large.
const READ_BUFFER: usize = 512;

type Writer = FramedWrite<Outbound, BoxWrite, InboundCodec>;

/// A decoded packet (or a frame stepped over), tagged with the connection it came from.
pub struct Frame {
    generation: u64,
    frame: Result<Inbound, CodecError>,
}

/// When the device wants its next tick, shared between the actor (which sets it) and the one
/// timer stream (which sleeps until then). Moving it earlier wakes the actor's task so the
/// stream re-arms; moving it later costs nothing until the old time.
#[derive(Default)]
struct Alarm {
    at: Cell<Option<Instant>>,
    waker: Cell<Option<Waker>>,
}

struct AlarmStream {
    alarm: Rc<Alarm>,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Stream for AlarmStream {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<()>> {
        let this = &mut *self;
        match this.alarm.waker.take() {
            Some(waker) if waker.will_wake(cx.waker()) => this.alarm.waker.set(Some(waker)),
            _ => this.alarm.waker.set(Some(cx.waker().clone())),
        }
        let want = this.alarm.at.get();
        if want != this.armed {
            if let Some(at) = want {
                this.sleep.as_mut().reset(at.into());
            }
            this.armed = want;
        }
        if this.armed.is_none() {
            return Poll::Pending;
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.armed = None;
                this.alarm.at.set(None);
                Poll::Ready(Some(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The alarm went off.
struct Wakeup;

thread_local! {
    /// The actions of the event being handled: one buffer for all the devices of a thread
    /// (they run one at a time), not one kept by every device.
    static SCRATCH: Cell<Vec<Action>> = const { Cell::new(Vec::new()) };
}

pub struct DeviceActor {
    device: Device,
    endpoint: Endpoint,
    tally: ShardTally,
    shared: Arc<Shared>,
    facts: Option<Recipient<WillFact>>,
    /// The connection the reader and writer belong to.
    generation: u64,
    reader: Option<SpawnHandle>,
    writer: Option<Writer>,
    toxics: Option<ToxicControl>,
    alarm: Rc<Alarm>,
    /// The goodbye DISCONNECT is written: stop when the broker closes the connection.
    leaving: bool,
}

impl DeviceActor {
    pub fn new(
        setup: DeviceSetup,
        endpoint: Endpoint,
        tally: ShardTally,
        shared: Arc<Shared>,
        facts: Option<Recipient<WillFact>>,
    ) -> Self {
        Self {
            device: Device::new(setup),
            endpoint,
            tally,
            shared,
            facts,
            generation: 0,
            reader: None,
            writer: None,
            toxics: None,
            alarm: Rc::default(),
            leaving: false,
        }
    }

    /// Hands an event to the device, then carries out what it asks.
    fn step(&mut self, ctx: &mut Context<Self>, event: impl FnOnce(&mut Device, &mut Out<'_>)) {
        let mut actions = SCRATCH.take();
        {
            let mut tally = self.tally.lock();
            let mut out = Out {
                actions: &mut actions,
                tally: &mut tally,
                shared: &self.shared,
            };
            event(&mut self.device, &mut out);
        }
        for action in actions.drain(..) {
            self.act(action, ctx);
        }
        SCRATCH.set(actions);
        self.rearm();
    }

    fn rearm(&mut self) {
        let next = self.device.next_wakeup();
        let current = self.alarm.at.get();
        if next == current {
            return;
        }
        self.alarm.at.set(next);
        let earlier = match (next, current) {
            (Some(next), Some(current)) => next < current,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier && let Some(waker) = self.alarm.waker.take() {
            waker.wake_by_ref();
            self.alarm.waker.set(Some(waker));
        }
    }

    fn act(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Dial {
                generation,
                proxied,
                seed,
            } => self.dial(generation, proxied, seed, ctx),
            Action::Write(item) => {
                if let Some(writer) = &mut self.writer {
                    writer.write(item);
                }
            }
            Action::Close => {
                if let Some(mut writer) = self.writer.take() {
                    // The writer's task flushes, shuts the socket down and calls `finished`;
                    // dropping our handle to it does not cancel it.
                    writer.close();
                }
                self.forget(ctx);
            }
            Action::Drop => {
                if let Some(writer) = self.writer.take() {
                    ctx.cancel_future(writer.handle());
                }
                self.forget(ctx);
            }
            Action::Leave => {
                // The writer flushes the DISCONNECT on its own; the reader sees the broker's
                // close. The runner waits for every device to leave, for a bounded time.
                self.leaving = true;
                self.shared.progress.leaving();
            }
            Action::Toxic(direction, toxic) => {
                if let Some(control) = &self.toxics {
                    match toxic {
                        Some(toxic) => control.set(direction, toxic),
                        None => control.clear(direction),
                    }
                }
            }
            Action::Tell(fact) => {
                if let Some(facts) = &self.facts {
                    facts.do_send(fact);
                }
            }
            Action::Stop => ctx.stop(),
        }
    }

    /// The socket goes: stop reading it (the writer was dealt with by the caller).
    fn forget(&mut self, ctx: &mut Context<Self>) {
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
        }
        self.toxics = None;
        self.generation = 0;
    }

    fn dial(&mut self, generation: u64, proxied: bool, seed: u64, ctx: &mut Context<Self>) {
        let endpoint = self.endpoint.clone();
        // TCP (TCP_NODELAY set: without it a small answer can wait ~40 ms for a delayed ACK),
        // then the TLS handshake for mqtts://; through a network-fault proxy when one may act.
        let attempt = async move {
            if proxied {
                let (read, write, control) =
                    endpoint.connect_proxied(CONNECT_TIMEOUT, seed).await?;
                Ok((read, write, Some(control)))
            } else {
                let (read, write) = endpoint.connect(CONNECT_TIMEOUT).await?;
                Ok::<_, crate::transport::ConnectError>((read, write, None))
            }
        };
        ctx.spawn(attempt.into_actor(self).map(move |result, act, ctx| {
            if !act.device.expects(generation) {
                // Given up on meanwhile (timed out, a fault, the end of the run): the socket
                // just goes.
                return;
            }
            let result = match result {
                Ok((read, write, control)) => {
                    act.attach(generation, read, write, control, ctx);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
            let now = Instant::now();
            act.step(ctx, |device, out| {
                device.dialed(generation, result, now, out)
            });
        }));
    }

    fn attach(
        &mut self,
        generation: u64,
        read: BoxRead,
        write: BoxWrite,
        control: Option<ToxicControl>,
        ctx: &mut Context<Self>,
    ) {
        // An older connection the device has given up on meanwhile: let it go.
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
        }
        let frames =
            FramedRead::with_capacity(read, InboundCodec::new(super::MAX_PACKET), READ_BUFFER)
                .map(move |frame| Frame { generation, frame });
        self.reader = Some(ctx.add_stream(frames));
        self.writer = Some(FramedWrite::new(
            write,
            InboundCodec::new(super::MAX_PACKET),
            ctx,
        ));
        self.toxics = control;
        self.generation = generation;
    }
}

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let stream = AlarmStream {
            alarm: self.alarm.clone(),
            sleep: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            armed: None,
        };
        ctx.add_stream(stream.map(|()| Wakeup));
        let now = Instant::now();
        self.step(ctx, |device, out| device.start(now, out));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.leaving {
            self.shared.progress.left();
        }
    }
}

impl StreamHandler<Wakeup> for DeviceActor {
    fn handle(&mut self, _: Wakeup, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.step(ctx, |device, out| device.tick(now, out));
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The alarm never ends; nothing to do if it did.
    }
}

impl StreamHandler<Frame> for DeviceActor {
    fn handle(&mut self, item: Frame, ctx: &mut Context<Self>) {
        if self.leaving {
            // Nothing more is read after the goodbye; a broken frame ends it like a close.
            if item.frame.is_err() {
                ctx.stop();
            }
            return;
        }
        let now = Instant::now();
        let generation = item.generation;
        match item.frame {
            Ok(frame) => self.step(ctx, |device, out| device.frame(generation, frame, now, out)),
            Err(e) => self.step(ctx, |device, out| {
                device.closed(generation, Some(e), now, out)
            }),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            // The broker closed the connection after our goodbye.
            ctx.stop();
            return;
        }
        // The default would stop the actor; a closed socket is a reconnect, not an end. Only
        // the current connection's end matters: an older reader was cancelled.
        if self.reader.take().is_some() {
            let (generation, now) = (self.generation, Instant::now());
            self.step(ctx, |device, out| device.closed(generation, None, now, out));
        }
    }
}

impl WriteHandler<CodecError> for DeviceActor {
    fn error(&mut self, err: CodecError, ctx: &mut Context<Self>) -> Running {
        if self.leaving {
            ctx.stop();
            return Running::Stop;
        }
        // This runs inside the writer's own poll: touching (or dropping) the writer here would
        // borrow it twice. Tell the device on the next turn instead.
        let generation = self.generation;
        ctx.run_later(std::time::Duration::ZERO, move |act, ctx| {
            let now = Instant::now();
            act.step(ctx, |device, out| {
                device.closed(generation, Some(err), now, out)
            });
        });
        // Stop this writer: the connection is gone, and a new one gets a new writer.
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            // The writer ended (the socket was shut down): nothing more to wait for.
            ctx.stop();
        }
    }
}

// ----- what the runner tells a device ------------------------------------------------------

/// The run starts: every device is connected and subscribed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Begin;

impl Handler<Begin> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Begin, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.step(ctx, |device, out| device.begin(now, out));
    }
}

/// The run's duration is over: send no new requests or readings, but keep answering and
/// waiting for answers to requests in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wind;

impl Handler<Wind> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Wind, ctx: &mut Context<Self>) {
        self.step(ctx, |device, out| device.wind(out));
    }
}

/// The run is over: say goodbye with DISCONNECT 0x00, ending the session, and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.step(ctx, |device, out| device.shutdown(now, out));
    }
}

/// Inject a fault now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Inject(pub Injection);

impl Handler<Inject> for DeviceActor {
    type Result = ();

    fn handle(&mut self, fault: Inject, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.step(ctx, |device, out| device.inject(fault.0, now, out));
    }
}
