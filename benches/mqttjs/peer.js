#!/usr/bin/env node
// The MQTT.js side of scripts/bench: closed-loop MQTT 5 request/response on one node process.
//
//   node peer.js --port P [--requesters 10] [--responders 10] [--in-flight 1] [--duration 10]
//                [--qos 1] [--timeout 5]
//
// S responders (`light-1`..) subscribe to `cmnd/light-j/power` and answer each request on its
// Response Topic, Correlation Data copied. R requesters (`phone-1`..) subscribe to
// `resp/phone-i`, then each keeps W requests outstanding (the next goes out as soon as one is
// answered or times out) for D seconds; requester i sends to responder i % S. Every device is
// its own MQTT 5 connection. The topics and payloads are those of fleetsim's bench fleet.
//
// stdout gets exactly one line of key=value pairs (see `report`); diagnostics go to stderr.
// Exit code 0 when the run completed (even with timeouts: they are in the line), 1 on an error.
'use strict';

const mqtt = require('mqtt');

const REQUEST = Buffer.from('ON');
// What a fleetsim light answers to ON, so both tools move the same bytes.
const ANSWER = Buffer.from('{"power":"ON"}');
// fleetsim's default Receive Maximum: without it in CONNECT, Mosquitto caps what it sends a
// client in flight at its max_inflight_messages instead of the client's own limit.
const RECEIVE_MAXIMUM = 100;

function parseArgs(argv) {
  const args = { port: 0, requesters: 10, responders: 10, inFlight: 1, duration: 10, qos: 1, timeout: 5 };
  const names = {
    '--port': 'port', '--requesters': 'requesters', '--responders': 'responders',
    '--in-flight': 'inFlight', '--duration': 'duration', '--qos': 'qos', '--timeout': 'timeout',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    const value = Number(argv[i + 1]);
    if (!key || !Number.isFinite(value) || value < 0) usage(`bad argument: ${argv[i]} ${argv[i + 1] ?? ''}`);
    args[key] = value;
  }
  if (!args.port || args.requesters < 1 || args.responders < 1 || args.inFlight < 1 || args.duration <= 0) {
    usage('--port is required; counts, --in-flight and --duration must be positive');
  }
  return args;
}

function usage(problem) {
  console.error(`peer.js: ${problem}`);
  console.error('usage: node peer.js --port P [--requesters R] [--responders S] [--in-flight W] [--duration SECS] [--qos Q] [--timeout SECS]');
  process.exit(2);
}

function fail(message) {
  console.error(`peer.js: ${message}`);
  process.exit(1);
}

/** Round-trip samples in ms, kept whole: a 10 s run holds a few hundred thousand. */
class Samples {
  constructor() { this.values = new Float64Array(1 << 16); this.length = 0; }
  add(ms) {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = ms;
  }
  /** Nearest-rank percentiles, as fleetsim's HDR histogram reports them (up to its 3 digits). */
  percentiles(...ps) {
    const sorted = this.values.subarray(0, this.length).sort();
    return ps.map((p) => (sorted.length ? sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] : NaN));
  }
}

const stats = { sent: 0, matched: 0, timedOut: 0, late: 0, duplicates: 0, stray: 0, drops: 0 };
const samples = new Samples();
let running = false;
let draining = false;

function connect(args, clientId) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: '127.0.0.1',
      port: args.port,
      protocolVersion: 5,
      clientId,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      properties: { receiveMaximum: RECEIVE_MAXIMUM },
    });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
    client.on('close', () => {
      if (running || draining) stats.drops++;
    });
  });
}

function subscribe(client, topic, qos) {
  return new Promise((resolve, reject) => {
    client.subscribe(topic, { qos }, (err, granted) => {
      if (err) return reject(err);
      if (!granted.length || granted[0].qos >= 0x80) return reject(new Error(`SUBACK refused ${topic}`));
      resolve();
    });
  });
}

async function startResponder(args, n) {
  const id = `light-${n}`;
  const client = await connect(args, id);
  client.on('message', (_topic, _payload, packet) => {
    const props = packet.properties || {};
    if (!props.responseTopic) return;
    client.publish(props.responseTopic, ANSWER, { qos: args.qos, properties: { correlationData: props.correlationData } });
  });
  await subscribe(client, `cmnd/${id}/power`, args.qos);
  return client;
}

