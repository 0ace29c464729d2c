// responses_test.mjs — the OpenAI Responses API through the official `openai`
// SDK against `cinfer serve` on the tiny random model: create, stream (event
// order, sequence numbers, deltas that add up), reasoning items,
// previous_response_id over three turns, a function tool round trip, the
// store (retrieve, delete, cancel) and errors as the SDK's exception classes.
// A random model's text is gibberish: the checks are on structure, order,
// counts and consistency — usage against /tokenize of the same conversation.
// usage: node responses_test.mjs CINFER_BIN MODEL_DIR WORK_DIR
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import { KEY, MODEL, startServer, stopServer, test, summary, promptTokens } from './serve_helper.mjs';

const [bin, modelDir, workDir] = process.argv.slice(2);
const srv = await startServer(bin, modelDir, workDir);
const client = new OpenAI({ apiKey: KEY, baseURL: `${srv.base}/v1`, maxRetries: 0, timeout: 120000 });
const noThink = { model: MODEL, temperature: 0, reasoning: { effort: 'none' } };
const user = (content) => ({ role: 'user', content });
const messageText = (r) => r.output.filter((o) => o.type === 'message').map((o) => o.content.map((c) => c.text).join('')).join('');

let first;
await test('responses.create: a message, usage against /tokenize', async () => {
  const r = await client.responses.create({ ...noThink, input: 'Hello there', max_output_tokens: 8 });
  assert.match(r.id, /^resp_[0-9a-f]{32}$/);
  assert.equal(r.object, 'response');
  assert.equal(r.model, MODEL);
  assert.equal(r.output.length, 1);
  const m = r.output[0];
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.content.length, 1);
  assert.equal(m.content[0].type, 'output_text');
  assert.ok(m.content[0].text.length > 0);
  assert.equal(r.output_text, m.content[0].text); // the SDK's convenience field
  assert.equal(r.usage.output_tokens, 8);
  assert.equal(r.status, 'incomplete');
  assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r.usage.input_tokens, await promptTokens(srv.base, { messages: [user('Hello there')], enable_thinking: false }));
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + 8);
  assert.equal(r.usage.output_tokens_details.reasoning_tokens, 0);
  assert.equal(r.max_output_tokens, 8);
  assert.equal(r.temperature, 0);
  first = r;
});

await test('responses.create: instructions become the system turn', async () => {
  // with the fields the Agents SDK sends (accepted with no effect, documented)
  const r = await client.responses.create({ ...noThink, instructions: 'Answer briefly.', input: [user('Hi')], max_output_tokens: 2,
    include: ['reasoning.encrypted_content'], parallel_tool_calls: true, truncation: 'disabled', metadata: { k: 'v' },
    text: { format: { type: 'text' } }, service_tier: 'auto' });
  assert.deepEqual(r.metadata, { k: 'v' });
  assert.equal(r.instructions, 'Answer briefly.');
  assert.equal(r.usage.input_tokens, await promptTokens(srv.base, {
    messages: [{ role: 'system', content: 'Answer briefly.' }, user('Hi')], enable_thinking: false }));
});

await test('responses.create: the model\'s thinking is a reasoning item', async () => {
  const r = await client.responses.create({ model: MODEL, temperature: 0, input: 'Think first', max_output_tokens: 6 });
  assert.equal(r.output[0].type, 'reasoning');
  assert.equal(r.output[0].content[0].type, 'reasoning_text');
  assert.ok(r.output[0].content[0].text.length > 0);
  assert.deepEqual(r.output[0].summary, []);
  // cut inside the thinking: every output token was reasoning; the message is empty
  assert.equal(r.usage.output_tokens_details.reasoning_tokens, 6);
  assert.equal(r.output[1].type, 'message');
  assert.equal(r.output_text, '');
});

// Collects a stream's events and checks what every stream must satisfy.
async function streamed(params) {
  const stream = client.responses.stream(params);
  const events = [];
  for await (const ev of stream) events.push(structuredClone(ev)); // the SDK mutates items it accumulates
  await stream.finalResponse(); // the SDK's own accumulation must not throw
  const final = events.at(-1).response; // the completed / incomplete response
  const types = events.map((e) => e.type);
  assert.deepEqual(types.slice(0, 2), ['response.created', 'response.in_progress']);
  assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)), types.at(-1));
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  assert.equal(types.at(-1), final.status === 'completed' ? 'response.completed' : 'response.incomplete');
  // every item: added, then its events, then done, in output order
  const added = events.filter((e) => e.type === 'response.output_item.added').map((e) => e.output_index);
  const done = events.filter((e) => e.type === 'response.output_item.done');
  assert.deepEqual(added, added.map((_, i) => i));
  assert.deepEqual(done.map((e) => e.output_index), added);
  assert.deepEqual(done.map((e) => e.item), final.output);
  return { events, types, final };
}

