// lifecycle_test.mjs — request lifecycle and hostile-input checks against a
// real `cinfer serve` (issue 11): a client that leaves stops its request,
// SIGTERM drains instead of cutting, every error is OpenAI-shaped JSON, the
// waiting queue is bounded, an over-long prompt reports its real length, a
// half-closed client still gets its answer.
//
//   node tests/server/lifecycle_test.mjs CINFER_BIN MODEL_DIR
//
// MODEL_DIR is a generated tiny model (`cinfer make-test-model DIR --shape
// tiny --dtype f32 --format hf --tokenizer ...`). The script starts its own
// servers on free loopback ports (--port 0) and kills them at the end.
// Prints PASS/FAIL/SKIP per check and `N passed, N failed`; exits 1 on any
// FAIL. Options that may not exist yet (--shutdown-timeout, a waiting-queue
// limit) are detected from `cinfer serve --help`; their checks SKIP without.
//
// No sleeps as synchronisation: every wait polls a condition (/metrics, a
// socket event) with a bounded number of iterations. The "was the request
// really stopped" checks compare generated-token counters with max_tokens
// (ignore_eos), not times.
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';

const [bin, modelDir] = process.argv.slice(2);
if (!bin || !modelDir) {
  console.error('usage: node lifecycle_test.mjs CINFER_BIN MODEL_DIR');
  process.exit(2);
}
const KEY = 'sk-lifecycle';
const MODEL = 'tiny';
const AUTH = { Authorization: `Bearer ${KEY}` };
const LONG = 6000; // max_tokens of the requests that are cut: far more than a disconnect lets run
const MAX_LEN = 8192;

const help = execFileSync(bin, ['serve', '--help'], { encoding: 'utf8' });
const helpOption = (re) => { const m = help.match(re); return m ? m[1] : null; };
const SHUTDOWN_OPT = helpOption(/(--shutdown-timeout)\b/);
// the waiting-queue limit: whatever the server calls it (--max-waiting, --max-queue-len, ...)
const QUEUE_OPT = helpOption(/(--max-[a-z-]*(?:wait|queue)[a-z-]*)\b/) ?? helpOption(/(--[a-z-]*(?:waiting|queue)[a-z-]*)\b/);

// ------------------------------------------------------------- reporting
let passed = 0, failed = 0;
const pass = (name, detail = '') => { passed++; console.log(`PASS ${name}${detail ? ` (${detail})` : ''}`); };
const fail = (name, why) => { failed++; console.log(`FAIL ${name}: ${why}`); };
const skip = (name, why) => console.log(`SKIP ${name}: ${why}`);
const check = (name, ok, why, detail) => (ok ? pass(name, detail) : fail(name, why));

// ------------------------------------------------------------- servers
const live = new Set();
process.on('exit', () => { for (const p of live) try { p.kill('SIGKILL'); } catch { /* gone */ } });
// one bound for the whole script: a hung check must not hang the suite
const watchdog = setTimeout(() => { fail('watchdog', 'the script ran past 300 s'); finish(); }, 300000);