/** A requester: its own connection, its pending requests by sequence number. */
class Requester {
  constructor(args, n, client) {
    this.args = args;
    this.client = client;
    this.responseTopic = `resp/phone-${n}`;
    // Requester i targets responder i % S (1-based ids: phone-S goes to light-S).
    this.commandTopic = `cmnd/light-${((n - 1) % args.responders) + 1}/power`;
    this.nextSeq = 0;
    this.pending = new Map(); // seq -> send time (ms)
    this.timedOut = new Set();
    client.on('message', (topic, _payload, packet) => this.onAnswer(topic, packet));
  }

  send() {
    const seq = this.nextSeq++;
    const correlationData = Buffer.allocUnsafe(4);
    correlationData.writeUInt32BE(seq);
    this.pending.set(seq, performance.now());
    stats.sent++;
    this.client.publish(this.commandTopic, REQUEST, {
      qos: this.args.qos,
      properties: { responseTopic: this.responseTopic, correlationData },
    });
  }

  onAnswer(topic, packet) {
    const now = performance.now();
    const data = packet.properties && packet.properties.correlationData;
    if (topic !== this.responseTopic || !data || data.length !== 4) { stats.stray++; return; }
    const seq = data.readUInt32BE(0);
    const sentAt = this.pending.get(seq);
    if (sentAt === undefined) {
      if (this.timedOut.delete(seq)) stats.late++;
      else if (seq < this.nextSeq) stats.duplicates++;
      else stats.stray++;
      return;
    }
    this.pending.delete(seq);
    stats.matched++;
    samples.add(now - sentAt);
    if (running) this.send();
  }

  /** Requests older than the timeout count as timed out; a replacement keeps W outstanding. */
  expire(now) {
    for (const [seq, sentAt] of this.pending) {
      if (now - sentAt < this.args.timeout * 1000) continue;
      this.pending.delete(seq);
      this.timedOut.add(seq);
      stats.timedOut++;
      if (running) this.send();
    }
  }
}

async function startRequester(args, n) {
  const client = await connect(args, `phone-${n}`);
  const requester = new Requester(args, n, client);
  await subscribe(client, requester.responseTopic, args.qos);
  return requester;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const range = (count) => Array.from({ length: count }, (_, i) => i + 1);

function report(args, connectS, elapsedS) {
  const [p50, p99] = samples.percentiles(50, 99);
  const fields = {
    requesters: args.requesters, responders: args.responders, in_flight: args.inFlight, qos: args.qos,
    duration_s: args.duration, connect_s: connectS.toFixed(3), elapsed_s: elapsedS.toFixed(3),
    sent: stats.sent, matched: stats.matched, timed_out: stats.timedOut, late: stats.late,
    duplicates: stats.duplicates, stray: stats.stray, drops: stats.drops,
    rr_s: (stats.matched / args.duration).toFixed(1), p50_ms: p50.toFixed(3), p99_ms: p99.toFixed(3),
  };
  process.stdout.write(`mqttjs ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const launched = performance.now();
  const responders = await Promise.all(range(args.responders).map((n) => startResponder(args, n)));
  const requesters = await Promise.all(range(args.requesters).map((n) => startRequester(args, n)));
  const connectS = (performance.now() - launched) / 1000;

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const r of requesters) r.expire(now);
  }, 100);
  const started = performance.now();
  running = true;
  for (const r of requesters) for (let i = 0; i < args.inFlight; i++) r.send();
  await sleep(args.duration * 1000);
  running = false;
  draining = true;
  // Answers to requests still out are counted, as fleetsim's drain does; expire() ends the wait.
  while (requesters.some((r) => r.pending.size > 0)) await sleep(5);
  const elapsedS = (performance.now() - started) / 1000;
  draining = false;
  clearInterval(sweep);

  report(args, connectS, elapsedS);
  await Promise.all([...responders, ...requesters.map((r) => r.client)].map((c) => c.endAsync()));
  process.exit(0);
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
