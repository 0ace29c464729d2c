// webui_test.mjs — the web chat of `cinfer serve` (webui/) in headless
// Chromium (puppeteer-core) against a tiny random-weight Qwen3.
// usage: node webui_test.mjs CINFER_BIN MODEL_DIR WORK_DIR CHROMIUM
//
// The model's template opens <think> in the generation prompt (as the
// *-Thinking-2507 templates do; the same edit as tests/server/sdk_test.mjs),
// so thinking is deterministic with random weights: with thinking on, the
// answer starts as reasoning and the thinking budget forces "</think>"; with
// it off the template closes the thinking in the prompt. The page's settings
// use temperature 0, so what the page shows can be checked against the same
// request sent to the API directly (the server runs without prefix caching,
// so both take the same arithmetic path).
// No sleeps as synchronisation: every wait polls a DOM or /metrics
// condition with a bound.
import puppeteer from 'puppeteer-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const [bin, modelDir, workDir, chromium] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const KEY = 'sk-webui-test';
const MODEL = 'tiny';
const MAX_LEN = 8192;

// ---------------------------------------------------------------- setup
fs.mkdirSync(workDir, { recursive: true });
const model = path.join(workDir, 'tiny-think');
fs.rmSync(model, { recursive: true, force: true });
fs.mkdirSync(model);
for (const f of fs.readdirSync(modelDir)) fs.copyFileSync(path.join(modelDir, f), path.join(model, f));
const tcfg = JSON.parse(fs.readFileSync(path.join(model, 'tokenizer_config.json'), 'utf8'));
const genPrompt = "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking is defined and enable_thinking is false %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}\n{%- endif %}";
assert.ok(tcfg.chat_template.includes(genPrompt), 'the Qwen3 template has the expected generation prompt');
fs.writeFileSync(path.join(model, 'chat_template.jinja'), tcfg.chat_template.replace(genPrompt,
  "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking is defined and enable_thinking is false %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- else %}\n        {{- '<think>\\n' }}\n    {%- endif %}\n{%- endif %}"));

const servers = [];
async function startServer(extra) {
  const p = spawn(bin, ['serve', model, '--port', '0', '--served-model-name', MODEL, '--max-model-len', String(MAX_LEN),
    '--kv-cache-memory', '0.1', '--threads', '2', '--no-prefix-caching', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  servers.push(p);
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start in 60 s:\n' + log)), 60000);
    p.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    p.once('exit', (code) => reject(new Error(`server exited (${code}):\n${log}`)));
  });
  return `http://127.0.0.1:${port}`;
}
function stopServers() {
  for (const p of servers) if (p.exitCode === null) p.kill('SIGKILL');
}
process.on('exit', stopServers);

async function pollUntil(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last && last.ok) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
    }).on('error', reject);
  });
}

async function metrics(base) {
  const text = (await get(`${base}/metrics`)).body.toString();
  const val = (name) => Number((text.match(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm')) || [])[1]);
  return { running: val('vllm:num_requests_running'), used: val('cinfer_kv_blocks_used'),
    generated: val('vllm:generation_tokens_total') };
}

async function chatApi(base, body, key) {
  const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ model: MODEL, ...body }) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).choices[0];
}

