// ollama_test.mjs — the Ollama API through the official `ollama` client
// against `cinfer serve` on the tiny random model: chat (streamed and not,
// thinking, tool turns), generate (templated, raw, empty = load), list,
// show, ps, version, options (num_predict, num_ctx, stop) and errors as the
// client's ResponseError with Ollama's {"error": "..."} bodies. Counts are
// checked against /tokenize of the same conversation, durations for
// consistency (total = prompt evaluation + evaluation), not the gibberish.
// usage: node ollama_test.mjs CINFER_BIN MODEL_DIR WORK_DIR
import { Ollama } from 'ollama';
import assert from 'node:assert/strict';
import { KEY, MODEL, startServer, stopServer, test, summary, promptTokens, request } from './serve_helper.mjs';

const [bin, modelDir, workDir] = process.argv.slice(2);
const srv = await startServer(bin, modelDir, workDir);
const ollama = new Ollama({ host: srv.base, headers: { Authorization: `Bearer ${KEY}` } });
const user = (content) => ({ role: 'user', content });
const opts = (o = {}) => ({ temperature: 0, num_predict: 8, ...o });

function checkFinal(f, evalCount) {
  assert.equal(f.done, true);
  assert.equal(f.model, MODEL);
  assert.ok(!Number.isNaN(Date.parse(f.created_at)), f.created_at);
  assert.equal(f.eval_count, evalCount);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'])
    assert.ok(Number.isInteger(f[k]) && f[k] >= 0, `${k} = ${f[k]}`);
  // nanoseconds from one clock: arrival → first token → last token
  assert.ok(Math.abs(f.total_duration - f.prompt_eval_duration - f.eval_duration) <= 2, JSON.stringify(f));
  assert.ok(f.total_duration < 600e9);
}

let chatText;
await test('chat, not streamed: message, counts against /tokenize', async () => {
  const messages = [user('Hello there')];
  const r = await ollama.chat({ model: MODEL, messages, think: false, options: opts() });
  assert.equal(r.message.role, 'assistant');
  assert.ok(r.message.content.length > 0);
  assert.equal(r.message.thinking, undefined);
  assert.equal(r.done_reason, 'length');
  checkFinal(r, 8);
  assert.equal(r.prompt_eval_count, await promptTokens(srv.base, { messages, enable_thinking: false }));
  chatText = r.message.content;
});

await test('chat, streamed (NDJSON): deltas add up, the last line is done', async () => {
  const parts = [];
  for await (const p of await ollama.chat({ model: MODEL, messages: [user('Hello there')], think: false, stream: true, options: opts() }))
    parts.push(p);
  const last = parts.at(-1);
  assert.ok(parts.slice(0, -1).every((p) => p.done === false && p.message.role === 'assistant'));
  assert.equal(parts.map((p) => p.message.content).join(''), chatText);
  assert.equal(last.done_reason, 'length');
  checkFinal(last, 8);
});

await test('raw HTTP: stream defaults to true (application/x-ndjson lines)', async () => {
  const r = await request(srv.base, 'POST', '/api/chat', { headers: { authorization: `Bearer ${KEY}` },
    body: { model: MODEL, messages: [user('Hello there')], think: false, options: opts() } });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^application\/x-ndjson/);
  const lines = r.body.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.length >= 2);
  assert.equal(lines.at(-1).done, true);
  assert.equal(lines.map((l) => l.message.content).join(''), chatText);
});

await test('think: the model\'s thinking in message.thinking, streamed and not', async () => {
  const messages = [user('Think first')];
  const r = await ollama.chat({ model: MODEL, messages, think: true, options: opts({ num_predict: 6 }) });
  assert.ok(r.message.thinking.length > 0);
  assert.equal(r.message.content, '');
  assert.equal(r.prompt_eval_count, await promptTokens(srv.base, { messages, enable_thinking: true }));
  const parts = [];
  for await (const p of await ollama.chat({ model: MODEL, messages, think: true, stream: true, options: opts({ num_predict: 6 }) }))
    parts.push(p);
  assert.equal(parts.map((p) => p.message.thinking ?? '').join(''), r.message.thinking);
});

