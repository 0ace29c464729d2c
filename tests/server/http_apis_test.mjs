// http_apis_test.mjs — what no SDK checks, over raw HTTP against `cinfer
// serve` on the tiny random model: CORS (preflight; Access-Control-Allow-
// Origin on JSON, SSE, NDJSON, error and 401 answers; Vary), the /metrics
// text parsed strictly as Prometheus exposition with vLLM's names, /version,
// system_fingerprint, real `created` times, auth headers, the error shape of
// each API for routes, methods and oversized bodies.
// usage: node http_apis_test.mjs CINFER_BIN MODEL_DIR WORK_DIR
import assert from 'node:assert/strict';
import { KEY, MODEL, startServer, stopServer, test, summary, request, parseSSE } from './serve_helper.mjs';

const [bin, modelDir, workDir] = process.argv.slice(2);
const t0 = Math.floor(Date.now() / 1000);
const srv = await startServer(bin, modelDir, workDir, ['--allowed-origins', 'http://app.test, https://b.test/', '--max-body-mb', '1']);
const auth = { authorization: `Bearer ${KEY}` };
const APP = 'http://app.test';
const chat = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, enable_thinking: false };

// ------------------------------------------------------------------ CORS
await test('CORS preflight: allowed origin gets methods, headers, max-age', async () => {
  const r = await request(srv.base, 'OPTIONS', '/v1/chat/completions', { headers: { origin: APP,
    'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-custom' } });
  assert.equal(r.status, 204);
  assert.equal(r.headers['access-control-allow-origin'], APP);
  assert.match(r.headers.vary, /Origin/);
  for (const m of ['GET', 'POST', 'DELETE', 'OPTIONS']) assert.ok(r.headers['access-control-allow-methods'].includes(m));
  const allowed = r.headers['access-control-allow-headers'].split(',').map((h) => h.trim().toLowerCase());
  for (const h of ['authorization', 'content-type', 'x-api-key', 'anthropic-version', 'openai-beta', 'x-custom'])
    assert.ok(allowed.includes(h), h);
  assert.ok(Number(r.headers['access-control-max-age']) > 0);
  // the second origin, written with a trailing slash in the flag
  const b = await request(srv.base, 'OPTIONS', '/v1/messages', { headers: { origin: 'https://b.test', 'access-control-request-method': 'POST' } });
  assert.equal(b.headers['access-control-allow-origin'], 'https://b.test');
});

await test('CORS: another origin gets no Allow-Origin (preflight nor answer)', async () => {
  const r = await request(srv.base, 'OPTIONS', '/v1/chat/completions', { headers: { origin: 'http://evil.test', 'access-control-request-method': 'POST' } });
  assert.equal(r.status, 204);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  assert.equal(r.headers['access-control-allow-methods'], undefined);
  const j = await request(srv.base, 'GET', '/v1/models', { headers: { ...auth, origin: 'http://evil.test' } });
  assert.equal(j.status, 200);
  assert.equal(j.headers['access-control-allow-origin'], undefined);
  assert.match(j.headers.vary, /Origin/);
});

await test('CORS headers on JSON, SSE, NDJSON, errors and 401s', async () => {
  const h = { ...auth, origin: APP };
  const cases = [
    ['GET', '/v1/models', undefined, 200],
    ['POST', '/v1/chat/completions', { ...chat, stream: true }, 200],
    ['POST', '/v1/responses', { model: MODEL, input: 'Hi', max_output_tokens: 2, stream: true }, 200],
    ['POST', '/v1/messages', { model: MODEL, max_tokens: 2, stream: true, messages: chat.messages }, 200],
    ['POST', '/api/chat', { model: MODEL, messages: chat.messages, options: { num_predict: 2 } }, 200],
    ['POST', '/v1/chat/completions', { ...chat, max_tokens: 'x' }, 400],
    ['GET', '/nowhere', undefined, 404],
  ];
  for (const [method, path, body, status] of cases) {
    const r = await request(srv.base, method, path, { headers: h, body });
    assert.equal(r.status, status, `${path}: ${r.body.slice(0, 200)}`);
    assert.equal(r.headers['access-control-allow-origin'], APP, path);
  }
  const r = await request(srv.base, 'GET', '/v1/models', { headers: { origin: APP } });
  assert.equal(r.status, 401);
  assert.equal(r.headers['access-control-allow-origin'], APP);
});