async function startServer(extra = []) {
  const args = ['serve', modelDir, '--host', '127.0.0.1', '--port', '0', '--api-key', KEY, '--served-model-name', MODEL,
    '--max-model-len', String(MAX_LEN), '--kv-cache-memory', '0.25', '--threads', '1', '--max-num-seqs', '8', ...extra];
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(proc);
  let log = '';
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    live.delete(proc);
    resolve({ code, signal, at: Date.now() });
  }));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${log}`)), 60000);
    proc.stderr.on('data', (d) => {
      log = (log + d).slice(-20000);
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then((e) => { clearTimeout(timer); reject(new Error(`server exited (${e.code ?? e.signal}):\n${log}`)); });
  });
  const srv = { proc, port, exited, log: () => log, alive: () => proc.exitCode === null && proc.signalCode === null };
  await pollUntil('/health 200', 600, async () => (await raw(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', { ms: 2000 })).status === 200);
  return srv;
}

async function stopServer(srv) {
  if (!srv.alive()) return srv.exited;
  srv.proc.kill('SIGKILL');
  return srv.exited;
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));
// Polls fn every 50 ms, at most `tries` times; returns the last value when
// truthy, throws otherwise.
async function pollUntil(what, tries, fn) {
  let last;
  for (let i = 0; i < tries; i++) {
    try { last = await fn(); } catch (e) { last = e; }
    if (last && !(last instanceof Error)) return last;
    await delay(50);
  }
  throw new Error(`gave up waiting for ${what} after ${tries} polls (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

// ------------------------------------------------------------- HTTP
// Raw exchange over one TCP connection: writes `data`, reads until the
// server closes or `ms` passes. `status` is the first status code;
// `statusLines` counts every HTTP status line in the reply.
function raw(port, data, { ms = 5000, keepOpen = false, halfClose = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const chunks = [];
    let done = false;
    const end = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const sl = text.match(/^HTTP\/1\.[01] \d{3}/gm) || [];
      resolve({ text, why, status: sl.length ? Number(sl[0].slice(9)) : 0, statusLines: sl.length, ...splitResponse(text) });
    };
    const timer = setTimeout(() => end('timeout'), ms);
    sock.on('data', (d) => {
      chunks.push(d);
      // one complete response is enough unless the caller wants to see what follows it
      if (!keepOpen && splitResponse(Buffer.concat(chunks).toString('latin1')).complete) end('complete');
    });
    sock.on('error', () => end('error'));
    sock.on('close', () => end('closed'));
    if (halfClose) sock.end(data); // shutdown(SHUT_WR) after the request: still reading
    else sock.write(data);
  });
}

// Splits the first response in `text` into headers and body (Content-Length
// or chunked); `complete` when the whole body is there.
function splitResponse(text) {
  const k = text.indexOf('\r\n\r\n');
  if (k < 0) return { headers: {}, body: '', complete: false };
  const headers = {};
  for (const line of text.slice(0, k).split('\r\n').slice(1)) {
    const c = line.indexOf(':');
    if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
  }
  let rest = text.slice(k + 4);
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    return { headers, body: rest.slice(0, n), complete: rest.length >= n };
  }
  if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    let body = '';
    for (;;) {
      const e = rest.indexOf('\r\n');
      if (e < 0) return { headers, body, complete: false };
      const n = parseInt(rest.slice(0, e), 16);
      if (!(n >= 0) || rest.length < e + 2 + n + 2) return { headers, body, complete: false };
      if (n === 0) return { headers, body, complete: true };
      body += rest.slice(e + 2, e + 2 + n);
      rest = rest.slice(e + 2 + n + 2);
    }
  }
  return { headers, body: rest, complete: false };
}

// An OpenAI-shaped error body: {"error": {"message": str, "type": str, "code"?: str|int|null}}.
function errorShape(body) {
  let j;
  try { j = JSON.parse(body); } catch { return `not JSON: ${JSON.stringify(body.slice(0, 120))}`; }
  const e = j && j.error;
  if (!e || typeof e !== 'object') return `no "error" object: ${body.slice(0, 120)}`;
  if (typeof e.message !== 'string' || !e.message) return 'error.message is not a non-empty string';
  if (typeof e.type !== 'string' || !e.type) return 'error.type is not a non-empty string';
  if (e.code !== undefined && e.code !== null && typeof e.code !== 'string' && typeof e.code !== 'number')
    return 'error.code is neither absent, null, a string nor a number';
  return null;
}

// A request over its own connection with Node's HTTP client. `onEvent(n)`
// is called after each complete SSE event (n events so far); `cut` can be
// called at any time: 'fin' closes the socket, 'rst' resets it.
function call(port, path, body, { onEvent, onSocket } = {}) {
  const payload = JSON.stringify(body);
  let req, events = 0;
  const res = new Promise((resolve) => {
    req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false,
      headers: { ...AUTH, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } }, (r) => {
      let text = '', scanned = 0;
      r.setEncoding('utf8');
      r.on('data', (d) => {
        text += d;
        let k;
        while ((k = text.indexOf('\n\n', scanned)) >= 0) { scanned = k + 2; events++; onEvent?.(events); }
      });
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, text, complete: true }));
      r.on('error', (e) => resolve({ status: r.statusCode, headers: r.headers, text, error: e.code || e.message }));
      r.on('aborted', () => resolve({ status: r.statusCode, headers: r.headers, text, error: 'aborted' }));
    });
    req.on('socket', (s) => onSocket?.(s));
    req.on('error', (e) => resolve({ status: 0, text: '', error: e.code || e.message }));
    req.end(payload);
  });
  const cut = (how) => {
    const s = req.socket;
    if (!s || s.destroyed) return;
    if (how === 'rst') s.resetAndDestroy(); else s.destroy();
  };
  return { res, cut };
}