await test('chat: tool calls and tool results in the history', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const messages = [user('Weather in Paris?'),
    { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
    { role: 'tool', content: '21 degrees', tool_name: 'get_weather' }];
  const r = await ollama.chat({ model: MODEL, messages, tools, think: false, options: opts({ num_predict: 2 }) });
  assert.equal(r.prompt_eval_count, await promptTokens(srv.base, { enable_thinking: false, tools, messages: [messages[0],
    { role: 'assistant', content: '', tool_calls: [{ id: 'call_1_0', type: 'function', function: { name: 'get_weather',
      arguments: '{"city": "Paris"}' } }] }, { role: 'tool', content: '21 degrees', name: 'get_weather' }] }));
});

await test('generate: templated, streamed, raw, system; an empty prompt loads', async () => {
  const r = await ollama.generate({ model: MODEL, prompt: 'Hello there', think: false, options: opts() });
  assert.equal(r.response, chatText, 'generate renders the prompt as one user turn');
  checkFinal(r, 8);
  assert.equal(r.prompt_eval_count, await promptTokens(srv.base, { messages: [user('Hello there')], enable_thinking: false }));
  const parts = [];
  for await (const p of await ollama.generate({ model: MODEL, prompt: 'Hello there', think: false, stream: true, options: opts() }))
    parts.push(p);
  assert.equal(parts.map((p) => p.response).join(''), chatText);
  const sys = await ollama.generate({ model: MODEL, prompt: 'Hi', system: 'Be brief.', think: false, options: opts({ num_predict: 1 }) });
  assert.equal(sys.prompt_eval_count, await promptTokens(srv.base, {
    messages: [{ role: 'system', content: 'Be brief.' }, user('Hi')], enable_thinking: false }));
  const raw = await ollama.generate({ model: MODEL, prompt: 'Once upon a time', raw: true, options: opts({ num_predict: 3 }) });
  assert.equal(raw.prompt_eval_count, await promptTokens(srv.base, { prompt: 'Once upon a time' }));
  checkFinal(raw, 3);
  const load = await ollama.generate({ model: MODEL, prompt: '' });
  assert.equal(load.done, true);
  assert.equal(load.done_reason, 'load');
});

await test('options: stop, num_ctx (a smaller window, clamped above the server\'s), seed', async () => {
  const chars = [...chatText];
  const stop = chars.slice(Math.floor(chars.length / 2), Math.floor(chars.length / 2) + 2).join('');
  const r = await ollama.chat({ model: MODEL, messages: [user('Hello there')], think: false, options: opts({ stop: [stop] }) });
  assert.equal(r.message.content, chatText.slice(0, chatText.indexOf(stop)));
  assert.equal(r.done_reason, 'stop');
  const big = await ollama.chat({ model: MODEL, messages: [user('Hello there')], think: false, options: opts({ num_ctx: 1 << 20 }) });
  assert.equal(big.message.content, chatText);
  const n = await promptTokens(srv.base, { messages: [user('Hello there')], enable_thinking: false });
  const e = await ollama.chat({ model: MODEL, messages: [user('Hello there')], think: false, options: opts({ num_ctx: n + 4 }) })
    .then(() => assert.fail('num_ctx too small was accepted'), (x) => x);
  assert.equal(e.status_code, 400);
  assert.match(e.error, /context length is \d+ tokens/);
  // without num_predict the output may use the rest of num_ctx
  const fill = await ollama.chat({ model: MODEL, messages: [user('Hello there')], think: false,
    options: { temperature: 0, num_ctx: n + 3, num_predict: -1 } });
  assert.ok(fill.eval_count <= 3, `${fill.eval_count}`);
  const s1 = await ollama.chat({ model: MODEL, messages: [user('Hi')], think: false, options: opts({ temperature: 1, seed: 9 }) });
  const s2 = await ollama.chat({ model: MODEL, messages: [user('Hi')], think: false, options: opts({ temperature: 1, seed: 9 }) });
  assert.equal(s1.message.content, s2.message.content);
});