// --------------------------------------------------------------- metrics
// Strict Prometheus text format 0.0.4: every line a # HELP / # TYPE comment
// or `name{labels} value`; returns [{ name, labels, value }] and the types.
function parseProm(text) {
  assert.ok(text.endsWith('\n'));
  const samples = [], types = {};
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
  const sample = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?\\})? (-?[0-9.]+(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)$`);
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = line.match(new RegExp(`^# HELP (${NAME}) .+$`)))) continue;
    if ((m = line.match(new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)))) { types[m[1]] = m[2]; continue; }
    m = line.match(sample);
    assert.ok(m, `not a Prometheus line: ${JSON.stringify(line)}`);
    const labels = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

await test('/metrics: strict Prometheus text with vLLM\'s names and model_name', async () => {
  // some traffic first: a finished request of each API
  await request(srv.base, 'POST', '/v1/chat/completions', { headers: auth, body: chat });
  const r = await request(srv.base, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain/);
  const { samples, types } = parseProm(r.body);
  const expect = {
    'vllm:num_requests_running': 'gauge', 'vllm:num_requests_waiting': 'gauge', 'vllm:kv_cache_usage_perc': 'gauge',
    'vllm:prompt_tokens_total': 'counter', 'vllm:generation_tokens_total': 'counter',
    'vllm:request_success_total': 'counter', 'vllm:prefix_cache_queries_total': 'counter',
    'vllm:prefix_cache_hits_total': 'counter', 'vllm:num_preemptions_total': 'counter',
    'vllm:time_to_first_token_seconds': 'histogram', 'vllm:inter_token_latency_seconds': 'histogram',
    'vllm:time_per_output_token_seconds': 'histogram', 'vllm:e2e_request_latency_seconds': 'histogram',
    'cinfer_requests_total': 'counter', 'cinfer_kv_blocks_used': 'gauge',
  };
  for (const [name, type] of Object.entries(expect)) assert.equal(types[name], type, name);
  for (const s of samples) assert.equal(s.labels.model_name, MODEL, s.name);
  const one = (name, labels = {}) => samples.filter((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
  assert.ok(one('vllm:request_success_total', { finished_reason: 'length' }) >= 1);
  for (const reason of ['stop', 'length', 'abort']) assert.ok(samples.some((s) => s.name === 'vllm:request_success_total' && s.labels.finished_reason === reason));
  assert.ok(one('vllm:generation_tokens_total') >= 3);
  assert.ok(one('vllm:prompt_tokens_total') > 0);
  const ttftCount = one('vllm:time_to_first_token_seconds_count');
  assert.ok(ttftCount >= 1);
  assert.equal(one('vllm:time_to_first_token_seconds_bucket', { le: '+Inf' }), ttftCount);
  // buckets are cumulative
  const buckets = samples.filter((s) => s.name === 'vllm:e2e_request_latency_seconds_bucket');
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value);
  const perc = one('vllm:kv_cache_usage_perc');
  assert.ok(perc >= 0 && perc <= 1);
  assert.ok(!samples.some((s) => /^cinfer_(num_requests|prompt_tokens|generation_tokens|prefix_cache)/.test(s.name)),
    'no cinfer_* duplicates of vLLM series');
});

// ------------------------------------------------- version, fingerprint
await test('/version, system_fingerprint, created times', async () => {
  const v = await request(srv.base, 'GET', '/version');
  assert.equal(v.status, 200);
  assert.match(JSON.parse(v.body).version, /^\d+\.\d+\.\d+/);
  const models = JSON.parse((await request(srv.base, 'GET', '/v1/models', { headers: auth })).body);
  assert.ok(models.data[0].created >= t0 - 5 && models.data[0].created <= Date.now() / 1000 + 5, String(models.data[0].created));
  const c = JSON.parse((await request(srv.base, 'POST', '/v1/chat/completions', { headers: auth, body: chat })).body);
  assert.match(c.system_fingerprint, /^fp_[0-9a-f]+$/);
  const cmp = JSON.parse((await request(srv.base, 'POST', '/v1/completions', { headers: auth,
    body: { model: MODEL, prompt: 'Hi', max_tokens: 2 } })).body);
  assert.equal(cmp.system_fingerprint, c.system_fingerprint);
  const s = await request(srv.base, 'POST', '/v1/chat/completions', { headers: auth, body: { ...chat, stream: true } });
  const chunks = parseSSE(s.body).filter((e) => typeof e.data === 'object');
  assert.ok(chunks.length > 0 && chunks.every((e) => e.data.system_fingerprint === c.system_fingerprint));
});

// ------------------------------------------------------- auth and shapes
await test('x-api-key works on every protected route; /api is protected too', async () => {
  const x = { 'x-api-key': KEY };
  assert.equal((await request(srv.base, 'POST', '/v1/chat/completions', { headers: x, body: chat })).status, 200);
  assert.equal((await request(srv.base, 'GET', '/api/tags', { headers: x })).status, 200);
  assert.equal((await request(srv.base, 'GET', '/api/tags')).status, 401);
  assert.equal((await request(srv.base, 'GET', '/v1/models', { headers: { 'x-api-key': 'wrong' } })).status, 401);
  assert.equal((await request(srv.base, 'GET', '/health')).status, 200);
});

await test('each API answers routes, methods and oversized bodies in its own shape', async () => {
  const openai = (b) => typeof b.error === 'object' && typeof b.error.message === 'string' && 'code' in b.error;
  const anthropic = (b) => b.type === 'error' && typeof b.error.type === 'string' && typeof b.error.message === 'string';
  const ollama = (b) => typeof b.error === 'string';
  const big = JSON.stringify({ model: MODEL, input: 'x'.repeat(1.5 * 1024 * 1024) });
  const cases = [
    ['GET', '/v1/messages', undefined, 405, anthropic],
    ['POST', '/v1/messages', big, 413, anthropic],
    ['GET', '/v1/messages/nope', undefined, 404, anthropic],
    ['GET', '/api/chat', undefined, 405, ollama],
    ['POST', '/api/nope', '{}', 404, ollama],
    ['POST', '/api/chat', big, 413, ollama],
    ['PUT', '/v1/responses', '{}', 405, openai],
    ['POST', '/v1/responses', big, 413, openai],
    ['GET', '/v1/responses/resp_nope', undefined, 404, openai],
    ['POST', '/v1/responses/resp_nope/cancel', undefined, 404, openai],
    ['GET', '/v1/embeddings', undefined, 404, openai],
    ['POST', '/v1/embeddings', '{}', 404, openai],
  ];
  for (const [method, path, body, status, shape] of cases) {
    const r = await request(srv.base, method, path, { headers: auth, body });
    assert.equal(r.status, status, `${method} ${path}: ${r.body.slice(0, 200)}`);
    assert.ok(shape(JSON.parse(r.body)), `${method} ${path}: ${r.body}`);
  }
  const a = await request(srv.base, 'GET', '/v1/messages', { headers: { 'x-api-key': 'wrong' } });
  assert.equal(a.status, 401);
  assert.equal(JSON.parse(a.body).error.type, 'authentication_error');
});

await test('SIGTERM: clean exit', async () => stopServer(srv));

// --allowed-origins as vLLM writes it (a JSON list), "*" for any origin
const any = await startServer(bin, modelDir, `${workDir}/any`, ['--allowed-origins', '["*"]']);
await test('--allowed-origins \'["*"]\': any origin, on streams too', async () => {
  const r = await request(any.base, 'POST', '/v1/messages', { headers: { 'x-api-key': KEY, origin: 'http://whoever.test' },
    body: { model: MODEL, max_tokens: 2, stream: true, messages: chat.messages } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.equal(parseSSE(r.body).at(-1).event, 'message_stop');
});
await test('SIGTERM: clean exit (second server)', async () => stopServer(any));
summary();
