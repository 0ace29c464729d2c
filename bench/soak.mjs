// soak.mjs — long-running load with clients that leave (issue 11); run it
// through bench/soak. N slots each send one chat request after another
// until --duration ends: most streaming, a share non-streaming, a share cut
// at a random point (half closing the socket — FIN —, half resetting it —
// RST). Every request that is not cut must end properly: HTTP 200, valid
// JSON, a finish_reason, and `data: [DONE]` last for streams. After the load
// the server must hold no KV blocks and no running or waiting requests.
//
// Prints once per --interval and at the end: completed / failed / cut,
// requests in flight, the server's gauges and its RSS (VmRSS, needs the pid:
// known when the soak starts the server, found from the listening socket
// for --url on this machine, or given with --pid).
// Exit status 1 when a request that was not cut failed, the server died, or
// KV blocks / requests are not back to 0 after the load.
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseOptions, startServer, stopServer, origin, rssMiB, listenerPid, metrics, rng, pct } from './soak-server.mjs';

const USAGE = `usage: bench/soak (--url URL | --model DIR [--bin CINFER]) [options]

  --duration S           seconds of load (default 60; the acceptance run is 600)
  --streams N            concurrent requests (default 256)
  --disconnect-share F   share of requests cut at a random point, half FIN half RST (default 0.25)
  --nonstream-share F    share of non-streaming requests (default 0.1)
  --max-tokens N         max_tokens of each request: uniform in [N/4, N], ignore_eos (default 128)
  --interval S           seconds between progress lines (default 10)
  --drain-timeout S      after the load, how long requests in flight may take (default 300)
  --api-key KEY          sent as Authorization: Bearer KEY (and given to a server the soak starts)
  --seed N               random seed (default 1)
  --url URL              target a running server (http://127.0.0.1:8000 or .../v1)
  --pid N                that server's pid, for RSS (default: found from its listening socket)
  --model DIR            start \`cinfer serve DIR\` on a free loopback port instead, and stop it at the end
  --bin PATH             the cinfer binary (default build/cinfer in this repository)
  --max-num-seqs N       for the started server (default 64: the rest queue)
  --max-model-len N      for the started server (default 2048)
  --kv-cache-memory GIB  for the started server (default 0.5)
  --threads N            for the started server (default: the server's)`;

const opt = parseOptions(process.argv.slice(2), {
  duration: 60, streams: 256, disconnectShare: 0.25, nonstreamShare: 0.1, maxTokens: 128, interval: 10, drainTimeout: 300,
  apiKey: '', seed: 1, url: '', pid: 0, model: '', bin: fileURLToPath(new URL('../build/cinfer', import.meta.url)), maxNumSeqs: 64, maxModelLen: 2048, kvCacheMemory: 0.5, threads: 0,
}, USAGE);
if (!opt.url === !opt.model) { console.error(`give exactly one of --url and --model\n\n${USAGE}`); process.exit(2); }
if (!(opt.streams >= 1 && opt.duration > 0 && opt.maxTokens >= 1 && opt.disconnectShare >= 0 && opt.disconnectShare <= 1 &&
      opt.nonstreamShare >= 0 && opt.nonstreamShare <= 1)) { console.error(`option out of range\n\n${USAGE}`); process.exit(2); }
const auth = opt.apiKey ? { Authorization: `Bearer ${opt.apiKey}` } : {};

// ------------------------------------------------------------- the server
let srv = null, base, pid;
if (opt.model) {
  const extra = ['--max-num-seqs', String(opt.maxNumSeqs), '--max-model-len', String(opt.maxModelLen),
    '--kv-cache-memory', String(opt.kvCacheMemory), '--served-model-name', 'soak'];
  if (opt.threads) extra.push('--threads', String(opt.threads));
  if (opt.apiKey) extra.push('--api-key', opt.apiKey);
  srv = await startServer(opt.bin, opt.model, extra).catch((e) => { console.error(`soak: ${e.message}`); process.exit(1); });
  base = srv.base;
  pid = srv.pid;
  console.log(`started: ${srv.args}`);
} else {
  base = origin(opt.url);
  const u = new URL(base);
  pid = opt.pid || (['127.0.0.1', 'localhost'].includes(u.hostname) || u.hostname.startsWith('127.') ? listenerPid(Number(u.port || 80)) : null);
  if (!pid) console.log('no server pid (give --pid): RSS is not reported');
}
const { hostname, port } = new URL(base);
const model = (await (await fetch(`${base}/v1/models`, { headers: auth })).json()).data[0].id;

// ------------------------------------------------------------- requests
const random = rng(opt.seed);
const WORDS = 'the a lighthouse keeper river stone quiet engine cloud paper violet seven bright market window winter garden signal copper harbour letter'.split(' ');
const SYSTEM = `You are a helpful assistant. ${'Answer carefully and completely. '.repeat(8)}`; // a shared prefix
const sentence = (n) => Array.from({ length: n }, () => WORDS[random.int(0, WORDS.length - 1)]).join(' ');