await test('responses.stream: message event order, deltas add up to the text', async () => {
  const { events, types, final } = await streamed({ ...noThink, input: 'Hello there', max_output_tokens: 8 });
  assert.deepEqual(types.filter((t) => !t.endsWith('.delta')), ['response.created', 'response.in_progress',
    'response.output_item.added', 'response.content_part.added', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.incomplete']);
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.ok(deltas.length >= 1);
  const text = deltas.map((e) => e.delta).join('');
  assert.equal(events.find((e) => e.type === 'response.output_text.done').text, text);
  assert.equal(messageText(final), text);
  assert.equal(text, first.output_text, 'greedy: the same text streamed or not');
  assert.deepEqual(final.usage, first.usage);
  assert.equal(final.id, events[0].response.id);
});

await test('responses.stream: reasoning deltas, then the message', async () => {
  const { events, types, final } = await streamed({ model: MODEL, temperature: 0, input: 'Think first', max_output_tokens: 6 });
  const i = types.indexOf('response.reasoning_text.delta');
  assert.ok(i > types.indexOf('response.content_part.added'));
  const text = events.filter((e) => e.type === 'response.reasoning_text.delta').map((e) => e.delta).join('');
  assert.equal(events.find((e) => e.type === 'response.reasoning_text.done').text, text);
  assert.equal(final.output[0].type, 'reasoning');
  assert.equal(final.output[0].content[0].text, text);
  assert.equal(final.output[1].type, 'message');
  assert.ok(types.lastIndexOf('response.reasoning_text.delta') < types.indexOf('response.reasoning_text.done'));
});

await test('previous_response_id over three turns carries the conversation', async () => {
  const r1 = await client.responses.create({ ...noThink, instructions: 'Only for turn one.', input: 'My name is Ann.', max_output_tokens: 4 });
  const r2 = await client.responses.create({ ...noThink, previous_response_id: r1.id, input: 'What is my name?', max_output_tokens: 4 });
  const r3 = await client.responses.create({ ...noThink, previous_response_id: r2.id, input: [user('Say it again.')], max_output_tokens: 4 });
  assert.equal(r3.previous_response_id, r2.id);
  const conv = [user('My name is Ann.'), { role: 'assistant', content: r1.output_text }, user('What is my name?'),
    { role: 'assistant', content: r2.output_text }, user('Say it again.')];
  // instructions are not carried over (as OpenAI specifies)
  assert.equal(r2.usage.input_tokens, await promptTokens(srv.base, { messages: conv.slice(0, 3), enable_thinking: false }));
  assert.equal(r3.usage.input_tokens, await promptTokens(srv.base, { messages: conv, enable_thinking: false }));
  assert.ok(r3.usage.input_tokens_details.cached_tokens > 0, 'the resent history hits the prefix cache');
});

const tools = [{ type: 'function', name: 'get_weather', description: 'Weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
await test('function tool round trip (previous_response_id and explicit items agree)', async () => {
  const r1 = await client.responses.create({ ...noThink, input: 'Weather in Paris?', tools,
    tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 40 });
  const call = r1.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(r1.output));
  assert.equal(call.name, 'get_weather');
  assert.match(call.call_id, /^call_/);
  assert.equal(typeof call.arguments, 'string');
  const result = { type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 21}' };
  const r2 = await client.responses.create({ ...noThink, previous_response_id: r1.id, input: [result], tools, max_output_tokens: 3 });
  assert.equal(r2.output.at(-1).type === 'message' || r2.output.at(-1).type === 'function_call', true);
  // the same conversation sent as items, without the store
  const r3 = await client.responses.create({ ...noThink, store: false, tools, max_output_tokens: 3,
    input: [user('Weather in Paris?'), ...r1.output.filter((o) => o.type !== 'message'), result] });
  assert.equal(r3.usage.input_tokens, r2.usage.input_tokens);
  const visible = messageText(r1);
  assert.equal(r2.usage.input_tokens, await promptTokens(srv.base, { enable_thinking: false, tools: tools.map(
    ({ type, ...fn }) => ({ type, function: fn })), messages: [user('Weather in Paris?'),
    { role: 'assistant', content: visible, tool_calls: [{ id: call.call_id, type: 'function',
      function: { name: call.name, arguments: call.arguments } }] },
    { role: 'tool', tool_call_id: call.call_id, content: result.output }] }));
});

await test('responses.stream: a function call item with argument events', async () => {
  const { events, types, final } = await streamed({ ...noThink, input: 'Weather in Rome?', tools, tool_choice: 'required',
    max_output_tokens: 40 });
  const added = events.find((e) => e.type === 'response.output_item.added' && e.item.type === 'function_call');
  assert.ok(added, types.join(' '));
  assert.equal(added.item.arguments, '');
  const args = events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
  const doneEv = events.find((e) => e.type === 'response.function_call_arguments.done');
  assert.equal(doneEv.arguments, args);
  const item = final.output.find((o) => o.type === 'function_call');
  assert.equal(item.arguments, args);
  assert.equal(item.name, 'get_weather');
});

await test('stored responses: retrieve, delete, cancel; store: false is not kept', async () => {
  const got = await client.responses.retrieve(first.id);
  assert.deepEqual(got.output, first.output);
  assert.deepEqual(got.usage, first.usage);
  await assert.rejects(client.responses.cancel(first.id), OpenAI.BadRequestError);
  await client.responses.delete(first.id);
  await assert.rejects(client.responses.retrieve(first.id), OpenAI.NotFoundError);
  await assert.rejects(client.responses.delete(first.id), OpenAI.NotFoundError);
  const r = await client.responses.create({ ...noThink, input: 'x', store: false, max_output_tokens: 1 });
  assert.equal(r.store, false);
  await assert.rejects(client.responses.retrieve(r.id), OpenAI.NotFoundError);
  await assert.rejects(client.responses.create({ ...noThink, previous_response_id: r.id, input: 'y' }), OpenAI.NotFoundError);
});

await test('bad input: 4xx in OpenAI\'s shape naming the field, never a crash', async () => {
  const bad = async (params, status, param) => {
    try {
      await client.responses.create({ model: MODEL, max_output_tokens: 2, ...params });
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.status, status, `${JSON.stringify(params).slice(0, 80)}: ${e.message}`);
      if (param !== undefined) assert.equal(e.param, param, e.message);
      assert.equal(typeof e.error.message, 'string');
      return e;
    }
    assert.fail(`accepted ${JSON.stringify(params).slice(0, 200)}`);
  };
  await bad({ input: 'x', text: { format: { type: 'json_schema', name: 'n', schema: { type: 'object' } } } }, 400, 'text.format');
  await bad({ input: 'x', frobnicate: 1 }, 400, 'frobnicate');
  await bad({ input: 5 }, 400, 'input');
  await bad({}, 400, 'input');
  await bad({ input: [{ type: 'image_generation_call', id: 'x' }] }, 400, 'input[0]');
  await bad({ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x' }] }] }, 400, 'input[0].content');
  await bad({ input: [{ role: 'wizard', content: 'x' }] }, 400, 'input[0]');
  await bad({ input: [{ type: 'function_call', call_id: 1, name: 'f', arguments: '{}' }] }, 400, 'input[0]');
  await bad({ input: 'x', tools: [{ type: 'web_search' }] }, 400, 'tools[0]');
  await bad({ input: 'x', tools, tool_choice: { type: 'function', name: 'nope' } }, 400, 'tool_choice');
  await bad({ input: 'x', reasoning: { effort: 'maximal' } }, 400, 'reasoning.effort');
  await bad({ input: 'x', temperature: 'hot' }, 400, 'temperature');
  await bad({ input: 'x', max_output_tokens: 0 }, 400, 'max_output_tokens');
  await bad({ input: 'x', background: true }, 400, 'background');
  await bad({ input: 'x', include: ['message.output_text.logprobs'] }, 400, 'include');
  await bad({ input: 'x', model: 'gpt-5' }, 404, 'model');
  await bad({ input: 'x', previous_response_id: 'resp_unknown' }, 404, 'previous_response_id');
  await bad({ input: 'word '.repeat(3000) }, 400, 'input');
  await bad({ input: 'x', max_output_tokens: 100000 }, 400, 'max_output_tokens');
  await bad({ input: Array.from({ length: 5000 }, () => user('x')) }, 400, 'input');
  const raw = await fetch(`${srv.base}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{"input":' });
  assert.equal(raw.status, 400);
  assert.equal(typeof (await raw.json()).error.message, 'string');
});

await test('SIGTERM: clean exit', async () => stopServer(srv));
summary();
