// loadgen.mjs — load generator for an OpenAI-compatible server (cinfer serve,
// vllm serve, ...): N concurrent streamed /v1/completions requests with
// prompts of exactly P tokens (random ids, fixed seed) and exactly O output
// tokens (ignore_eos), then throughput, time-to-first-token and
// inter-token-latency percentiles.
//
//   node bench/serve/loadgen.mjs --url http://127.0.0.1:8000/v1 [--model NAME]
//        [-n 16] [--prompt-tokens 128] [--output-tokens 64] [--api-key KEY] [--json]
//
// Each request is one SSE stream; a chunk's arrival time is the time of the
// tokens in it (one token per chunk on cinfer/vLLM). TTFT = request start →
// first chunk with text; ITL = gaps between later chunks.
const args = process.argv.slice(2);
const opt = { url: 'http://127.0.0.1:8000/v1', model: null, n: 16, p: 128, o: 64, key: process.env.OPENAI_API_KEY ?? 'none', json: false };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--url') opt.url = args[++i];
  else if (a === '--model') opt.model = args[++i];
  else if (a === '-n') opt.n = +args[++i];
  else if (a === '--prompt-tokens') opt.p = +args[++i];
  else if (a === '--output-tokens') opt.o = +args[++i];
  else if (a === '--api-key') opt.key = args[++i];
  else if (a === '--json') opt.json = true;
  else { console.error(`unknown option ${a}`); process.exit(2); }
}
const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${opt.key}` };
if (!opt.model) opt.model = (await (await fetch(`${opt.url}/models`, { headers })).json()).data[0].id;

let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };
// ids of ordinary vocabulary tokens (below Qwen's added tokens)
const prompts = Array.from({ length: opt.n }, () => Array.from({ length: opt.p }, () => 1000 + (rnd() % 100000)));

async function one(prompt) {
  const t0 = performance.now();
  const res = await fetch(`${opt.url}/completions`, { method: 'POST', headers, body: JSON.stringify({
    model: opt.model, prompt, max_tokens: opt.o, temperature: 0, ignore_eos: true, stream: true,
    stream_options: { include_usage: true } }) });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const times = [];
  let usage = null, buf = '';
  const dec = new TextDecoder();
  for await (const part of res.body) {
    buf += dec.decode(part, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const obj = JSON.parse(ev.slice(6));
      if (obj.usage) usage = obj.usage;
      if (obj.choices?.[0]?.text) times.push(performance.now());
    }
  }
  return { t0, times, tokens: usage?.completion_tokens ?? times.length, end: performance.now() };
}

const pct = (xs, q) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
// warm-up (page in the weights) with one short request
await one(prompts[0].slice(0, 8));
const start = performance.now();
const results = await Promise.all(prompts.map(one));
const wall = (performance.now() - start) / 1000;
const ttft = results.map((r) => r.times[0] - r.t0);
const itl = results.flatMap((r) => r.times.slice(1).map((t, i) => t - r.times[i]));
const out = results.reduce((a, r) => a + r.tokens, 0);
const report = {
  concurrency: opt.n, prompt_tokens: opt.p, output_tokens: opt.o, wall_s: +wall.toFixed(2),
  output_tok_s: +(out / wall).toFixed(1), total_tok_s: +((out + opt.n * opt.p) / wall).toFixed(1),
  ttft_ms: { p50: +pct(ttft, 0.5).toFixed(0), p90: +pct(ttft, 0.9).toFixed(0), p99: +pct(ttft, 0.99).toFixed(0) },
  itl_ms: { p50: +pct(itl, 0.5).toFixed(1), p90: +pct(itl, 0.9).toFixed(1), p99: +pct(itl, 0.99).toFixed(1) },
  generated_tokens: out,
};
if (opt.json) console.log(JSON.stringify(report));
else {
  console.log(`${opt.n} concurrent requests, ${opt.p} prompt + ${opt.o} output tokens each`);
  console.log(`wall ${report.wall_s} s, output ${report.output_tok_s} tok/s, prompt+output ${report.total_tok_s} tok/s`);
  console.log(`TTFT ms p50 ${report.ttft_ms.p50} p90 ${report.ttft_ms.p90} p99 ${report.ttft_ms.p99}`);
  console.log(`ITL  ms p50 ${report.itl_ms.p50} p90 ${report.itl_ms.p90} p99 ${report.itl_ms.p99}`);
}