let failures = 0;
async function test(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n${e.stack}`);
  }
}

const base = await startServer([]);
await pollUntil('/health', async () => ({ ok: (await get(`${base}/health`)).status === 200 }));

// ------------------------------------------------------------ HTTP side
await test('/ and its assets: gzip, ETag revalidation, CSP, identity encoding', async () => {
  const gz = await get(`${base}/`, { 'Accept-Encoding': 'gzip, deflate' });
  assert.equal(gz.status, 200);
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.match(gz.headers['content-type'], /^text\/html/);
  const csp = gz.headers['content-security-policy'];
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /default-src 'none'/);
  assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), csp);
  const plain = await get(`${base}/`, { 'Accept-Encoding': 'gzip;q=0, identity' });
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.deepEqual(zlib.gunzipSync(gz.body), plain.body);
  assert.match(plain.body.toString(), /<script src="app.js" defer><\/script>/);
  assert.ok(!/<script>/.test(plain.body.toString()), 'no inline script in the page');
  assert.ok(gz.headers.etag && gz.headers.etag === plain.headers.etag);
  const again = await get(`${base}/`, { 'If-None-Match': gz.headers.etag, 'Accept-Encoding': 'gzip' });
  assert.equal(again.status, 304);
  assert.equal(again.body.length, 0);
  for (const [p, type] of [['/app.js', /^text\/javascript/], ['/app.css', /^text\/css/], ['/favicon.svg', /^image\/svg/]]) {
    const r = await get(`${base}${p}`);
    assert.equal(r.status, 200, p);
    assert.match(r.headers['content-type'], type);
    assert.equal(r.headers['cache-control'], 'no-cache');
  }
  // the page weight budget: everything the page loads, gzip-encoded
  let total = 0;
  for (const p of ['/', '/app.js', '/app.css', '/favicon.svg']) total += (await get(`${base}${p}`, { 'Accept-Encoding': 'gzip' })).body.length;
  console.log(`     page weight ${total} B gzip`);
  assert.ok(total <= 300 * 1024, `page weight ${total} B gzip is over 300 KB`);
});

await test('--no-webui: / is 404, the API still answers', async () => {
  const off = await startServer(['--no-webui']);
  assert.equal((await get(`${off}/`)).status, 404);
  assert.equal((await get(`${off}/app.js`)).status, 404);
  assert.equal((await get(`${off}/v1/models`)).status, 200);
  servers.pop().kill('SIGKILL');
});

// ------------------------------------------------------------- browser
const browser = await puppeteer.launch({ executablePath: chromium, headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run'] });
const consoleErrors = [];
const xssCalls = [];

async function newPage(url, context = browser) {
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${url}: ${m.text()}`); });
  page.on('pageerror', (e) => consoleErrors.push(`${url}: pageerror ${e.message}`));
  // anything injected that runs would call this
  await page.exposeFunction('__xss', (what) => xssCalls.push(String(what)));
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelectorAll('#model option').length > 0 || !document.querySelector('#banner').hidden,
    { timeout: 15000 });
  return page;
}

async function setSettings(page, values) {
  await page.click('#settings-top');
  await page.waitForSelector('#settings[open]');
  await page.evaluate((v) => {
    for (const [k, x] of Object.entries(v)) {
      const e = document.getElementById('s-' + k);
      if (e.type === 'checkbox') e.checked = x; else e.value = x;
    }
  }, values);
  await page.click('#s-save');
  await page.waitForFunction(() => !document.querySelector('#settings').open);
}

const lastAnswer = (page) => page.evaluate(() => {
  const a = [...document.querySelectorAll('#messages .msg.assistant')].pop();
  return { text: a ? (a.querySelector('.answer') || { textContent: '' }).textContent : '',
    streaming: !!document.querySelector('.msg.streaming'), n: document.querySelectorAll('#messages .msg').length };
});
const waitIdle = (page, ms = 60000) => page.waitForFunction(() => !document.querySelector('.msg.streaming')
  && document.querySelector('#stop').hidden, { timeout: ms, polling: 50 });
const stored = (page) => page.evaluate(() => {
  const idx = JSON.parse(localStorage.getItem('cinfer.conversations'));
  return JSON.parse(localStorage.getItem('cinfer.conv.' + idx[0].id));
});

const page = await newPage(`${base}/`);

await test('the page loads the model list', async () => {
  assert.equal(await page.$eval('#model', (s) => s.value), MODEL);
  assert.equal(await page.$eval('#banner', (b) => b.hidden), true);
});

await test('IME: Enter that ends a composition does not send; Enter sends; answer streams in', async () => {
  await setSettings(page, { temperature: '0', max_tokens: '500', thinking: false, thinking_budget: '' });
  await page.focus('#input');
  await page.keyboard.type('你好, tell me a story');
  await page.evaluate(() => {
    const ta = document.getElementById('input');
    ta.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', isComposing: true, bubbles: true, cancelable: true }));
  });
  assert.equal((await lastAnswer(page)).n, 0, 'a composing Enter sent the message');
  await page.keyboard.down('Shift');
  await page.keyboard.press('Enter');
  await page.keyboard.up('Shift');
  assert.equal((await lastAnswer(page)).n, 0, 'Shift+Enter sent the message');
  assert.match(await page.$eval('#input', (t) => t.value), /story\n$/);
  await page.keyboard.press('Enter');
  // the text grows over several observations while the answer streams
  const seen = new Set();
  await pollUntil('the answer to grow over 3 observations while streaming', async () => {
    const a = await lastAnswer(page);
    if (a.streaming && a.text.length > 0) seen.add(a.text.length);
    return { ok: seen.size >= 3, seen: [...seen], a };
  });
  await waitIdle(page);
  const conv = await stored(page);
  assert.equal(conv.messages.length, 2);
  assert.equal(conv.messages[0].content, '你好, tell me a story');
  // the same request straight to the API gives the same text
  const ref = await chatApi(base, { messages: [{ role: 'user', content: '你好, tell me a story' }], temperature: 0,
    max_tokens: 500, chat_template_kwargs: { enable_thinking: false } });
  assert.equal(conv.messages[1].content, ref.message.content);
  assert.equal(conv.messages[1].stats.completion, 500);
  assert.equal(conv.messages[1].reasoning, undefined);
  const statsText = await page.$eval('.msg.assistant .msg-stats', (e) => e.textContent);
  assert.match(statsText, /500 tokens · [\d.]+ tok\/s · prompt \d+ · context \d+\/8192/);
  assert.match(statsText, /cut at max tokens/);
});