// Every event of a stream parsed; `verdict` is null when it ends properly: a
// finish_reason (or an error event) and then `data: [DONE]` as the last event.
function streamVerdict(text) {
  const events = text.split('\n\n').filter((e) => e.trim());
  if (!events.length) return 'no events';
  if (events[events.length - 1].trim() !== 'data: [DONE]') return `last event is not [DONE]: ${JSON.stringify(events[events.length - 1].slice(0, 120))}`;
  let finished = false;
  for (const ev of events.slice(0, -1)) {
    const line = ev.split('\n').find((l) => l.startsWith('data: '));
    if (!line) continue;
    if (line === 'data: [DONE]') return '[DONE] before the end';
    let j;
    try { j = JSON.parse(line.slice(6)); } catch { return `malformed JSON event ${JSON.stringify(line.slice(0, 120))}`; }
    if (j.error) finished = true;
    for (const c of j.choices || []) if (c.finish_reason) finished = true;
  }
  return finished ? null : 'no finish_reason and no error event before [DONE]';
}

// ------------------------------------------------------------- /metrics
const NAMES = {
  running: ['cinfer_num_requests_running', 'vllm:num_requests_running'],
  waiting: ['cinfer_num_requests_waiting', 'vllm:num_requests_waiting'],
  kvUsed: ['cinfer_kv_blocks_used', 'vllm:kv_blocks_used'],
  kvPerc: ['cinfer_kv_cache_usage_perc', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
  generated: ['cinfer_generation_tokens_total', 'vllm:generation_tokens_total'],
};
function metricValue(text, names) {
  for (const name of names) {
    const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`^${esc}(?:\\{[^}]*\\})? ([0-9.eE+-]+|NaN)$`, 'gm');
    let m, sum = null;
    while ((m = re.exec(text))) sum = (sum ?? 0) + Number(m[1]);
    if (sum !== null) return sum;
  }
  return NaN;
}
async function metrics(port) {
  const r = await raw(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { ms: 5000 });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  const out = {};
  for (const [k, names] of Object.entries(NAMES)) out[k] = metricValue(r.body, names);
  // KV in use: the block gauge where there is one, else the usage fraction (0 = none)
  out.kv = Number.isNaN(out.kvUsed) ? out.kvPerc : out.kvUsed;
  return out;
}
const idleNow = (m, idle) => m.running === 0 && m.waiting === 0 && m.kv <= idle.kv;

function chatBody(extra = {}) {
  return { model: MODEL, messages: [{ role: 'user', content: 'Tell me a very long story about a lighthouse.' }],
    max_tokens: LONG, ignore_eos: true, temperature: 0, ...extra };
}

// ------------------------------------------------------------- (a) (b) disconnects
// Starts a request, waits until the scheduler runs it (and, for streams,
// until `afterEvents` events arrived), cuts the connection, then waits for
// the server to drop it: running 0, KV back to the idle value, and fewer
// tokens generated than requested.
// Each on a fresh server: a request that was not stopped must not spill into
// the next check.
async function disconnectCheck(name, { stream, how }) {
  const srv = await startServer();
  const idle = await metrics(srv.port);
  let gotEvents;
  const eventsSeen = new Promise((r) => { gotEvents = r; });
  const c = call(srv.port, '/v1/chat/completions', chatBody({ stream }), { onEvent: (n) => { if (n >= 3) gotEvents(); } });
  try {
    if (stream) await Promise.race([eventsSeen, c.res.then(() => { throw new Error('the stream ended before 3 events'); })]);
    else await pollUntil('the request running', 400, async () => (await metrics(srv.port)).running >= 1);
    c.cut(how);
    const m = await pollUntil('running 0 and KV back to idle', 200, async () => {
      const m = await metrics(srv.port);
      return idleNow(m, idle) && m;
    });
    const gen = m.generated - idle.generated;
    check(name, gen < LONG, `the server generated all ${gen} tokens for a client that had left`, `${gen} of ${LONG} tokens generated before it stopped`);
  } catch (e) {
    const m = await metrics(srv.port).catch(() => null);
    fail(name, `${e.message}; server ${srv.alive() ? 'alive' : 'dead'}${m ? `, ${m.generated - idle.generated} of ${LONG} tokens generated so far` : ''}`);
    c.cut('rst');
  } finally {
    await stopServer(srv);
  }
}