const stats = { completed: 0, failed: 0, cut: 0, inflight: 0, started: 0, reasons: {}, samples: [], cutFin: 0, cutRst: 0 };
const latency = { stream: [], plain: [] };
function failed(reason, detail) {
  stats.failed++;
  stats.reasons[reason] = (stats.reasons[reason] || 0) + 1;
  if (stats.samples.length < 10) stats.samples.push(`${reason}: ${detail}`.slice(0, 300));
}

// Checks a finished stream: every event valid JSON, a finish_reason, [DONE] last.
function streamProblem(text) {
  const events = text.split('\n\n').filter((e) => e.trim());
  if (!events.length) return ['no_events', 'empty stream'];
  let finish = false;
  for (let i = 0; i < events.length; i++) {
    const data = events[i].split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    if (data === '[DONE]') {
      if (i !== events.length - 1) return ['done_not_last', `[DONE] is event ${i} of ${events.length}`];
      return finish ? null : ['no_finish_reason', events.slice(-2).join(' | ')];
    }
    let j;
    try { j = JSON.parse(data); } catch { return ['malformed_json', data.slice(0, 200)]; }
    if (j.error) return ['error_event', JSON.stringify(j.error)];
    if (j.choices?.some((c) => c.finish_reason)) finish = true;
  }
  return ['no_done', events[events.length - 1].slice(0, 200)];
}

function plainProblem(text) {
  let j;
  try { j = JSON.parse(text); } catch { return ['malformed_json', text.slice(0, 200)]; }
  if (!j.choices?.[0]?.finish_reason || typeof j.choices[0].message?.content !== 'string') return ['no_finish_reason', text.slice(0, 200)];
  return null;
}

// One request. `cutAt`: null = never; for streams the number of events after
// which to cut (0 = right after sending), for non-streaming a delay in ms.
function one() {
  const stream = random() >= opt.nonstreamShare;
  const cut = random() < opt.disconnectShare ? (random() < 0.5 ? 'fin' : 'rst') : null;
  const maxTokens = random.int(Math.max(1, Math.floor(opt.maxTokens / 4)), opt.maxTokens);
  const cutAt = !cut ? null : stream ? random.int(0, maxTokens) : random.int(0, 3000);
  const body = JSON.stringify({ model, stream, max_tokens: maxTokens, ignore_eos: true, temperature: 0.7,
    messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: sentence(random.int(5, 40)) }] });
  const t0 = performance.now();
  stats.started++;
  stats.inflight++;
  return new Promise((resolve) => {
    let settled = false, timer = null, events = 0;
    const settle = (kind, reason, detail) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stats.inflight--;
      if (kind === 'ok') { stats.completed++; (stream ? latency.stream : latency.plain).push(performance.now() - t0); }
      else if (kind === 'cut') { stats.cut++; if (cut === 'fin') stats.cutFin++; else stats.cutRst++; }
      else failed(reason, detail);
      resolve();
    };
    const doCut = () => {
      const s = req.socket;
      settle('cut');
      if (!s) return req.destroy();
      if (cut === 'rst') s.resetAndDestroy(); else s.destroy(); // destroy: close(2), the kernel sends FIN
    };
    const req = http.request({ host: hostname, port, path: '/v1/chat/completions', method: 'POST', agent: false,
      headers: { ...auth, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '', scanned = 0;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (!stream || cutAt === null) return;
        let k;
        while ((k = text.indexOf('\n\n', scanned)) >= 0) { scanned = k + 2; events++; }
        if (events >= cutAt) doCut();
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return settle('fail', `http_${res.statusCode}`, text.slice(0, 200));
        const p = stream ? streamProblem(text) : plainProblem(text);
        return p ? settle('fail', p[0], p[1]) : settle('ok');
      });
      res.on('error', (e) => settle('fail', 'connection', e.code || e.message));
      res.on('aborted', () => settle('fail', 'connection', 'response aborted'));
    });
    req.on('error', (e) => settle('fail', 'connection', e.code || e.message));
    req.end(body);
    if (cutAt !== null && (!stream || cutAt === 0)) timer = setTimeout(doCut, stream ? random.int(0, 100) : cutAt);
  });
}

// ------------------------------------------------------------- progress
const t0 = Date.now();
const secs = () => (Date.now() - t0) / 1000;
const rssSeries = [];
let lastGauges = null;
async function gauges() {
  try { lastGauges = await metrics(base, auth); } catch (e) { lastGauges = { error: e.message }; }
  return lastGauges;
}
function line(tag) {
  const g = lastGauges || {};
  const rss = pid ? rssMiB(pid) : NaN;
  if (pid) rssSeries.push({ t: secs(), rss });
  const gs = g.error ? `/metrics: ${g.error}` : `running ${g.running} waiting ${g.waiting} kv ${g.kv}`;
  console.log(`${tag.padStart(6)} ${secs().toFixed(0).padStart(5)} s  completed ${stats.completed}  failed ${stats.failed}  cut ${stats.cut}` +
    `  in flight ${stats.inflight} | ${gs}${pid ? ` | RSS ${rss.toFixed(1)} MiB` : ''}`);
}
const serverDead = () => srv && !srv.alive();
const ticker = setInterval(async () => { await gauges(); line('load'); }, opt.interval * 1000);