await test('thinking: shown live in an open block, folded with its time when the answer starts', async () => {
  await page.click('#new-chat');
  await page.click('#think-toggle');
  assert.equal(await page.$eval('#think-toggle', (b) => b.getAttribute('aria-pressed')), 'true');
  await setSettings(page, { thinking_budget: '120', max_tokens: '400' });
  await page.type('#input', 'Think first');
  await page.keyboard.press('Enter');
  await pollUntil('an open thinking block with text while streaming', async () => page.evaluate(() => {
    const d = document.querySelector('.msg.streaming details.thinking');
    return { ok: !!d && d.open && d.querySelector('.think-body').textContent.length > 0 };
  }));
  await pollUntil('the thinking block to fold when the answer starts', async () => page.evaluate(() => {
    const d = document.querySelector('.msg.assistant details.thinking');
    const a = document.querySelector('.msg.assistant .answer');
    return { ok: !!d && !d.open && !!a && a.textContent.length > 0,
      label: d && d.querySelector('summary').textContent };
  }));
  await waitIdle(page);
  assert.match(await page.$eval('.msg.assistant details.thinking summary', (s) => s.textContent), /^Thought for [\d.]+ s$/);
  const conv = await stored(page);
  const ref = await chatApi(base, { messages: [{ role: 'user', content: 'Think first' }], temperature: 0, max_tokens: 400,
    chat_template_kwargs: { enable_thinking: true }, thinking_budget: 120 });
  assert.equal(conv.messages[1].reasoning, ref.message.reasoning_content);
  assert.equal(conv.messages[1].content, ref.message.content);
  assert.ok(ref.message.reasoning_content.length > 0 && ref.message.content.length > 0);
});

await test('a 2,000-token answer: throttled rendering, no layout shift, no scroll jump when scrolled up', async () => {
  await page.click('#new-chat');
  await page.click('#think-toggle'); // off
  await setSettings(page, { max_tokens: '2000' });
  await page.evaluate(() => {
    globalThis.__cls = 0;
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) if (!e.hadRecentInput) globalThis.__cls += e.value;
    }).observe({ type: 'layout-shift' });
    globalThis.__cinfer.renders = 0;
    globalThis.__cinfer.chunks = 0;
  });
  await page.type('#input', 'Write a long essay');
  await page.keyboard.press('Enter');
  // once the answer overflows the view, the reader scrolls up: the page must not pull them down
  await pollUntil('the answer to overflow the thread', async () => page.evaluate(() => {
    const t = document.getElementById('thread');
    return { ok: t.scrollHeight > t.clientHeight + 400 && !!document.querySelector('.msg.streaming') };
  }), 60000);
  await page.evaluate(() => { document.getElementById('thread').scrollTop = 100; });
  const before = await lastAnswer(page);
  await pollUntil('more text while scrolled up', async () => {
    const a = await lastAnswer(page);
    return { ok: a.text.length > before.text.length + 200 || !a.streaming };
  }, 60000);
  assert.equal(await page.$eval('#thread', (t) => t.scrollTop), 100, 'the thread scrolled while the reader was up');
  await waitIdle(page, 120000);
  const r = await page.evaluate(() => ({ cls: globalThis.__cls, ...globalThis.__cinfer }));
  const conv = await stored(page);
  assert.equal(conv.messages[1].stats.completion, 2000);
  console.log(`     ${r.chunks} stream events, ${r.renders} markdown renders, layout shift ${r.cls}`);
  assert.ok(r.renders < r.chunks / 4, `renders ${r.renders} for ${r.chunks} chunks: not throttled`);
  assert.ok(r.cls < 0.01, `cumulative layout shift ${r.cls}`);
});