await test('list, show, ps, version', async () => {
  const list = await ollama.list();
  assert.equal(list.models.length, 1);
  assert.equal(list.models[0].name, MODEL);
  assert.equal(list.models[0].details.family, 'qwen3');
  assert.ok(!Number.isNaN(Date.parse(list.models[0].modified_at)));
  const show = await ollama.show({ model: MODEL });
  assert.match(show.template, /<\|im_start\|>/);
  assert.equal(show.model_info['qwen3.context_length'], 1024);
  assert.equal(show.model_info['general.architecture'], 'qwen3');
  assert.ok(show.capabilities.includes('tools') && show.capabilities.includes('thinking'));
  assert.equal((await ollama.show({ model: `${MODEL}:latest` })).details.family, 'qwen3');
  const ps = await ollama.ps();
  assert.equal(ps.models[0].name, MODEL);
  assert.ok(Date.parse(ps.models[0].expires_at) > Date.now());
  const v = await ollama.version();
  assert.match(v.version, /^\d+\.\d+\.\d+/);
});

await test('bad input: ResponseError with Ollama\'s error body, 4xx', async () => {
  const bad = async (fn, status, re) => {
    const e = await fn().then(() => assert.fail('accepted'), (x) => x);
    assert.equal(e.name, 'ResponseError', String(e));
    assert.equal(e.status_code, status, e.error);
    if (re) assert.match(e.error, re);
  };
  const chat = (extra) => () => ollama.chat({ model: MODEL, messages: [user('x')], options: opts({ num_predict: 1 }), ...extra });
  await bad(chat({ model: 'llama3' }), 404, /model 'llama3' not found/);
  await bad(chat({ format: 'json' }), 400, /format/);
  await bad(chat({ format: { type: 'object' } }), 400, /format/);
  await bad(chat({ messages: [{ role: 'user', content: 'x', images: ['AAAA'] }] }), 400, /images/);
  await bad(chat({ messages: 'x' }), 400, /messages/);
  await bad(chat({ messages: [{ role: 'user', content: 5 }] }), 400, /content/);
  await bad(chat({ options: { mirostat: 1 } }), 400, /options\.mirostat/);
  await bad(chat({ options: { num_predict: 0 } }), 400, /num_predict/);
  await bad(chat({ options: { temperature: 'x' } }), 400, /temperature/);
  await bad(chat({ think: 'maximal' }), 400, /think/);
  await bad(chat({ frobnicate: true }), 400, /frobnicate/);
  await bad(chat({ messages: [user('word '.repeat(3000))] }), 400, /context length/);
  await bad(() => ollama.generate({ model: MODEL, prompt: 'x', suffix: 'y' }), 400, /suffix/);
  await bad(() => ollama.generate({ model: MODEL, prompt: 'x', context: [1, 2] }), 400, /context/);
  await bad(() => ollama.generate({ model: MODEL, prompt: 7 }), 400, /prompt/);
  await bad(() => ollama.generate({ model: MODEL, prompt: 'x', raw: true, think: true }), 400, /raw/);
  await bad(() => ollama.show({ model: 'nope' }), 404, /not found/);
  await bad(() => ollama.embed({ model: MODEL, input: 'x' }), 501, /not supported yet/);
  const noKey = new Ollama({ host: srv.base });
  await bad(() => noKey.list(), 401, /API key/);
  const r = await request(srv.base, 'POST', '/api/chat', { headers: { authorization: `Bearer ${KEY}` }, body: '{"model":' });
  assert.equal(r.status, 400);
  assert.equal(typeof JSON.parse(r.body).error, 'string');
});

await test('SIGTERM: clean exit', async () => stopServer(srv));
summary();
