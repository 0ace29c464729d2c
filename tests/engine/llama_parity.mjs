// llama_parity.mjs — cinfer's forward pass against llama.cpp (node-llama-cpp,
// the independent oracle) on the same GGUF file.
//
//  1. Teacher forcing: the same token sequence (tokenized by llama.cpp) goes
//     through both; at every position the next-token distributions must
//     agree: KL(llama.cpp || cinfer) < --max-kl.
//  2. Greedy generation: `cinfer run --raw --temperature 0` and llama.cpp's
//     greedy decoding from the same prompt must produce the same tokens. A
//     divergence is accepted only at a near-tie: llama.cpp's top-2 log
//     probabilities within --tie-eps at that step; it is printed.
//
// usage: node llama_parity.mjs --model M.gguf --cinfer BIN --forward-dump BIN
//        [--positions 64] [--generate 32] [--max-kl 1e-4] [--tie-eps 1e-3]
import { getLlama } from "node-llama-cpp";
import { execFileSync } from "node:child_process";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const positions = Number(args.positions ?? 64);
const generate = Number(args.generate ?? 32);
const maxKl = Number(args["max-kl"] ?? 1e-4);
const tieEps = Number(args["tie-eps"] ?? 1e-3);
const text = "The quick brown fox jumps over the lazy dog. 你好，世界！ In 2025, Qwen3 models were released " +
  "with thinking and non-thinking modes; def f(x):\n\treturn x * 2\n";

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: args.model });
let ids = [];
while (ids.length < positions) ids = ids.concat(Array.from(model.tokenize(text, false)));
ids = ids.slice(0, positions);
const ctx = await model.createContext({ contextSize: 1024, threads: 2 });
let failures = 0;

// ---- 1. teacher-forced distributions
{
  const seq = ctx.getSequence();
  const out = await seq.controlledEvaluate(ids.map(t => [t, { generateNext: { probabilities: true } }]));
  const raw = execFileSync(args["forward-dump"], [args.model, JSON.stringify(ids), "--bin"], { maxBuffer: 1 << 30 });
  const logits = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const V = logits.length / ids.length;
  let worst = 0, worstPos = -1, argmaxAgree = 0;
  for (let i = 0; i < ids.length; i++) {
    const row = logits.subarray(i * V, (i + 1) * V);
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, row[v]);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(row[v] - mx);
    const logZ = Math.log(z) + mx;
    // llama.cpp's probabilities come from an fp32 softmax over 151,936 terms and
    // sum to 1 ± ~5e-5; that normalisation error alone would read as a KL of
    // the same size, so they are renormalised (in double) first.
    let total = 0;
    for (const p of out[i].next.probabilities.values()) total += p;
    let kl = 0, lmTop = -1, lmTopP = -1;
    for (let [tok, p] of out[i].next.probabilities) {
      p /= total;
      if (p > lmTopP) lmTopP = p, lmTop = tok;
      if (p > 0) kl += p * (Math.log(p) - (row[tok] - logZ));
    }
    let cTop = 0;
    for (let v = 1; v < V; v++) if (row[v] > row[cTop]) cTop = v;
    if (cTop === lmTop) argmaxAgree++;
    if (process.env.PER_POSITION) console.log(`position ${i}: KL ${kl.toExponential(2)}`);
    if (kl > worst) worst = kl, worstPos = i;
  }
  console.log(`teacher forcing: ${ids.length} positions, max KL ${worst.toExponential(3)} at ${worstPos}, argmax agrees at ${argmaxAgree}/${ids.length}`);
  if (!(worst < maxKl)) { console.log(`FAIL: KL ${worst} >= ${maxKl}`); failures++; }
  await seq.dispose();
}

// ---- 2. greedy generation
{
  const prompt = text;
  const promptIds = Array.from(model.tokenize(prompt, false));
  const cinferIds = JSON.parse(execFileSync(args.cinfer, ["tokenize", "--tokenizer", args.model, "--no-special", prompt]).toString());
  if (JSON.stringify(cinferIds) !== JSON.stringify(promptIds)) {
    console.log("FAIL: prompt tokenization differs", JSON.stringify(promptIds), JSON.stringify(cinferIds));
    failures++;
  }
  const seq = ctx.getSequence();
  const input = promptIds.map((t, i) => i === promptIds.length - 1 ? [t, { generateNext: { probabilities: true } }] : t);
  const lmTokens = [], lmGaps = [];
  let res = await seq.controlledEvaluate(input);
  for (let step = 0; step < generate; step++) {
    const probs = res[res.length - 1].next.probabilities;
    const it = probs.entries();
    const [t1, p1] = it.next().value, second = it.next().value;
    lmTokens.push(t1);
    lmGaps.push(Math.log(p1) - Math.log(second ? second[1] : 1e-30));
    res = await seq.controlledEvaluate([[t1, { generateNext: { probabilities: true } }]]);
  }
  const run = JSON.parse(execFileSync(args.cinfer, ["run", args.model, "--raw", "-p", prompt, "--temperature", "0",
    "--max-tokens", String(generate), "--json"]).toString());
  const n = Math.min(run.tokens.length, lmTokens.length);
  let agreed = 0;
  for (; agreed < n && run.tokens[agreed] === lmTokens[agreed]; agreed++);
  if (agreed < n) {
    const gap = lmGaps[agreed];
    console.log(`greedy: diverged at step ${agreed} (llama ${lmTokens[agreed]}, cinfer ${run.tokens[agreed]}), llama.cpp top-2 gap ${gap.toExponential(3)}`);
    if (!(gap < tieEps)) { console.log("FAIL: divergence is not at a near-tie"); failures++; }
  } else if (run.tokens.length < generate && run.finish_reason !== "stop") {
    console.log(`FAIL: cinfer produced ${run.tokens.length} tokens, finish ${run.finish_reason}`); failures++;
  } else {
    console.log(`greedy: ${n} tokens identical (finish ${run.finish_reason})`);
  }
}
console.log(failures ? `1 failed` : `parity ok`);
process.exit(failures ? 1 : 0);