await test('Stop aborts the stream; the server cancels the request and frees its KV blocks', async () => {
  await page.click('#new-chat');
  await setSettings(page, { max_tokens: '6000' });
  const m0 = await metrics(base);
  assert.equal(m0.running, 0);
  assert.equal(m0.used, 0);
  await page.type('#input', 'Go on forever');
  await page.keyboard.press('Enter');
  const seen = new Set();
  await pollUntil('the answer to stream', async () => {
    const a = await lastAnswer(page);
    if (a.streaming && a.text.length) seen.add(a.text.length);
    return { ok: seen.size >= 2 };
  });
  const mid = await metrics(base);
  assert.equal(mid.running, 1, 'the request runs');
  assert.ok(mid.used > 0, 'it holds KV blocks');
  await page.click('#stop');
  await waitIdle(page);
  const m1 = await pollUntil('/metrics: nothing running, no KV block used', async () => {
    const m = await metrics(base);
    return { ok: m.running === 0 && m.used === 0, ...m };
  });
  const generated = m1.generated - m0.generated;
  assert.ok(generated < 6000, `the request ran to its end (${generated} tokens) instead of being cancelled`);
  const conv = await stored(page);
  assert.equal(conv.messages[1].stats.stopped, true);
  assert.match(await page.$eval('.msg.assistant .msg-stats', (e) => e.textContent), /stopped/);
  // it stays stopped: the counter does not move on
  assert.equal((await metrics(base)).generated, m1.generated);
});

await test('regenerate, edit and resend', async () => {
  const n = (await stored(page)).messages.length;
  await setSettings(page, { max_tokens: '20' });
  await page.evaluate(() => document.querySelector('[data-action="regenerate"]').click());
  await waitIdle(page);
  assert.equal((await stored(page)).messages.length, n);
  assert.equal((await stored(page)).messages[1].stats.completion, 20);
  await page.evaluate(() => document.querySelector('.msg.user [data-action="edit"]').click());
  await page.waitForSelector('form.edit textarea');
  await page.$eval('form.edit textarea', (t) => { t.value = 'Edited question'; });
  await page.focus('form.edit textarea');
  await page.keyboard.press('Enter');
  await waitIdle(page);
  const conv = await stored(page);
  assert.equal(conv.messages.length, 2);
  assert.equal(conv.messages[0].content, 'Edited question');
  assert.equal(conv.messages[1].stats.completion, 20);
});

await test('conversations survive a reload; rename and delete', async () => {
  const titles = await page.$$eval('#conv-list .conv-open', (b) => b.map((x) => x.textContent));
  assert.deepEqual(titles.slice().sort(), ['Edited question', 'Think first', 'Write a long essay', '你好, tell me a story'].sort());
  await page.reload({ waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelectorAll('#conv-list .conv').length === 4);
  // the latest conversation is open again
  await page.waitForFunction(() => document.querySelector('#messages .msg.user .bubble')?.textContent === 'Edited question');
  const story = await page.evaluateHandle(() => [...document.querySelectorAll('#conv-list .conv-open')]
    .find((b) => b.textContent === '你好, tell me a story'));
  await story.click();
  await page.waitForFunction(() => document.querySelector('#messages .msg.user .bubble')?.textContent === '你好, tell me a story');
  // rename
  await page.evaluate(() => document.querySelector('#conv-list .conv.active [data-action="rename"]').click());
  await page.waitForSelector('#conv-list input.rename');
  await page.$eval('#conv-list input.rename', (i) => { i.value = 'Story time'; });
  await page.focus('#conv-list input.rename');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => [...document.querySelectorAll('#conv-list .conv-open')].some((b) => b.textContent === 'Story time'));
  // delete takes two presses
  await page.evaluate(() => document.querySelector('#conv-list .conv.active [data-action="delete"]').click());
  assert.equal(await page.$$eval('#conv-list .conv', (l) => l.length), 4);
  await page.evaluate(() => document.querySelector('#conv-list .conv.active [data-action="delete"]').click());
  await page.waitForFunction(() => document.querySelectorAll('#conv-list .conv').length === 3);
});

