// template_stress.mjs — many threads rendering the chat template at once
// (issue 11): C clients loop on POST /tokenize {"messages": ...} and short
// POST /v1/chat/completions (max_tokens 1-4) against one `cinfer serve`, for
// a given time. Every answer must be a 200 with the expected shape; the
// server must be alive at the end.
//
//   node tests/server/template_stress.mjs CINFER_BIN MODEL_DIR [--duration S] [--clients N] [--threads N]
//
// Defaults: 60 s, 16 clients (the acceptance run is --duration 600). Starts
// its own server on a free loopback port and kills it at the end. Exits 1 on
// any error or if the server died (its stderr tail is printed).
//
// The conversations differ in shape (system prompt, multi-turn, reasoning,
// tools and tool results, long and non-ASCII content) so that every branch of
// the Qwen3 template, and its shared constants, is rendered concurrently.
// /tokenize of a conversation must also give the same count every time: a
// template that renders differently under load is an error too.
import { spawn } from 'node:child_process';
import http from 'node:http';

const args = process.argv.slice(2);
const [bin, modelDir] = args;
if (!bin || !modelDir) {
  console.error('usage: node template_stress.mjs CINFER_BIN MODEL_DIR [--duration S] [--clients N] [--threads N]');
  process.exit(2);
}
const opt = { duration: 60, clients: 16, threads: 2 };
for (let i = 2; i < args.length; i++) {
  const k = args[i].replace(/^--/, '');
  if (!(k in opt) || !(Number(args[i + 1]) > 0)) { console.error(`bad option ${args[i]} ${args[i + 1] ?? ''}`); process.exit(2); }
  opt[k] = Number(args[++i]);
}
const KEY = 'sk-stress';
const MODEL = 'tiny';

// ------------------------------------------------------------- server
const proc = spawn(bin, ['serve', modelDir, '--host', '127.0.0.1', '--port', '0', '--api-key', KEY, '--served-model-name', MODEL,
  '--max-model-len', '2048', '--kv-cache-memory', '0.25', '--threads', String(opt.threads), '--max-num-seqs', '16'],
{ stdio: ['ignore', 'ignore', 'pipe'] });
let log = '', exit = null;
process.on('exit', () => { if (!exit) proc.kill('SIGKILL'); });
const exited = new Promise((r) => proc.once('exit', (code, signal) => { exit = { code, signal }; r(exit); }));
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('server did not start in 60 s')), 60000);
  proc.stderr.on('data', (d) => {
    log = (log + d).slice(-20000);
    const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) { clearTimeout(timer); resolve(Number(m[1])); }
  });
  exited.then(() => { clearTimeout(timer); reject(new Error('server exited at start')); });
}).catch((e) => { console.log(`FAIL ${e.message}\n${log}`); process.exit(1); });

const agent = new http.Agent({ keepAlive: true, maxSockets: opt.clients });
function post(path, body) {
  const payload = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent,
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', (e) => resolve({ status: res.statusCode, text, error: e.code || e.message }));
    });
    req.setTimeout(60000, () => req.destroy(new Error('no answer in 60 s')));
    req.on('error', (e) => resolve({ status: 0, text: '', error: e.code || e.message }));
    req.end(payload);
  });
}

// ------------------------------------------------------------- conversations
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] } } },
  { type: 'function', function: { name: 'search', description: 'Web search', parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
];
const conversations = [
  [{ role: 'user', content: 'Hello!' }],
  [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'What is 2+2?' }],
  [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello, how can I help?' }, { role: 'user', content: 'Tell me a joke.' }],
  [{ role: 'user', content: 'Think first.' }, { role: 'assistant', content: 'Done.', reasoning_content: 'Let me think about it.' }, { role: 'user', content: 'Again.' }],
  [{ role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: '{"temp": 21}' }, { role: 'user', content: 'And in Oslo?' }],
  [{ role: 'user', content: [{ type: 'text', text: 'Part one. ' }, { type: 'text', text: 'Part two.' }] }],
  [{ role: 'user', content: 'Ünïcödé 日本語 テスト 🚀 '.repeat(20) }],
  [{ role: 'system', content: 'x'.repeat(3000) }, { role: 'user', content: 'Summarise.' }],
];
const withTools = (i) => i % 3 === 0;

// ------------------------------------------------------------- load
const counts = { tokenize: 0, chat: 0, errors: 0 };
const samples = [];
const expected = new Map(); // conversation index + tools -> token count first seen
function error(what) {
  counts.errors++;
  if (samples.length < 10) samples.push(what);
}

async function client(id, deadline) {
  for (let n = 0; Date.now() < deadline && !exit; n++) {
    const ci = (id + n) % conversations.length;
    const body = { model: MODEL, messages: conversations[ci], ...(withTools(n) ? { tools } : {}) };
    if (n % 2 === 0) {
      const r = await post('/tokenize', body);
      counts.tokenize++;
      let j = null;
      try { j = JSON.parse(r.text); } catch { /* below */ }
      if (r.status !== 200 || !j || !Array.isArray(j.tokens) || j.count !== j.tokens.length) {
        error(`/tokenize: ${r.status} ${r.error || ''} ${r.text.slice(0, 200)}`);
        continue;
      }
      const key = `${ci}:${withTools(n)}`;
      if (!expected.has(key)) expected.set(key, j.count);
      else if (expected.get(key) !== j.count) error(`/tokenize of conversation ${key}: ${j.count} tokens, earlier ${expected.get(key)}`);
    } else {
      const r = await post('/v1/chat/completions', { ...body, max_tokens: 1 + (n % 4), temperature: 0 });
      counts.chat++;
      let j = null;
      try { j = JSON.parse(r.text); } catch { /* below */ }
      if (r.status !== 200 || !j?.choices?.[0]?.finish_reason) error(`/v1/chat/completions: ${r.status} ${r.error || ''} ${r.text.slice(0, 200)}`);
    }
  }
}

const t0 = Date.now();
const deadline = t0 + opt.duration * 1000;
console.log(`${opt.clients} clients for ${opt.duration} s against 127.0.0.1:${port}`);
const ticker = setInterval(() => console.log(`${((Date.now() - t0) / 1000).toFixed(0)} s: ${counts.tokenize} tokenize, ${counts.chat} chat, ${counts.errors} errors${exit ? ', SERVER DEAD' : ''}`), 10000);
await Promise.all(Array.from({ length: opt.clients }, (_, i) => client(i, deadline)));
clearInterval(ticker);
agent.destroy();

const alive = !exit;
console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${counts.tokenize} tokenize, ${counts.chat} chat completions, ${counts.errors} errors; server ${alive ? 'alive' : `DIED (${exit.code ?? exit.signal})`}`);
for (const s of samples) console.log(`  error: ${s}`);
if (!alive) console.log(`server stderr (tail):\n${log.slice(-3000)}`);
if (alive) { proc.kill('SIGKILL'); await exited; }
const ok = alive && counts.errors === 0;
console.log(ok ? 'PASS template stress' : 'FAIL template stress');
process.exit(ok ? 0 : 1);