// ------------------------------------------------------------- (d) errors
async function errorChecks(srv) {
  const p = srv.port;
  const expectError = async (name, reply, status, more) => {
    if (reply.status !== status) return fail(name, `status ${reply.status || `none (${reply.why})`}, want ${status}: ${JSON.stringify(reply.text.slice(0, 160))}`);
    const bad = errorShape(reply.body);
    if (bad) return fail(name, bad);
    const extra = more?.(reply);
    if (extra) return fail(name, extra);
    pass(name);
  };
  await expectError('(d) unknown route: 404 JSON, code not model_not_found',
    await raw(p, `GET /v1/no-such-route HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`), 404,
    (r) => (JSON.parse(r.body).error.code === 'model_not_found' ? 'code is "model_not_found" for a route' : null));
  await expectError('(d) unknown route outside /v1: 404 JSON, code not model_not_found',
    await raw(p, 'GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n'), 404,
    (r) => (JSON.parse(r.body).error.code === 'model_not_found' ? 'code is "model_not_found" for a route' : null));
  await expectError('(d) wrong method: 405 JSON with Allow',
    await raw(p, `GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`), 405,
    (r) => (/POST/.test(r.headers.allow || '') ? null : `Allow header is ${JSON.stringify(r.headers.allow)}`));
  // announced larger than any cap, never sent: the answer must come without the body
  await expectError('(d) oversized body: 413 JSON before the body is read',
    await raw(p, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"model":`, { ms: 5000 }), 413);
  await expectError('(d) keyless 7 MB body: 401 JSON before the body is read',
    await raw(p, 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7000000\r\n\r\n{"model":', { ms: 5000 }),
    401);
  const bigHeader = `X-Filler: ${'a'.repeat(256 * 1024)}\r\n`;
  await expectError('(d) huge headers: 431 JSON',
    await raw(p, `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n${bigHeader}\r\n`), 431);
  // a chunked body is refused from the headers (docs/SERVER.md: clients of this API send Content-Length)
  await expectError('(d) chunked encoding: 411 JSON',
    await raw(p, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZZ\r\n{"model":"tiny"}\r\n0\r\n\r\n`), 411);
  // keepOpen: everything the server sends on this connection is counted
  const neg = await raw(p, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n`, { ms: 3000, keepOpen: true });
  await expectError('(d) Content-Length -5: 400 JSON, exactly one status line', neg, 400,
    (r) => (r.statusLines === 1 ? null : `${r.statusLines} status lines in the reply: ${JSON.stringify(r.text.slice(0, 300))}`));
}

// ------------------------------------------------------------- (f) over-long prompt
// Qwen's pre-tokenizer splits every digit on its own (\p{N}), so N digits are
// exactly N tokens: the count is known without the server's tokenizer.
async function longPromptChecks(srv) {
  const N = 50000;
  // the premise, on a short string: one token per digit
  const t = await call(srv.port, '/tokenize', { model: MODEL, prompt: '0123456789'.repeat(10) }).res;
  const tc = JSON.parse(t.text || '{}').count;
  if (tc !== 100) return fail('(f) premise: 100 digits are 100 tokens', `/tokenize counts ${tc} (${t.status})`);
  const tokenCounts = (msg) => (msg.match(/\d+/g) || []).map(Number);
  const digits = Array.from({ length: N }, (_, i) => String(i % 10)).join('');
  const r1 = await call(srv.port, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: digits }], max_tokens: 4 }).res;
  const m1 = JSON.parse(r1.text || '{}').error?.message || '';
  // the template adds a few tokens around the message
  check('(f) over-long chat prompt: 400 with the real token count', r1.status === 400 && tokenCounts(m1).some((n) => n >= N && n < N + 64),
    `status ${r1.status}, message ${JSON.stringify(m1)} (the prompt has ${N} + template tokens)`, m1.slice(0, 100));
  const L = 40000;
  const ids = Array.from({ length: L }, (_, i) => 1000 + (i % 5000));
  const r2 = await call(srv.port, '/v1/completions', { model: MODEL, prompt: ids, max_tokens: 4 }).res;
  const m2 = JSON.parse(r2.text || '{}').error?.message || '';
  check('(f) over-long token-id prompt: 400 with the real token count', r2.status === 400 && tokenCounts(m2).includes(L),
    `status ${r2.status}, message ${JSON.stringify(m2)} (the prompt has ${L} tokens)`, m2.slice(0, 100));
}

// ------------------------------------------------------------- (g) half-close
// A client that shuts down its sending side after its request counts as gone
// (docs/SERVER.md, as nginx's 499): to the server a FIN and a full close look
// the same, and (a) depends on it. Queued behind another request, it gets a
// 499 JSON with code client_closed_request (if it still reads), and its
// request leaves no KV behind.
async function halfCloseCheck() {
  const name = '(g) half-closed client queued behind another request: 499 client_closed_request, KV freed';
  const srv = await startServer(['--max-num-seqs', '1']);
  const idle = await metrics(srv.port);
  const first = call(srv.port, '/v1/chat/completions', chatBody({ max_tokens: 300 }));
  try {
    await pollUntil('the first request running', 400, async () => (await metrics(srv.port)).running >= 1);
    const body = JSON.stringify(chatBody({ max_tokens: 8 }));
    const r = await raw(srv.port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, { ms: 60000, halfClose: true });
    const bad = r.status !== 499 ? `status ${r.status || `none (${r.why})`}: ${JSON.stringify(r.body.slice(0, 200))}`
      : errorShape(r.body) || (JSON.parse(r.body).error.code !== 'client_closed_request' ? `code ${JSON.parse(r.body).error.code}` : null);
    if (bad) return fail(name, bad);
    // the first request still runs: nothing but its own KV stays in use
    first.cut('rst');
    const m = await pollUntil('running 0, waiting 0, KV free', 400, async () => {
      const m = await metrics(srv.port);
      return idleNow(m, idle) && m;
    });
    pass(name, `KV ${m.kv} after both left`);
  } catch (e) {
    fail(name, e.message);
  } finally {
    first.cut('rst');
    await stopServer(srv);
  }
}

// ------------------------------------------------------------- (c) SIGTERM
async function sigtermChecks() {
  const SHUTDOWN_S = 5;
  const srv = await startServer(SHUTDOWN_OPT ? [SHUTDOWN_OPT, String(SHUTDOWN_S)] : []);
  if (!SHUTDOWN_OPT) skip('(c) exit within --shutdown-timeout', '`cinfer serve --help` has no --shutdown-timeout');
  // half the streams long enough to outlive the drain (ended by an error
  // event), half short (ended by their finish_reason)
  const streams = Array.from({ length: 6 }, (_, i) => {
    let first;
    const started = new Promise((r) => { first = r; });
    const c = call(srv.port, '/v1/chat/completions', chatBody({ stream: true, max_tokens: i < 3 ? LONG : 300 }), { onEvent: () => first() });
    return { ...c, started };
  });
  const plain = Array.from({ length: 2 }, () => call(srv.port, '/v1/chat/completions', chatBody({ max_tokens: 300 })));
  try {
    await Promise.all(streams.map((s) => s.started));
    await pollUntil('8 requests admitted', 400, async () => { const m = await metrics(srv.port); return m.running + m.waiting >= 8; });
  } catch (e) {
    fail('(c) SIGTERM setup', e.message);
  }
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  // readiness probe during the drain, bounded by the process exit (or 40 s: default timeout 30 s)
  const probes = { s503: 0, s200: 0, other: 0, refused: 0 };
  let exited = null;
  srv.exited.then((e) => { exited = e; });
  for (let i = 0; i < 800 && !exited; i++) {
    const r = await raw(srv.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { ms: 1000 });
    if (r.status === 503) probes.s503++;
    else if (r.status === 200) probes.s200++;
    else if (r.status === 0) probes.refused++;
    else probes.other++;
    await delay(50);
  }
  const ex = exited ?? await Promise.race([srv.exited, delay(5000).then(() => null)]);
  const results = await Promise.all([...streams.map((s) => s.res), ...plain.map((p) => p.res)]);
  results.slice(0, 6).forEach((r, i) => {
    const v = r.status === 200 ? streamVerdict(r.text) : `HTTP ${r.status} ${r.error || ''}`;
    check(`(c) SIGTERM: stream ${i} ends with finish/error and [DONE]`, !v, v);
  });
  results.slice(6).forEach((r, i) => {
    let why = null;
    if (!r.complete) why = `incomplete response (${r.error || 'no end'}), status ${r.status}, ${r.text.length} body bytes`;
    else if (r.status === 200) {
      try { if (!JSON.parse(r.text).choices?.length) why = '200 without choices'; } catch { why = `200 with a body that is not JSON: ${r.text.slice(0, 80)}`; }
    } else why = errorShape(r.text);
    check(`(c) SIGTERM: non-streaming request ${i} gets a complete response`, !why, why, `HTTP ${r.status}`);
  });
  check('(c) SIGTERM: /health answers 503 during the drain', probes.s503 > 0, `probes: ${JSON.stringify(probes)}`, JSON.stringify(probes));
  if (!ex) {
    fail('(c) SIGTERM: the process exits', 'still running 40 s after SIGTERM');
    await stopServer(srv);
  } else {
    const s = (ex.at - t0) / 1000;
    if (SHUTDOWN_OPT) check(`(c) SIGTERM: exits within --shutdown-timeout ${SHUTDOWN_S}`, s <= SHUTDOWN_S, `exited after ${s.toFixed(2)} s`, `${s.toFixed(2)} s`);
    check('(c) SIGTERM: exit status 0', ex.code === 0, `exit ${ex.code ?? ex.signal}`, `${s.toFixed(2)} s after SIGTERM`);
  }
}

// ------------------------------------------------------------- (e) queue bound
async function queueChecks() {
  if (!QUEUE_OPT) return skip('(e) waiting queue bounded: 503 with Retry-After', '`cinfer serve --help` names no waiting-queue limit (--max-...wait|queue... or --...waiting|queue...)');
  const srv = await startServer(['--max-num-seqs', '1', QUEUE_OPT, '2']);
  const calls = Array.from({ length: 8 }, () => call(srv.port, '/v1/chat/completions', chatBody({ stream: true, max_tokens: LONG })));
  try {
    // the first rejection must come while the others still run
    const first503 = await Promise.race([
      Promise.race(calls.map((c) => c.res.then((r) => (r.status === 503 ? r : new Promise(() => {}))))),
      delay(20000).then(() => null),
    ]);
    if (!first503) fail(`(e) ${QUEUE_OPT} 2: a flood of 8 gets 503`, 'no 503 within 20 s');
    else {
      const why = errorShape(first503.text) || (first503.headers['retry-after'] ? null : 'no Retry-After header');
      check(`(e) ${QUEUE_OPT} 2: a flood of 8 gets 503 JSON with Retry-After`, !why, why, `Retry-After ${first503.headers['retry-after']}`);
    }
    const m = await metrics(srv.port);
    // a submitted request shows as waiting until the scheduler admits it, so
    // the split between the gauges can lag; their sum cannot exceed the bound
    check(`(e) ${QUEUE_OPT} 2: running + waiting <= 1 + 2, running <= 1`, m.running + m.waiting <= 3 && m.running <= 1, JSON.stringify(m));
  } finally {
    for (const c of calls) c.cut('rst');
    await stopServer(srv);
  }
}

// ------------------------------------------------------------- main
function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  for (const p of live) try { p.kill('SIGKILL'); } catch { /* gone */ }
  clearTimeout(watchdog);
  process.exit(failed ? 1 : 0);
}

try {
  await disconnectCheck('(a) non-streaming client FIN stops the request', { stream: false, how: 'fin' });
  await disconnectCheck('(a) non-streaming client RST stops the request', { stream: false, how: 'rst' });
  await disconnectCheck('(b) streaming client RST stops the request', { stream: true, how: 'rst' });
  await disconnectCheck('(b) streaming client FIN stops the request', { stream: true, how: 'fin' });
  const srv = await startServer();
  try {
    await errorChecks(srv);
    if (srv.alive()) await longPromptChecks(srv);
    check('server alive after (d) and (f)', srv.alive(), `server died: ${srv.log().slice(-1500)}`);
  } finally {
    await stopServer(srv);
  }
  await halfCloseCheck();
  await sigtermChecks();
  await queueChecks();
} catch (e) {
  fail('harness', e.stack || String(e));
}
finish();