console.log(`soak: ${opt.streams} concurrent requests for ${opt.duration} s, ${(opt.disconnectShare * 100).toFixed(0)} % cut (FIN/RST), ` +
  `${(opt.nonstreamShare * 100).toFixed(0)} % non-streaming, max_tokens ${Math.max(1, Math.floor(opt.maxTokens / 4))}..${opt.maxTokens}, model '${model}' at ${base}`);
await gauges();
line('start');

// ------------------------------------------------------------- load
const deadline = t0 + opt.duration * 1000;
async function slot() {
  while (Date.now() < deadline && !serverDead()) await one();
}
const slots = Promise.all(Array.from({ length: opt.streams }, slot));
// after the deadline no slot starts a request; those in flight get --drain-timeout
let drained = await Promise.race([slots.then(() => true),
  new Promise((r) => setTimeout(() => r(false), (opt.duration + opt.drainTimeout) * 1000))]);
clearInterval(ticker);
if (!drained) console.log(`${stats.inflight} requests still in flight after the ${opt.drainTimeout} s drain: counted as failed`);
const stuck = drained ? 0 : stats.inflight;
for (let i = 0; i < stuck; i++) failed('not_finished', `in flight ${opt.drainTimeout} s after the load`);

// ------------------------------------------------------------- after the load
// the server drops what the cut clients left: poll its gauges (bounded)
let idle = false;
for (let i = 0; i < 300 && !serverDead(); i++) {
  const g = await gauges();
  if (!g.error && g.running === 0 && g.waiting === 0 && g.kv === 0) { idle = true; break; }
  await new Promise((r) => setTimeout(r, 100));
}
if (!serverDead()) line('after');

const lat = (xs) => `p50 ${pct(xs, 0.5).toFixed(0)} ms, p99 ${pct(xs, 0.99).toFixed(0)} ms`;
console.log(`\nrequests: ${stats.started} started, ${stats.completed} completed, ${stats.failed} failed, ${stats.cut} cut (${stats.cutFin} FIN, ${stats.cutRst} RST)`);
if (latency.stream.length) console.log(`latency of completed streams: ${lat(latency.stream)}; non-streaming: ${latency.plain.length ? lat(latency.plain) : '-'}`);
if (stats.failed) {
  console.log(`failures by reason: ${JSON.stringify(stats.reasons)}`);
  for (const s of stats.samples) console.log(`  ${s}`);
}
const g = serverDead() ? { running: '?', waiting: '?', kv: '?', kvTotal: NaN, preemptions: '?' } : lastGauges || {};
console.log(`after the load: running ${g.running}, waiting ${g.waiting}, KV blocks in use ${g.kv}${Number.isNaN(g.kvTotal) ? '' : ` of ${g.kvTotal}`}` +
  `, preemptions ${g.preemptions}${idle ? '' : '  <-- NOT back to 0 within 30 s'}`);
if (rssSeries.length) {
  const ok = rssSeries.filter((r) => !Number.isNaN(r.rss));
  const ref = ok.find((r) => r.t >= 60) || ok[Math.min(1, ok.length - 1)];
  const last = ok[ok.length - 1];
  if (ref && last) {
    console.log(`RSS MiB: ${ok.map((r) => `${r.t.toFixed(0)}s ${r.rss.toFixed(0)}`).join(', ')}`);
    console.log(`RSS at ${ref.t.toFixed(0)} s ${ref.rss.toFixed(1)} MiB, at the end ${last.rss.toFixed(1)} MiB: ` +
      `${((last.rss / ref.rss - 1) * 100).toFixed(1)} % (acceptance: within ±5 % of the value after the first minute)`);
  }
}
let dead = serverDead();
if (srv) {
  if (dead) console.log(`SERVER DIED (${srv.exit().code ?? srv.exit().signal}); stderr tail:\n${srv.log().slice(-3000)}`);
  else {
    const e = await stopServer(srv);
    console.log(`server stopped: SIGTERM -> exit ${e.code ?? e.signal} after ${e.seconds.toFixed(2)} s${e.killed ? ' (SIGKILLed: did not exit in 40 s)' : ''}`);
  }
} else if (pid && Number.isNaN(rssMiB(pid))) { dead = true; console.log('SERVER GONE (its pid no longer exists)'); }
const ok = stats.failed === 0 && idle && !dead;
console.log(ok ? 'PASS soak' : 'FAIL soak');
process.exit(ok ? 0 : 1);