await test('import: HTML and scripts in a conversation are shown as text and never run', async () => {
  const evil = {
    format: 'cinfer-chat', version: 1, conversations: [{
      title: 'Evil <img src=x onerror="__xss(\'title\')">',
      messages: [
        { role: 'user', content: '<img src=x onerror="__xss(\'user\')"><script>__xss("user-script")</script>' },
        { role: 'assistant', reasoning: '<img src=x onerror="__xss(\'reasoning\')">',
          content: 'Hi <img src=x onerror="__xss(\'answer\')"> <script>__xss("answer-script")</script>\n\n' +
            '<svg onload="__xss(\'svg\')"></svg>\n\n[click](javascript:__xss(\'link\'))\n\n![pic](x)\n\n' +
            '<iframe srcdoc="<script>parent.__xss(\'iframe\')</script>"></iframe>\n\n```html\n<img src=x onerror=__xss("code")>\n```' },
      ] }],
  };
  const file = path.join(workDir, 'evil.json');
  fs.writeFileSync(file, JSON.stringify(evil));
  const input = await page.$('#import-file');
  await input.uploadFile(file);
  await page.waitForFunction(() => document.querySelector('#messages .msg.user .bubble')?.textContent.startsWith('<img'));
  await page.waitForNetworkIdle({ idleTime: 300, timeout: 10000 });
  const dom = await page.evaluate(() => ({
    imgs: document.querySelectorAll('#messages img, #conv-list img').length,
    scripts: document.querySelectorAll('#messages script').length,
    svgs: document.querySelectorAll('#messages svg').length,
    iframes: document.querySelectorAll('iframe').length,
    handlers: [...document.querySelectorAll('#messages *, #conv-list *')].filter((e) =>
      [...e.attributes].some((a) => a.name.startsWith('on'))).length,
    jsLinks: [...document.querySelectorAll('#messages a')].filter((a) => /^\s*javascript:/i.test(a.getAttribute('href') || '')).length,
    answer: document.querySelector('#messages .msg.assistant .answer').textContent,
    code: document.querySelector('#messages .msg.assistant code').textContent,
    title: document.querySelector('#conv-list .conv.active .conv-open').textContent,
  }));
  assert.deepEqual({ imgs: dom.imgs, scripts: dom.scripts, svgs: dom.svgs, iframes: dom.iframes, handlers: dom.handlers,
    jsLinks: dom.jsLinks }, { imgs: 0, scripts: 0, svgs: 0, iframes: 0, handlers: 0, jsLinks: 0 });
  assert.match(dom.answer, /<img src=x onerror=/, 'the HTML is shown as text');
  assert.match(dom.code, /<img src=x onerror=__xss\("code"\)>/);
  assert.match(dom.title, /^Evil <img/);
  // the link with a javascript: URL must do nothing when followed
  await page.evaluate(() => { for (const a of document.querySelectorAll('#messages a')) if (a.textContent === 'click') a.click(); });
  assert.deepEqual(xssCalls, []);
});

await test('copy buttons; screenshots: desktop and phone, light and dark', async () => {
  // a fresh profile that holds only the demo conversations (random weights write gibberish)
  const context = await browser.createBrowserContext();
  const shot = await newPage(`${base}/`, context);
  await (await shot.$('#import-file')).uploadFile(path.join(here, 'demo-conversation.json'));
  await shot.waitForFunction(() => document.querySelector('#conv-list .conv.active .conv-open')?.textContent === 'Reverse a linked list in C');
  // Copy on a code block and on a message put exactly that text on the clipboard
  await context.overridePermissions(base, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
  const code = await shot.$eval('.code-block code', (c) => c.textContent);
  assert.match(code, /^struct node \{ int value;/);
  await shot.click('.code-block [data-action="copy-code"]');
  await pollUntil('the code on the clipboard', async () => ({ ok: (await shot.evaluate(() => navigator.clipboard.readText())) === code }));
  await shot.evaluate(() => document.querySelector('.msg.user [data-action="copy"]').click());
  await pollUntil('the message on the clipboard', async () => ({
    ok: (await shot.evaluate(() => navigator.clipboard.readText())) === 'How do I reverse a singly linked list in C? Keep it short.' }));
  await shot.evaluate(() => document.activeElement.blur());
  await shot.mouse.move(700, 790);
  await shot.waitForFunction(() => getComputedStyle(document.querySelector('#toast')).opacity === '0', { timeout: 10000 });
  const shotDir = path.join(workDir, 'screenshots');
  fs.mkdirSync(shotDir, { recursive: true });
  for (const [name, vp] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844, isMobile: true, hasTouch: true }]]) {
    await shot.setViewport(vp);
    for (const scheme of ['light', 'dark']) {
      await shot.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
      await shot.evaluate(() => { document.getElementById('thread').scrollTop = 0; });
      await shot.waitForFunction(() => document.getElementById('thread').scrollTop === 0);
      await shot.screenshot({ path: path.join(shotDir, `${name}-${scheme}.png`) });
    }
  }
  for (const f of fs.readdirSync(shotDir)) assert.ok(fs.statSync(path.join(shotDir, f)).size > 10000, f);
  console.log(`     screenshots in ${shotDir}`);
  await context.close();
});

