// anthropic_test.mjs — the Anthropic Messages API through the official
// @anthropic-ai/sdk against `cinfer serve` on the tiny random model: create,
// stream (event order, deltas that add up), thinking blocks, stop sequences,
// a tool use round trip, count_tokens, both auth headers, and errors as the
// SDK's exception classes. Checks are on structure and consistency (usage
// against /tokenize of the same conversation), not on the gibberish text.
// usage: node anthropic_test.mjs CINFER_BIN MODEL_DIR WORK_DIR
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { KEY, MODEL, startServer, stopServer, test, summary, promptTokens, request, parseSSE } from './serve_helper.mjs';

const [bin, modelDir, workDir] = process.argv.slice(2);
const srv = await startServer(bin, modelDir, workDir);
const client = new Anthropic({ apiKey: KEY, baseURL: srv.base, maxRetries: 0, timeout: 120000 });
const base = { model: MODEL, temperature: 0 };
const user = (content) => ({ role: 'user', content });
const textOf = (m) => m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

let first;
await test('messages.create: a text block, usage against /tokenize and count_tokens', async () => {
  const messages = [user('Hello there')];
  const m = await client.messages.create({ ...base, max_tokens: 8, messages });
  assert.match(m.id, /^msg_[0-9a-f]{32}$/);
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.model, MODEL);
  assert.equal(m.content.length, 1);
  assert.equal(m.content[0].type, 'text');
  assert.ok(m.content[0].text.length > 0);
  assert.equal(m.stop_reason, 'max_tokens');
  assert.equal(m.stop_sequence, null);
  assert.equal(m.usage.output_tokens, 8);
  const n = await promptTokens(srv.base, { messages, enable_thinking: false });
  assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, n);
  assert.equal((await client.messages.countTokens({ model: MODEL, messages })).input_tokens, n);
  first = m;
});

await test('system as a string or as text blocks gives the same prompt', async () => {
  const messages = [user('Hi')];
  const a = await client.messages.countTokens({ model: MODEL, system: 'Be brief.', messages });
  const b = await client.messages.countTokens({ model: MODEL, system: [{ type: 'text', text: 'Be brief.' }], messages });
  assert.equal(a.input_tokens, b.input_tokens);
  assert.equal(a.input_tokens, await promptTokens(srv.base, {
    messages: [{ role: 'system', content: 'Be brief.' }, ...messages], enable_thinking: false }));
});

await test('messages.stream: event order, deltas add up to the final message', async () => {
  const stream = client.messages.stream({ ...base, max_tokens: 8, messages: [user('Hello there')] });
  const events = [];
  for await (const ev of stream) events.push(structuredClone(ev));
  const final = await stream.finalMessage();
  const types = events.map((e) => e.type);
  assert.deepEqual(types.filter((t) => t !== 'content_block_delta'),
    ['message_start', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop']);
  const text = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('');
  assert.equal(text, textOf(final));
  assert.equal(text, first.content[0].text, 'greedy: the same text streamed or not');
  assert.equal(final.stop_reason, 'max_tokens');
  assert.deepEqual(final.usage, first.usage);
  assert.equal(events[0].message.usage.input_tokens, first.usage.input_tokens + first.usage.cache_read_input_tokens);
});

await test('raw stream: named events, a ping after message_start', async () => {
  const r = await request(srv.base, 'POST', '/v1/messages', { headers: { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' },
    body: { ...base, max_tokens: 3, stream: true, messages: [user('Hi')] } });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  const evs = parseSSE(r.body);
  assert.deepEqual(evs.slice(0, 2).map((e) => e.event), ['message_start', 'ping']);
  for (const e of evs) assert.equal(e.event, e.data.type);
});

await test('thinking blocks: budget_tokens caps the thinking, then the answer', async () => {
  const params = { ...base, max_tokens: 16, thinking: { type: 'enabled', budget_tokens: 4 }, messages: [user('Think first')] };
  const m = await client.messages.create(params);
  assert.deepEqual(m.content.map((b) => b.type), ['thinking', 'text'], JSON.stringify(m.content));
  assert.ok(m.content[0].thinking.length > 0);
  assert.equal(typeof m.content[0].signature, 'string');
  assert.equal(m.usage.output_tokens, 16);
  assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens,
    await promptTokens(srv.base, { messages: params.messages, enable_thinking: true }));
  const stream = client.messages.stream(params);
  const events = [];
  for await (const ev of stream) events.push(structuredClone(ev));
  const deltas = events.filter((e) => e.type === 'content_block_delta');
  const thinking = deltas.filter((e) => e.delta.type === 'thinking_delta');
  assert.ok(thinking.length > 0);
  assert.ok(thinking.every((e) => e.index === 0) && deltas.filter((e) => e.delta.type === 'text_delta').every((e) => e.index === 1));
  assert.equal(thinking.map((e) => e.delta.thinking).join(''), m.content[0].thinking);
  const final = await stream.finalMessage();
  assert.deepEqual(final.content, m.content);
  // without `thinking` the model does not think (Anthropic's default)
  const plain = await client.messages.create({ ...base, max_tokens: 4, messages: [user('Think first')] });
  assert.deepEqual(plain.content.map((b) => b.type), ['text']);
});

await test('stop_sequences: the text ends before the match, stop_reason names it', async () => {
  const text = first.content[0].text;
  const chars = [...text];
  const stop = chars.slice(Math.floor(chars.length / 2), Math.floor(chars.length / 2) + 2).join('');
  const m = await client.messages.create({ ...base, max_tokens: 8, stop_sequences: ['\u0001never', stop], messages: [user('Hello there')] });
  assert.equal(m.stop_reason, 'stop_sequence');
  assert.equal(m.stop_sequence, stop);
  assert.equal(textOf(m), text.slice(0, text.indexOf(stop)));
  assert.ok(m.usage.output_tokens < 8);
});

const tools = [{ name: 'get_weather', description: 'Weather of a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
await test('tool use round trip', async () => {
  const messages = [user('Weather in Paris?')];
  const m = await client.messages.create({ ...base, max_tokens: 40, tools, tool_choice: { type: 'tool', name: 'get_weather' }, messages });
  const use = m.content.find((b) => b.type === 'tool_use');
  assert.ok(use, JSON.stringify(m.content));
  assert.equal(use.name, 'get_weather');
  assert.match(use.id, /^toolu_/);
  assert.equal(typeof use.input, 'object');
  assert.ok(['tool_use', 'max_tokens'].includes(m.stop_reason), m.stop_reason);
  const turn2 = [...messages, { role: 'assistant', content: m.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '21 degrees' }] }];
  const m2 = await client.messages.create({ ...base, max_tokens: 3, tools, messages: turn2 });
  assert.equal(m2.usage.output_tokens, 3);
  const n = (await client.messages.countTokens({ model: MODEL, tools, messages: turn2 })).input_tokens;
  assert.equal(m2.usage.input_tokens + m2.usage.cache_read_input_tokens, n);
  assert.equal(n, await promptTokens(srv.base, { enable_thinking: false,
    tools: tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.input_schema } })),
    // a turn's text blocks join with newlines
    messages: [...messages, { role: 'assistant', content: m.content.filter((b) => b.type === 'text').map((b) => b.text).join('\n'), tool_calls: [{ id: use.id, type: 'function',
      function: { name: use.name, arguments: JSON.stringify(use.input) } }] },
    { role: 'tool', tool_call_id: use.id, content: '21 degrees' }] }));
});

