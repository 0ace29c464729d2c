// llamacpp.mjs — the same load as loadgen.mjs on llama.cpp (node-llama-cpp,
// CPU build): one context with N sequences, N concurrent generations of O
// tokens from P-token prompts (same random ids), greedy. node-llama-cpp
// batches the sequences' evaluations of one context into shared llama_decode
// calls, which is llama.cpp's way of serving N parallel sequences.
//
//   node bench/serve/llamacpp.mjs MODEL.gguf [-n 16] [--prompt-tokens 128] [--output-tokens 64] [-t THREADS]
//        [--dispatch-delay-ms D] [--json]
// Run from the repository root (node_modules).
import { getLlama } from 'node-llama-cpp';

const args = process.argv.slice(2);
const opt = { model: null, n: 16, p: 128, o: 64, t: 2, json: false, delay: 0 };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '-n') opt.n = +args[++i];
  else if (a === '--prompt-tokens') opt.p = +args[++i];
  else if (a === '--output-tokens') opt.o = +args[++i];
  else if (a === '-t') opt.t = +args[++i];
  else if (a === '--json') opt.json = true;
  else if (a === '--dispatch-delay-ms') opt.delay = +args[++i];
  else opt.model = a;
}
if (!opt.model) { console.error('usage: llamacpp.mjs MODEL.gguf [-n N] [--prompt-tokens P] [--output-tokens O] [-t T]'); process.exit(2); }

let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };
const prompts = Array.from({ length: opt.n }, () => Array.from({ length: opt.p }, () => 1000 + (rnd() % 100000)));

const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: opt.model });
const context = await model.createContext({ sequences: opt.n, contextSize: opt.p + opt.o + 16, threads: opt.t, // per sequence (node-llama-cpp multiplies by sequences)
  batchSize: 512,
  // --dispatch-delay-ms D: wait D ms before each llama_decode so that every sequence's next token is in the batch
  // (the default "nextCycle" dispatch can run before all sequences have sampled and queued their next token)
  ...(opt.delay > 0 ? { batching: { dispatchSchedule: (dispatch) => setTimeout(dispatch, opt.delay) } } : {}) });

async function one(seq, prompt) {
  const t0 = performance.now();
  const times = [];
  for await (const _tok of seq.evaluate(prompt, { temperature: 0 })) {
    times.push(performance.now());
    if (times.length >= opt.o) break;
  }
  return { t0, times };
}
// warm-up
{
  const s = context.getSequence();
  await one(s, prompts[0].slice(0, 8));
  s.dispose();
}
const seqs = prompts.map(() => context.getSequence());
const start = performance.now();
const results = await Promise.all(seqs.map((s, i) => one(s, prompts[i])));
const wall = (performance.now() - start) / 1000;
const pct = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const ttft = results.map((r) => r.times[0] - r.t0);
const itl = results.flatMap((r) => r.times.slice(1).map((t, i) => t - r.times[i]));
const out = results.reduce((a, r) => a + r.times.length, 0);
const report = { engine: 'llama.cpp (node-llama-cpp)', dispatch_delay_ms: opt.delay, concurrency: opt.n, prompt_tokens: opt.p, output_tokens: opt.o,
  wall_s: +wall.toFixed(2), output_tok_s: +(out / wall).toFixed(1),
  ttft_ms: { p50: +pct(ttft, 0.5).toFixed(0), p90: +pct(ttft, 0.9).toFixed(0) },
  itl_ms: { p50: +pct(itl, 0.5).toFixed(1), p90: +pct(itl, 0.9).toFixed(1) }, generated_tokens: out };
console.log(opt.json ? JSON.stringify(report) : report);
await context.dispose();
await model.dispose();
