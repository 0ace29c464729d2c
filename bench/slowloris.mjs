// slowloris.mjs — can slow clients starve real ones? (issue 11)
// Opens --connections sockets from one loopback source address (127.0.0.2
// when it can be bound) that send a request's headers one byte every
// --byte-interval seconds and never finish them; a socket the server closes
// is opened again, as an attacker would. Meanwhile a legitimate client from
// 127.0.0.1 sends short chat completions one after another and records
// successes, failures and latency. Loopback targets only.
//
//   node bench/slowloris.mjs --model /tmp/small [--bin build/cinfer]   # starts its own server
//   node bench/slowloris.mjs --url http://127.0.0.1:8000 [--api-key KEY]
//
// Prints per --interval and at the end: slow connections held (open now and
// the most at once), how many the server closed, legitimate successes /
// failures and latency p50/p99 (before the attack, as a baseline, and during
// it). Exit status 1 when the legitimate client failed during the attack or
// never succeeded.
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseOptions, startServer, stopServer, origin, rng, pct } from './soak-server.mjs';

const USAGE = `usage: node bench/slowloris.mjs (--url URL | --model DIR [--bin CINFER]) [options]

  --connections N     slow connections to hold (default 2000)
  --duration S        seconds to hold them (default 30)
  --byte-interval S   seconds between the bytes of each slow connection (default 3)
  --source ADDR       their source address (default 127.0.0.2; 127.0.0.1 when it cannot be bound)
  --interval S        seconds between progress lines (default 5)
  --timeout S         the legitimate client's limit per request (default 10)
  --max-tokens N      of its requests (default 4)
  --api-key KEY       sent by the legitimate client (and given to a server this script starts)
  --url URL           target a running server on 127.0.0.0/8
  --model DIR         start \`cinfer serve DIR\` on a free loopback port instead, and stop it at the end
  --bin PATH          the cinfer binary (default build/cinfer in this repository)
  --threads N         for the started server (default: the server's)`;

const opt = parseOptions(process.argv.slice(2), {
  connections: 2000, duration: 30, byteInterval: 3, source: '127.0.0.2', interval: 5, timeout: 10, maxTokens: 4,
  apiKey: '', url: '', model: '', bin: fileURLToPath(new URL('../build/cinfer', import.meta.url)), threads: 0,
}, USAGE);
if (!opt.url === !opt.model) { console.error(`give exactly one of --url and --model\n\n${USAGE}`); process.exit(2); }
const auth = opt.apiKey ? { Authorization: `Bearer ${opt.apiKey}` } : {};

let srv = null, base;
if (opt.model) {
  const extra = ['--max-num-seqs', '8', '--max-model-len', '1024', '--kv-cache-memory', '0.25', '--served-model-name', 'slowloris'];
  if (opt.threads) extra.push('--threads', String(opt.threads));
  if (opt.apiKey) extra.push('--api-key', opt.apiKey);
  srv = await startServer(opt.bin, opt.model, extra).catch((e) => { console.error(`slowloris: ${e.message}`); process.exit(1); });
  base = srv.base;
  console.log(`started: ${srv.args}`);
} else base = origin(opt.url);
const { hostname, port } = new URL(base);
if (!net.isIPv4(hostname) || !hostname.startsWith('127.')) {
  console.error(`slowloris: only loopback targets (127.0.0.0/8), not ${hostname}`);
  process.exit(2);
}

// the slow clients' source address: 127.0.0.2 unless it cannot be bound
const source = await new Promise((resolve) => {
  const probe = net.createServer();
  probe.once('error', () => resolve('127.0.0.1'));
  probe.listen(0, opt.source, () => probe.close(() => resolve(opt.source)));
});
if (source !== opt.source) console.log(`cannot bind ${opt.source}: the slow connections come from ${source} too`);

// ------------------------------------------------------------- legitimate client
const model = (await (await fetch(`${base}/v1/models`, { headers: auth })).json()).data[0].id;
const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: opt.maxTokens, temperature: 0 });
function legit() {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const done = (ok, why) => resolve({ ok, why, ms: performance.now() - t0 });
    const req = http.request({ host: hostname, port, path: '/v1/chat/completions', method: 'POST', agent: false, localAddress: '127.0.0.1',
      headers: { ...auth, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let j = null;
        try { j = JSON.parse(text); } catch { /* below */ }
        done(res.statusCode === 200 && !!j?.choices?.[0]?.finish_reason, `HTTP ${res.statusCode} ${text.slice(0, 120)}`);
      });
      res.on('error', (e) => done(false, e.code || e.message));
    });
    req.setTimeout(opt.timeout * 1000, () => req.destroy(Object.assign(new Error('timeout'), { code: `no answer in ${opt.timeout} s` })));
    req.on('error', (e) => done(false, e.code || e.message));
    req.end(body);
  });
}
const baseline = [];
for (let i = 0; i < 10; i++) {
  const r = await legit();
  if (!r.ok) { console.error(`slowloris: the server does not answer before the attack: ${r.why}`); if (srv) await stopServer(srv); process.exit(1); }
  baseline.push(r.ms);
}
console.log(`baseline (no attack): 10 requests, latency p50 ${pct(baseline, 0.5).toFixed(0)} ms, max ${Math.max(...baseline).toFixed(0)} ms`);