await test('messages.stream: a tool_use block with input_json_delta', async () => {
  const stream = client.messages.stream({ ...base, max_tokens: 40, tools, tool_choice: { type: 'any' }, messages: [user('Rome?')] });
  const events = [];
  for await (const ev of stream) events.push(structuredClone(ev));
  const start = events.find((e) => e.type === 'content_block_start' && e.content_block.type === 'tool_use');
  assert.ok(start, JSON.stringify(events.map((e) => e.type)));
  assert.deepEqual(start.content_block.input, {});
  const json = events.filter((e) => e.type === 'content_block_delta' && e.index === start.index).map((e) => e.delta.partial_json).join('');
  const final = await stream.finalMessage();
  assert.deepEqual(final.content[start.index].input, JSON.parse(json));
  assert.equal(final.content[start.index].name, 'get_weather');
});

await test('auth: x-api-key and Bearer; a wrong key is AuthenticationError', async () => {
  const bearer = new Anthropic({ authToken: KEY, apiKey: null, baseURL: srv.base, maxRetries: 0 });
  assert.ok((await bearer.messages.countTokens({ model: MODEL, messages: [user('x')] })).input_tokens > 0);
  const wrong = new Anthropic({ apiKey: 'sk-wrong', baseURL: srv.base, maxRetries: 0 });
  const e = await wrong.messages.create({ ...base, max_tokens: 1, messages: [user('x')] }).catch((x) => x);
  assert.ok(e instanceof Anthropic.AuthenticationError, String(e));
  assert.deepEqual(Object.keys(e.error), ['type', 'error']);
  assert.equal(e.error.error.type, 'authentication_error');
});

await test('bad input: the SDK\'s exception classes, Anthropic\'s error shape', async () => {
  const bad = async (params, cls, type = 'invalid_request_error') => {
    const e = await client.messages.create({ ...base, max_tokens: 4, messages: [user('x')], ...params }).then(
      () => assert.fail(`accepted ${JSON.stringify(params).slice(0, 200)}`), (x) => x);
    assert.ok(e instanceof cls, `${JSON.stringify(params).slice(0, 100)}: ${e}`);
    assert.equal(e.error.type, 'error');
    assert.equal(e.error.error.type, type);
    assert.equal(typeof e.error.error.message, 'string');
  };
  await bad({ max_tokens: undefined }, Anthropic.BadRequestError);
  await bad({ messages: 'x' }, Anthropic.BadRequestError);
  await bad({ messages: [] }, Anthropic.BadRequestError);
  await bad({ messages: [{ role: 'system', content: 'x' }] }, Anthropic.BadRequestError);
  await bad({ messages: [user([{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } }])] }, Anthropic.BadRequestError);
  await bad({ messages: [user([{ type: 'mystery' }])] }, Anthropic.BadRequestError);
  await bad({ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, Anthropic.BadRequestError);
  await bad({ tools, tool_choice: { type: 'tool', name: 'nope' } }, Anthropic.BadRequestError);
  await bad({ thinking: { type: 'enabled', budget_tokens: 4 } }, Anthropic.BadRequestError);
  await bad({ temperature: 1.5 }, Anthropic.BadRequestError);
  await bad({ top_k: 'x' }, Anthropic.BadRequestError);
  await bad({ stop_sequences: [1] }, Anthropic.BadRequestError);
  await bad({ mcp_servers: [] }, Anthropic.BadRequestError);
  await bad({ messages: [user('word '.repeat(3000))] }, Anthropic.BadRequestError);
  await bad({ model: 'claude-opus-4' }, Anthropic.NotFoundError, 'not_found_error');
  const r = await request(srv.base, 'POST', '/v1/messages', { headers: { 'x-api-key': KEY }, body: '[1,2' });
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.body).error.type, 'invalid_request_error');
});

await test('SIGTERM: clean exit', async () => stopServer(srv));
summary();
