// serve_helper.mjs — what the API suites share: a `cinfer serve` of the tiny
// random Qwen3 (real tokenizer and template) on a free port, a small test
// harness, raw HTTP helpers and the prompt's token count from /tokenize.
//
// The template is the real Qwen3 one with the generation prompt opening
// <think> (as the *-Thinking-2507 templates do), so thinking output is
// exercised even though random weights never emit <think> themselves:
// enable_thinking false closes it in the prompt.
// No sleeps as synchronisation: waits poll a condition with a bound.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import assert from 'node:assert/strict';

export const KEY = 'sk-test-key';
export const MODEL = 'tiny';

function thinkModel(modelDir, workDir) {
  fs.mkdirSync(workDir, { recursive: true });
  const model = path.join(workDir, 'tiny-think');
  fs.rmSync(model, { recursive: true, force: true });
  fs.mkdirSync(model);
  for (const f of fs.readdirSync(modelDir)) fs.copyFileSync(path.join(modelDir, f), path.join(model, f));
  const tcfg = JSON.parse(fs.readFileSync(path.join(model, 'tokenizer_config.json'), 'utf8'));
  const gen = "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking is defined and enable_thinking is false %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}\n{%- endif %}";
  assert.ok(tcfg.chat_template.includes(gen), 'the Qwen3 template has the expected generation prompt');
  fs.writeFileSync(path.join(model, 'chat_template.jinja'), tcfg.chat_template.replace(gen,
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking is defined and enable_thinking is false %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- else %}\n        {{- '<think>\\n' }}\n    {%- endif %}\n{%- endif %}"));
  return model;
}

// Starts the server; resolves { base, port, server, log() }.
export async function startServer(bin, modelDir, workDir, extra = []) {
  const model = thinkModel(modelDir, workDir);
  const server = spawn(bin, ['serve', model, '--port', '0', '--api-key', KEY, '--served-model-name', MODEL,
    '--max-num-seqs', '8', '--max-model-len', '1024', '--kv-cache-memory', '0.05', '--threads', '2', ...extra],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start in 60 s:\n' + log)), 60000);
    server.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    server.once('exit', (code) => reject(new Error(`server exited (${code}):\n${log}`)));
  });
  return { base: `http://127.0.0.1:${port}`, port, server, log: () => log };
}

// SIGTERM and a clean exit (no sanitizer reports).
export async function stopServer(srv) {
  const exited = new Promise((r) => srv.server.on('exit', (code, signal) => r({ code, signal })));
  srv.server.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(signal, null, srv.log());
  assert.equal(code, 0, srv.log());
  assert.ok(!/runtime error|AddressSanitizer|LeakSanitizer/.test(srv.log()), srv.log());
}

let passed = 0, failed = 0;
export async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}
export function summary() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

// One raw HTTP exchange: { status, headers, body } (body as text). Bodies
// over 64 KiB are sent after `Expect: 100-continue`, as curl does: a server
// that refuses them from the headers (413) never reads them.
export function request(base, method, urlPath, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const expect = data !== undefined && data.length > 65536;
    const req = http.request(`${base}${urlPath}`, { method, headers: {
      ...(data !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
      ...(expect ? { expect: '100-continue' } : {}),
      ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (expect) {
      req.on('continue', () => req.end(data));
    } else {
      if (data !== undefined) req.write(data);
      req.end();
    }
  });
}

// The prompt length of OpenAI-chat messages, from vLLM's /tokenize.
export async function promptTokens(base, body) {
  const r = await request(base, 'POST', '/tokenize', { body: { model: MODEL, ...body } });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body).count;
}

// SSE events of a body: [{ event, data }] (data parsed when JSON).
export function parseSSE(text) {
  const out = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event = null, data = '';
    for (const l of block.split('\n')) {
      if (l.startsWith('event: ')) event = l.slice(7);
      else if (l.startsWith('data: ')) data += l.slice(6);
    }
    let parsed = data;
    try { parsed = JSON.parse(data); } catch { /* [DONE] */ }
    out.push({ event, data: parsed });
  }
  return out;
}
