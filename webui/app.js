/*
 * app.js — the chat page of `cinfer serve` (docs/WEBUI.md).
 *
 * One classic script, no framework: the libraries (marked, DOMPurify,
 * highlight.js) are concatenated in front of it by scripts/build-webui.mjs
 * and found on globalThis. The page talks only to its own server:
 * GET v1/models, POST v1/chat/completions with stream: true (read with
 * fetch + ReadableStream; a Stop aborts the fetch, and the server cancels
 * the request when its client goes away).
 *
 * Safety: model output and imported conversations are untrusted. User text
 * and reasoning are shown with textContent; answers are markdown rendered
 * by marked with raw HTML escaped, then sanitised by DOMPurify with a short
 * allow-list (no images, no styles, no forms). The server's CSP forbids
 * inline scripts and any network access but to this origin on top of that.
 *
 * Streaming stays cheap: deltas are collected and the DOM is updated at
 * most once per animation frame (less often for long answers). Markdown is
 * re-rendered incrementally: the answer is lexed into top-level blocks, and
 * only the blocks from the first changed one on are rebuilt, so finished
 * paragraphs and code blocks keep their nodes (no flicker, no layout shift).
 */
(function () {
  'use strict';
  const { marked, DOMPurify, hljs } = globalThis;
  const $ = (id) => document.getElementById(id);
  const stats = (globalThis.__cinfer = { renders: 0, chunks: 0 }); // read by tests/webui

  /* ------------------------------------------------------------ storage */

  const KEY_SETTINGS = 'cinfer.settings';
  const KEY_INDEX = 'cinfer.conversations';
  const KEY_CONV = 'cinfer.conv.';
  const DEFAULTS = {
    system: '', temperature: '', top_p: '', top_k: '', min_p: '', max_tokens: '',
    thinking: true, thinking_budget: '', api_key: '', model: '',
  };

  function load(key, fallback) {
    try {
      const v = localStorage.getItem(key);
      return v == null ? fallback : JSON.parse(v);
    } catch (e) {
      return fallback;
    }
  }

  function store(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
      return true;
    } catch (e) {
      toast('Could not save: the browser storage is full or disabled.');
      return false;
    }
  }

  let settings = Object.assign({}, DEFAULTS, load(KEY_SETTINGS, {}));
  let index = load(KEY_INDEX, []); // [{id, title, updated}], newest first
  if (!Array.isArray(index)) index = [];
  let conv = null; // {id, title, created, updated, messages: [...]}
  let busy = null; // the running generation: {controller, view, msg}
  let models = [];

  const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);

  function saveConv(c) {
    c.updated = Date.now();
    if (!store(KEY_CONV + c.id, c)) return;
    index = [{ id: c.id, title: c.title, updated: c.updated }].concat(index.filter((e) => e.id !== c.id));
    store(KEY_INDEX, index);
    renderList();
  }

  function deleteConv(id) {
    localStorage.removeItem(KEY_CONV + id);
    index = index.filter((e) => e.id !== id);
    store(KEY_INDEX, index);
    if (conv && conv.id === id) openConv(null);
    renderList();
  }

  /* ----------------------------------------------------------- markdown */

  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) =>
    ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

  marked.use({
    gfm: true,
    renderer: {
      // the model's HTML is shown as text, never interpreted
      html: (t) => escapeHtml(t.text),
      // no images: they would be requests the user did not ask for
      image: (t) => `<a href="${escapeHtml(t.href)}">${escapeHtml(t.text || 'image')}</a>`,
    },
  });

  const PURIFY = {
    ALLOWED_TAGS: ['p', 'br', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 'del', 'code', 'pre',
      'blockquote', 'ul', 'ol', 'li', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'span', 'sup', 'sub'],
    ALLOWED_ATTR: ['href', 'title', 'class', 'start', 'align'],
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer');
    }
  });
  hljs.configure({ ignoreUnescapedHTML: true, throwUnescapedHTML: false });

  function highlightCode(root) {
    for (const code of root.querySelectorAll('pre > code')) {
      const m = /language-([\w+#.-]+)/.exec(code.className);
      const lang = m && hljs.getLanguage(m[1]) ? m[1] : null;
      const text = code.textContent;
      const r = lang ? hljs.highlight(text, { language: lang, ignoreIllegals: true })
        : text.length < 20000 ? hljs.highlightAuto(text) : null;
      if (r) {
        code.innerHTML = DOMPurify.sanitize(r.value, { ALLOWED_TAGS: ['span'], ALLOWED_ATTR: ['class'] });
        code.classList.add('hljs');
      }
      const pre = code.parentNode;
      const box = document.createElement('div');
      box.className = 'code-block';
      const head = document.createElement('div');
      head.className = 'code-head';
      const label = document.createElement('span');
      label.textContent = (m && m[1]) || (r && r.language) || 'text';
      const copy = button('Copy', 'copy-code', 'Copy the code');
      head.append(label, copy);
      pre.replaceWith(box);
      box.append(head, pre);
    }
  }

  function renderBlock(tokens, tok) {
    const list = [tok];
    list.links = tokens.links;
    const frag = DOMPurify.sanitize(marked.parser(list), PURIFY);
    const div = document.createElement('div');
    div.className = 'md-block';
    div.append(frag);
    highlightCode(div);
    return div;
  }

  /* Incremental markdown: state {el, blocks: [{raw, node}]}. */
  function renderMarkdown(st, text) {
    stats.renders++;
    const tokens = marked.lexer(text);
    let i = 0;
    // the last block may still be growing: it is always rebuilt
    while (i < tokens.length - 1 && i < st.blocks.length && st.blocks[i].raw === tokens[i].raw) i++;
    for (const b of st.blocks.splice(i)) b.node.remove();
    for (; i < tokens.length; i++) {
      const node = renderBlock(tokens, tokens[i]);
      st.el.append(node);
      st.blocks.push({ raw: tokens[i].raw, node });
    }
  }

  /* -------------------------------------------------------------- views */

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function button(text, action, label) {
    const b = el('button', 'act', text);
    b.type = 'button';
    b.dataset.action = action;
    if (label) b.setAttribute('aria-label', label);
    return b;
  }

  const fmtSec = (ms) => (ms < 1000 ? `${Math.max(0.1, ms / 1000).toFixed(1)} s` : `${(ms / 1000).toFixed(1)} s`);

  function statsText(s) {
    if (!s) return '';
    const parts = [];
    if (s.completion != null) parts.push(`${s.approx ? '≈' : ''}${s.completion} tokens`);
    if (s.tps) parts.push(`${s.tps.toFixed(1)} tok/s`);
    if (s.prompt != null) parts.push(`prompt ${s.prompt}`);
    if (s.ctxLen && s.prompt != null && s.completion != null) {
      const used = s.prompt + s.completion;
      parts.push(`context ${used}/${s.ctxLen} (${((100 * used) / s.ctxLen).toFixed(used * 1000 < s.ctxLen ? 2 : 1)}%)`);
    }
    if (s.stopped) parts.push('stopped');
    else if (s.finish === 'length') parts.push('cut at max tokens');
    return parts.join(' · ');
  }

  /* live: streaming (open, "Thinking…"); else folded, with the time when known */
  function thinkingBlock(text, ms, live) {
    const d = el('details', 'thinking');
    d.open = live;
    const sum = el('summary');
    const label = el('span', 'think-label', live ? 'Thinking…' : ms == null ? 'Thoughts' : `Thought for ${fmtSec(ms)}`);
    sum.append(label);
    const body = el('div', 'think-body');
    const node = document.createTextNode(text || '');
    body.append(node);
    d.append(sum, body);
    return { d, label, node };
  }

  function messageView(msg, i, last) {
    const box = el('article', `msg ${msg.role}`);
    box.dataset.index = String(i);
    box.setAttribute('aria-label', msg.role === 'user' ? 'You said' : 'The model said');
    const view = { box };
    if (msg.role === 'user') {
      box.append(el('div', 'bubble', msg.content));
      const acts = el('div', 'actions');
      acts.append(button('Edit', 'edit', 'Edit and resend this message'), button('Copy', 'copy', 'Copy this message'));
      box.append(acts);
      return view;
    }
    if (msg.reasoning) {
      view.think = thinkingBlock(msg.reasoning, msg.stats && msg.stats.thinkMs, false);
      box.append(view.think.d);
    }
    view.md = { el: el('div', 'answer md'), blocks: [] };
    if (msg.content) renderMarkdown(view.md, msg.content);
    box.append(view.md.el);
    if (msg.error) box.append(el('div', 'error', msg.error));
    box.append(footer(msg, last));
    return view;
  }

  function footer(msg, last) {
    const f = el('div', 'msg-foot');
    const acts = el('div', 'actions');
    acts.append(button('Copy', 'copy', 'Copy this answer'));
    if (last) acts.append(button('Regenerate', 'regenerate', 'Regenerate this answer'));
    f.append(acts, el('span', 'msg-stats', statsText(msg.stats)));
    return f;
  }

  function renderThread() {
    const box = $('messages');
    box.textContent = '';
    const msgs = conv ? conv.messages : [];
    msgs.forEach((m, i) => box.append(messageView(m, i, i === msgs.length - 1 && m.role === 'assistant').box));
    $('empty').hidden = msgs.length > 0;
    scrollToEnd();
  }

  function renderList() {
    const ul = $('conv-list');
    ul.textContent = '';
    for (const e of index) {
      const li = el('li', 'conv' + (conv && conv.id === e.id ? ' active' : ''));
      li.dataset.id = e.id;
      const open = el('button', 'conv-open', e.title || 'New chat');
      open.type = 'button';
      open.dataset.action = 'open';
      if (conv && conv.id === e.id) open.setAttribute('aria-current', 'true');
      const ren = button('Rename', 'rename', `Rename “${e.title}”`);
      const del = button('Delete', 'delete', `Delete “${e.title}”`);
      li.append(open, el('span', 'conv-acts'));
      li.lastChild.append(ren, del);
      ul.append(li);
    }
  }

  function openConv(id) {
    if (busy) stop();
    conv = id ? load(KEY_CONV + id, null) : null;
    if (conv && !Array.isArray(conv.messages)) conv = null;
    renderThread();
    renderList();
    closeSidebar();
  }

  /* ------------------------------------------------------------ scroll */

  const thread = $('thread');
  const atBottom = () => thread.scrollHeight - thread.scrollTop - thread.clientHeight < 48;
  function scrollToEnd() {
    thread.scrollTop = thread.scrollHeight;
  }

  /* --------------------------------------------------------------- API */

  function headers() {
    const h = { 'Content-Type': 'application/json' };
    if (settings.api_key) h.Authorization = `Bearer ${settings.api_key}`;
    return h;
  }

  async function errorMessage(res) {
    let text = '';
    try {
      text = await res.text();
      const j = JSON.parse(text);
      if (j && j.error && j.error.message) return `${res.status}: ${j.error.message}`;
    } catch (e) { /* not JSON */ }
    return `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ''}`;
  }

  async function loadModels() {
    let res;
    try {
      res = await fetch('v1/models', { headers: headers() });
    } catch (e) {
      return banner('Cannot reach the server.');
    }
    if (res.status === 401) {
      banner('This server needs an API key.', 'Enter the key', openSettings);
      return;
    }
    if (!res.ok) return banner(`Cannot list the models: ${await errorMessage(res)}`);
    banner(null);
    const j = await res.json();
    models = (j && Array.isArray(j.data) ? j.data : []).filter((m) => m && typeof m.id === 'string');
    const sel = $('model');
    sel.textContent = '';
    for (const m of models) {
      const o = el('option', null, m.id);
      o.value = m.id;
      sel.append(o);
    }
    if (models.some((m) => m.id === settings.model)) sel.value = settings.model;
    $('empty-model').textContent = models.length
      ? `Chat with ${sel.value}. Conversations stay in this browser.` : 'The server lists no model.';
  }

  function currentModel() {
    const id = $('model').value;
    return models.find((m) => m.id === id) || { id };
  }

  function num(v) {
    if (v === '' || v == null) return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }

  function requestBody(history) {
    const messages = [];
    if (settings.system.trim()) messages.push({ role: 'system', content: settings.system });
    for (const m of history) {
      if (m.role === 'assistant' && m.error && !m.content) continue;
      messages.push({ role: m.role, content: m.content });
    }
    const body = {
      model: currentModel().id, messages, stream: true, stream_options: { include_usage: true },
      chat_template_kwargs: { enable_thinking: !!settings.thinking },
    };
    for (const k of ['temperature', 'top_p', 'top_k', 'min_p', 'max_tokens']) {
      const v = num(settings[k]);
      if (v !== undefined) body[k] = v;
    }
    const budget = num(settings.thinking_budget);
    if (settings.thinking && budget !== undefined) body.thinking_budget = budget;
    return body;
  }

  /* Reads an SSE stream; calls onChunk(json) per data event. Throws on an
   * `error` event. */
  async function readEvents(res, onChunk) {
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const raw = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = 'message';
        const data = [];
        for (const line of raw.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        const text = data.join('\n');
        if (!text || text === '[DONE]') continue;
        let j;
        try {
          j = JSON.parse(text);
        } catch (e) {
          continue;
        }
        if (event === 'error' || j.error) throw new Error((j.error && j.error.message) || 'the server reported an error');
        onChunk(j);
      }
    }
  }

  /* ------------------------------------------------------- generation */

  function setBusy(on) {
    $('send').hidden = on;
    $('stop').hidden = !on;
    document.body.classList.toggle('busy', on);
  }

  async function generate() {
    const msg = { role: 'assistant', content: '', reasoning: '' };
    const owner = conv; // the user may open another conversation meanwhile (which stops this one)
    const history = owner.messages.slice();
    owner.messages.push(msg);
    saveConv(owner);
    // the previous answer loses its Regenerate button
    const prev = $('messages').querySelector('[data-action="regenerate"]');
    if (prev) prev.remove();
    const box = el('article', 'msg assistant streaming');
    box.dataset.index = String(owner.messages.length - 1);
    box.setAttribute('aria-label', 'The model is answering');
    box.setAttribute('aria-busy', 'true');
    const dots = el('div', 'typing');
    dots.setAttribute('aria-label', 'waiting for the first token');
    dots.append(el('span'), el('span'), el('span'));
    box.append(dots);
    $('messages').append(box);
    $('empty').hidden = true;
    scrollToEnd();

    const controller = new AbortController();
    const view = { box, dots, think: null, md: null, pendingThink: '', dirty: false, frame: 0, lastRender: 0 };
    busy = { controller, view, msg };
    setBusy(true);
    const t = { start: performance.now(), first: 0, thinkEnd: 0, end: 0 };
    let usage = null, finish = null, chunks = 0;
    const ctxLen = currentModel().max_model_len;
    try {
      const res = await fetch('v1/chat/completions', {
        method: 'POST', headers: headers(), body: JSON.stringify(requestBody(history)), signal: controller.signal,
      });
      if (!res.ok) throw new Error(await errorMessage(res));
      await readEvents(res, (j) => {
        if (j.usage) usage = j.usage;
        const c = j.choices && j.choices[0];
        if (!c) return;
        if (c.finish_reason) finish = c.finish_reason;
        const d = c.delta || {};
        if (typeof d.reasoning_content === 'string' && d.reasoning_content) {
          if (!t.first) t.first = performance.now();
          msg.reasoning += d.reasoning_content;
          view.pendingThink += d.reasoning_content;
          chunks++;
        }
        if (typeof d.content === 'string' && d.content) {
          if (!t.first) t.first = performance.now();
          if (msg.reasoning && !t.thinkEnd) t.thinkEnd = performance.now();
          msg.content += d.content;
          chunks++;
        }
        stats.chunks++;
        schedule(view, msg, t);
      });
    } catch (e) {
      if (e.name !== 'AbortError') msg.error = String(e.message || e);
    }
    t.end = performance.now();
    if (msg.reasoning && !t.thinkEnd) t.thinkEnd = t.end;
    const stopped = controller.signal.aborted;
    msg.stats = {
      prompt: usage ? usage.prompt_tokens : undefined,
      completion: usage ? usage.completion_tokens : chunks,
      approx: !usage,
      tps: t.first && usage && t.end - t.first > 0 && usage.completion_tokens > 1
        ? ((usage.completion_tokens - 1) * 1000) / (t.end - t.first) : undefined,
      thinkMs: msg.reasoning ? t.thinkEnd - (t.first || t.start) : undefined,
      ctxLen, finish, stopped,
    };
    if (!msg.reasoning) delete msg.reasoning;
    busy = null;
    setBusy(false);
    cancelAnimationFrame(view.frame);
    if (conv === owner) finishView(view, msg);
    // a conversation deleted while it streamed stays deleted
    if (index.some((e) => e.id === owner.id)) saveConv(owner);
  }

  function schedule(view, msg, t) {
    view.dirty = true;
    if (!view.frame) view.frame = requestAnimationFrame(() => paint(view, msg, t));
  }

  /* One DOM update per frame at most; long answers re-render less often,
   * so a 2,000-token answer costs a few hundred renders, not thousands. */
  function paint(view, msg, t) {
    view.frame = 0;
    const now = performance.now();
    const every = Math.min(250, msg.content.length / 40);
    if (now - view.lastRender < every) {
      view.frame = requestAnimationFrame(() => paint(view, msg, t));
      return;
    }
    view.lastRender = now;
    view.dirty = false;
    const follow = atBottom();
    if (view.dots && (msg.reasoning || msg.content)) {
      view.dots.remove();
      view.dots = null;
    }
    if (msg.reasoning && !view.think) {
      view.think = thinkingBlock('', null, true);
      view.box.prepend(view.think.d);
    }
    if (view.pendingThink) {
      view.think.node.appendData(view.pendingThink);
      view.pendingThink = '';
    }
    if (msg.content && !view.md) {
      // the answer starts: the thinking folds away in the same frame
      if (view.think) {
        view.think.d.open = false;
        view.think.label.textContent = `Thought for ${fmtSec(t.thinkEnd - (t.first || t.start))}`;
      }
      view.md = { el: el('div', 'answer md'), blocks: [] };
      view.box.append(view.md.el);
    }
    if (view.md) renderMarkdown(view.md, msg.content);
    if (follow) scrollToEnd();
  }

  function finishView(view, msg) {
    const follow = atBottom();
    const i = conv.messages.indexOf(msg);
    const fresh = messageView(msg, i, true);
    // keep the user's choice of open/closed thinking
    if (view.think && fresh.think) fresh.think.d.open = view.think.d.open;
    view.box.replaceWith(fresh.box);
    if (follow) scrollToEnd();
  }

  function stop() {
    if (busy) busy.controller.abort();
  }

  function send(text) {
    text = text.trim();
    if (!text || busy) return;
    if (!conv) conv = { id: newId(), title: title(text), created: Date.now(), updated: Date.now(), messages: [] };
    conv.messages.push({ role: 'user', content: text });
    $('input').value = '';
    autoGrow();
    const box = $('messages');
    box.append(messageView(conv.messages[conv.messages.length - 1], conv.messages.length - 1, false).box);
    generate();
  }

  const title = (text) => {
    const t = text.replace(/\s+/g, ' ').trim();
    return t.length > 48 ? t.slice(0, 47) + '…' : t;
  };

  function regenerate() {
    if (busy || !conv) return;
    while (conv.messages.length && conv.messages[conv.messages.length - 1].role === 'assistant') conv.messages.pop();
    if (!conv.messages.length) return;
    renderThread();
    generate();
  }

  function editMessage(box, i) {
    if (busy) return;
    const bubble = box.querySelector('.bubble');
    const form = el('form', 'edit');
    const ta = el('textarea');
    ta.value = conv.messages[i].content;
    ta.setAttribute('aria-label', 'Edit the message');
    const save = el('button', 'primary', 'Save & send');
    save.type = 'submit';
    const cancel = button('Cancel', 'cancel-edit');
    cancel.classList.remove('act');
    const row = el('div', 'edit-row');
    row.append(cancel, save);
    form.append(ta, row);
    bubble.replaceWith(form);
    box.querySelector('.actions').hidden = true;
    ta.focus();
    ta.style.height = Math.min(ta.scrollHeight + 2, 320) + 'px';
    const submit = () => {
      const text = ta.value.trim();
      if (!text) return;
      conv.messages = conv.messages.slice(0, i);
      conv.messages.push({ role: 'user', content: text });
      if (i === 0) conv.title = title(text);
      renderThread();
      generate();
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
    ta.addEventListener('keydown', (e) => {
      if (isSendKey(e)) { e.preventDefault(); submit(); }
      if (e.key === 'Escape') { e.stopPropagation(); renderThread(); }
    });
  }

  /* Enter sends; Shift+Enter is a new line; Enter that confirms an IME
   * composition (Chinese, Japanese...) must not send. */
  const isSendKey = (e) => e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229;

  /* ------------------------------------------------------------- copy */

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      // http:// on a LAN address is not a secure context: no clipboard API
      const ta = el('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.className = 'offscreen';
      document.body.append(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
    }
    toast('Copied');
  }

  /* ---------------------------------------------------- import/export */

  function exportAll() {
    const conversations = index.map((e) => load(KEY_CONV + e.id, null)).filter(Boolean);
    const blob = new Blob([JSON.stringify({ format: 'cinfer-chat', version: 1, exported: new Date().toISOString(),
      conversations }, null, 2)], { type: 'application/json' });
    const a = el('a');
    a.href = URL.createObjectURL(blob);
    a.download = `cinfer-chats-${new Date().toISOString().slice(0, 10)}.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  const str = (v, max) => (typeof v === 'string' ? v.slice(0, max) : '');

  /* Only known fields of known types survive an import. */
  function cleanConv(c) {
    if (!c || typeof c !== 'object') return null;
    const list = Array.isArray(c) ? c : c.messages;
    if (!Array.isArray(list)) return null;
    const messages = [];
    for (const m of list) {
      if (!m || (m.role !== 'user' && m.role !== 'assistant')) continue;
      const out = { role: m.role, content: str(m.content, 1 << 20) };
      if (m.role === 'assistant' && m.reasoning_content) out.reasoning = str(m.reasoning_content, 1 << 20);
      if (m.role === 'assistant' && m.reasoning) out.reasoning = str(m.reasoning, 1 << 20);
      messages.push(out);
    }
    if (!messages.length) return null;
    const first = messages.find((m) => m.role === 'user');
    return { id: newId(), title: str(c.title, 200) || title(first ? first.content : 'Imported chat'),
      created: Date.now(), updated: Date.now(), messages };
  }

  async function importFile(file) {
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch (e) {
      return toast('Not a JSON file.');
    }
    const list = data && Array.isArray(data.conversations) ? data.conversations
      : Array.isArray(data) && data.length && data[0] && data[0].messages ? data : [data];
    const convs = list.map(cleanConv).filter(Boolean);
    if (!convs.length) return toast('No conversation found in that file.');
    for (const c of convs.reverse()) saveConv(c);
    openConv(convs[convs.length - 1].id);
    toast(`Imported ${convs.length} conversation${convs.length > 1 ? 's' : ''}`);
  }

  /* ----------------------------------------------------------- settings */

  const FIELDS = ['system', 'temperature', 'top_p', 'top_k', 'min_p', 'max_tokens', 'thinking_budget', 'api_key'];

  function openSettings() {
    for (const f of FIELDS) $('s-' + f).value = settings[f] == null ? '' : settings[f];
    $('s-thinking').checked = !!settings.thinking;
    $('settings').showModal();
  }

  function saveSettings() {
    const keyChanged = $('s-api_key').value.trim() !== settings.api_key;
    for (const f of FIELDS) settings[f] = f === 'api_key' ? $('s-' + f).value.trim() : $('s-' + f).value;
    settings.thinking = $('s-thinking').checked;
    store(KEY_SETTINGS, settings);
    syncThinkToggle();
    if (keyChanged) loadModels();
  }

  function syncThinkToggle() {
    $('think-toggle').setAttribute('aria-pressed', String(!!settings.thinking));
  }

  /* ----------------------------------------------------------- chrome */

  function banner(text, actionText, action) {
    const b = $('banner');
    b.textContent = '';
    b.hidden = !text;
    if (!text) return;
    b.append(el('span', null, text));
    if (actionText) {
      const a = el('button', 'link-btn', actionText);
      a.type = 'button';
      a.addEventListener('click', action);
      b.append(a);
    }
  }

  let toastTimer = 0;
  function toast(text) {
    const t = $('toast');
    t.textContent = text;
    t.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove('show'), 2000);
  }

  function autoGrow() {
    const ta = $('input');
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight, 240) + 'px';
  }

  function openSidebar() {
    document.body.classList.add('sidebar-open');
    $('scrim').hidden = false;
    $('open-sidebar').setAttribute('aria-expanded', 'true');
    const first = $('sidebar').querySelector('button');
    if (first) first.focus();
  }

  function closeSidebar() {
    if (!document.body.classList.contains('sidebar-open')) return;
    document.body.classList.remove('sidebar-open');
    $('scrim').hidden = true;
    $('open-sidebar').setAttribute('aria-expanded', 'false');
  }

  function renameConv(li, id) {
    const e = index.find((x) => x.id === id);
    if (!e) return;
    const input = el('input', 'rename');
    input.value = e.title;
    input.setAttribute('aria-label', 'New name');
    li.querySelector('.conv-open').replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      const c = load(KEY_CONV + id, null);
      if (ok && c && input.value.trim()) {
        c.title = input.value.trim().slice(0, 200);
        if (conv && conv.id === id) conv.title = c.title;
        saveConv(c);
      } else renderList();
    };
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.isComposing && ev.keyCode !== 229) finish(true);
      if (ev.key === 'Escape') { ev.stopPropagation(); finish(false); }
    });
    input.addEventListener('blur', () => finish(true));
  }

  /* ------------------------------------------------------------ events */

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send($('input').value);
  });
  $('input').addEventListener('keydown', (e) => {
    if (isSendKey(e)) {
      e.preventDefault();
      send($('input').value);
    }
  });
  $('input').addEventListener('input', autoGrow);
  $('stop').addEventListener('click', stop);
  $('new-chat').addEventListener('click', () => { openConv(null); $('input').focus(); });
  $('settings-btn').addEventListener('click', openSettings);
  $('settings-top').addEventListener('click', openSettings);
  // Save is the form's only submit button: Enter in a field saves too
  $('settings-form').addEventListener('submit', saveSettings);
  $('s-close').addEventListener('click', () => $('settings').close());
  $('s-reset').addEventListener('click', () => {
    const key = $('s-api_key').value;
    for (const f of FIELDS) $('s-' + f).value = f === 'api_key' ? key : DEFAULTS[f];
    $('s-thinking').checked = DEFAULTS.thinking;
  });
  $('think-toggle').addEventListener('click', () => {
    settings.thinking = !settings.thinking;
    store(KEY_SETTINGS, settings);
    syncThinkToggle();
  });
  $('model').addEventListener('change', () => {
    settings.model = $('model').value;
    store(KEY_SETTINGS, settings);
  });
  $('export-btn').addEventListener('click', exportAll);
  $('import-btn').addEventListener('click', () => $('import-file').click());
  $('import-file').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0];
    if (f) importFile(f);
    e.target.value = '';
  });
  $('open-sidebar').addEventListener('click', openSidebar);
  $('close-sidebar').addEventListener('click', closeSidebar);
  $('scrim').addEventListener('click', closeSidebar);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || $('settings').open) return;
    if (busy) stop();
    else closeSidebar();
  });

  $('messages').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    if (!b) return;
    const box = b.closest('.msg');
    const i = Number(box.dataset.index);
    const a = b.dataset.action;
    if (a === 'copy-code') copyText(b.closest('.code-block').querySelector('code').textContent);
    else if (a === 'copy') copyText(conv.messages[i].content);
    else if (a === 'regenerate') regenerate();
    else if (a === 'edit') editMessage(box, i);
    else if (a === 'cancel-edit') renderThread();
  });

  const pendingDelete = new Set();
  $('conv-list').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    if (!b) return;
    const li = b.closest('li');
    const id = li.dataset.id;
    if (b.dataset.action === 'open') {
      if (conv && conv.id === id) closeSidebar(); // already open: a running answer goes on
      else openConv(id);
    }
    else if (b.dataset.action === 'rename') renameConv(li, id);
    else if (b.dataset.action === 'delete') {
      // two steps: the first press asks
      if (pendingDelete.has(id)) return deleteConv(id);
      pendingDelete.add(id);
      b.textContent = 'Confirm';
      b.classList.add('danger');
      setTimeout(() => {
        pendingDelete.delete(id);
        if (b.isConnected) { b.textContent = 'Delete'; b.classList.remove('danger'); }
      }, 3000);
    }
  });

  /* -------------------------------------------------------------- start */

  syncThinkToggle();
  renderList();
  openConv(index.length ? index[0].id : null);
  loadModels();
  $('input').focus();
})();