// ------------------------------------------------------------- slow connections
const HEADERS = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
  `X-Slow: ${'s'.repeat(4000)}\r\n`; // never ends with the blank line
const random = rng(7);
const slow = { open: 0, maxOpen: 0, opened: 0, closedByServer: 0, connectErrors: 0, errors: {} };
const sockets = new Set();
let stopping = false;
function openSlow() {
  if (stopping) return;
  slow.opened++;
  const s = net.connect({ host: hostname, port, localAddress: source });
  let pos = 0, timer = null, connected = false;
  sockets.add(s);
  s.setNoDelay(true);
  s.on('connect', () => {
    connected = true;
    s.connectedAt = Date.now();
    slow.open++;
    slow.maxOpen = Math.max(slow.maxOpen, slow.open);
    const drip = () => { s.write(HEADERS[pos]); pos = (pos + 1) % HEADERS.length; };
    drip();
    // spread the bytes of all connections over the interval
    timer = setTimeout(function next() { drip(); timer = setTimeout(next, opt.byteInterval * 1000); }, random() * opt.byteInterval * 1000);
  });
  s.on('data', () => {}); // an answer (408, 431, ...) is read and ignored
  s.on('error', (e) => { slow.errors[e.code || e.message] = (slow.errors[e.code || e.message] || 0) + 1; if (!connected) slow.connectErrors++; });
  s.on('close', () => {
    clearTimeout(timer);
    sockets.delete(s);
    if (connected) slow.open--;
    if (stopping) return;
    if (connected) slow.closedByServer++;
    // reopen, as an attacker does, after a pause so that a server resetting
    // at once does not turn this into a connect flood
    setTimeout(openSlow, 100 + random() * 900);
  });
}

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(0).padStart(4);
const during = { ok: 0, fail: 0, ms: [], why: {} };
// held: open for at least 10 s (a socket the server resets at once is open for a moment only)
const held = () => { let n = 0; const t = Date.now() - 10000; for (const s of sockets) if (s.connectedAt && s.connectedAt <= t) n++; return n; };
const progress = () => console.log(`${secs()} s  slow: ${slow.open} open, ${held()} held >= 10 s (max open ${slow.maxOpen}), ${slow.opened} opened, ${slow.closedByServer} closed by the server` +
  `, ${slow.connectErrors} failed connects | legitimate: ${during.ok} ok, ${during.fail} failed, p50 ${pct(during.ms, 0.5).toFixed(0)} ms`);
console.log(`opening ${opt.connections} slow connections from ${source}, one byte per ${opt.byteInterval} s each, for ${opt.duration} s`);
// open in batches so the kernel's accept queue is not the only thing measured
for (let i = 0; i < opt.connections; i++) {
  openSlow();
  if (i % 100 === 99) await new Promise((r) => setTimeout(r, 50));
}
const ticker = setInterval(progress, opt.interval * 1000);
const deadline = t0 + opt.duration * 1000;
while (Date.now() < deadline && (!srv || srv.alive())) {
  const r = await legit();
  if (r.ok) { during.ok++; during.ms.push(r.ms); } else { during.fail++; during.why[r.why] = (during.why[r.why] || 0) + 1; }
  if (!r.ok) await new Promise((res) => setTimeout(res, 100)); // a refused connect returns at once: do not spin
}
clearInterval(ticker);
progress();
const heldAtEnd = held();
stopping = true;
for (const s of sockets) s.destroy();

console.log(`\nslow connections: ${opt.connections} wanted, at most ${slow.maxOpen} open at once, ${heldAtEnd} held >= 10 s at the end, ` +
  `${slow.closedByServer} closed by the server, ${slow.connectErrors} failed connects ${JSON.stringify(slow.errors)}`);
console.log(`legitimate client during the attack: ${during.ok} ok, ${during.fail} failed` +
  (during.ms.length ? `, latency p50 ${pct(during.ms, 0.5).toFixed(0)} ms, p99 ${pct(during.ms, 0.99).toFixed(0)} ms` : ''));
for (const [why, n] of Object.entries(during.why).slice(0, 8)) console.log(`  ${n} x ${why}`);
const survived = !srv || srv.alive();
if (srv) {
  if (!srv.alive()) console.log(`SERVER DIED (${srv.exit().code ?? srv.exit().signal}):\n${srv.log().slice(-2000)}`);
  else await stopServer(srv, 10000);
}
const ok = during.ok > 0 && during.fail === 0 && survived;
console.log(ok ? 'PASS slowloris' : 'FAIL slowloris');
process.exit(ok ? 0 : 1);