await test('an API key set in the settings talks to a server started with --api-key', async () => {
  const keyed = await startServer(['--api-key', KEY]);
  const p = await newPage(`${keyed}/`);
  await p.waitForFunction(() => !document.querySelector('#banner').hidden && /API key/.test(document.querySelector('#banner').textContent));
  // Chromium logs every 4xx fetch as a console error: the page's one probe of
  // /v1/models without a key is the expected one, and the only one allowed
  const probe = consoleErrors.findIndex((e) => e.startsWith(`${keyed}/: Failed to load resource`) && / 401 /.test(e));
  assert.ok(probe >= 0, 'the keyless probe got its 401');
  consoleErrors.splice(probe, 1);
  await setSettings(p, { api_key: KEY, temperature: '0', max_tokens: '24', thinking: false });
  await p.waitForFunction(() => document.querySelectorAll('#model option').length === 1 && document.querySelector('#banner').hidden);
  assert.equal(await p.evaluate(() => JSON.parse(localStorage.getItem('cinfer.settings')).api_key), KEY);
  await p.type('#input', 'Hello with a key');
  await p.keyboard.press('Enter');
  await waitIdle(p);
  const conv = await stored(p);
  assert.equal(conv.messages[1].error, undefined);
  const ref = await chatApi(keyed, { messages: [{ role: 'user', content: 'Hello with a key' }], temperature: 0, max_tokens: 24,
    chat_template_kwargs: { enable_thinking: false } }, KEY);
  assert.equal(conv.messages[1].content, ref.message.content);
  await p.close();
});

await test('opening another conversation mid-answer stops it and keeps it in its own conversation', async () => {
  await page.click('#new-chat');
  await setSettings(page, { max_tokens: '6000' });
  await page.type('#input', 'Interrupted');
  await page.keyboard.press('Enter');
  await pollUntil('the answer to stream', async () => {
    const a = await lastAnswer(page);
    return { ok: a.streaming && a.text.length > 0 };
  });
  const others = await page.$$eval('#conv-list .conv-open', (b) => b.map((x) => x.textContent));
  const target = others.find((t) => t !== 'Interrupted');
  const h = await page.evaluateHandle((t) => [...document.querySelectorAll('#conv-list .conv-open')].find((b) => b.textContent === t), target);
  await h.click();
  await page.waitForFunction(() => document.querySelector('#stop').hidden);
  await pollUntil('/metrics: nothing running', async () => ({ ok: (await metrics(base)).running === 0 }));
  const saved = await page.evaluate(() => {
    const idx = JSON.parse(localStorage.getItem('cinfer.conversations'));
    const e = idx.find((x) => x.title === 'Interrupted');
    return JSON.parse(localStorage.getItem('cinfer.conv.' + e.id));
  });
  assert.equal(saved.messages.length, 2);
  assert.equal(saved.messages[1].stats.stopped, true);
  assert.ok(saved.messages[1].content.length > 0);
  assert.equal(await page.$eval('#conv-list .conv.active .conv-open', (b) => b.textContent), target);
  assert.ok(!(await page.$$eval('#messages .bubble', (b) => b.map((x) => x.textContent))).includes('Interrupted'));
});

await test('no console errors, nothing injected ran', async () => {
  assert.deepEqual(consoleErrors, []);
  assert.deepEqual(xssCalls, []);
});

await browser.close();
stopServers();
console.log(failures ? `${failures} test(s) failed` : 'all web UI tests passed');
process.exit(failures ? 1 : 0);
