// llamacpp-bench.mjs — llama-bench-style pp/tg tokens/s of llama.cpp
// (node-llama-cpp, CPU build) on one GGUF, for bench/compare-llamacpp.
//
//   node bench/llamacpp-bench.mjs MODEL.gguf [-p 512] [-n 128] [-t 2] [-r 5] [-b 1] [--json]
//
// pp: one evaluateWithoutGeneratingNewTokens of p random tokens into an empty
// context; tg: n single-token evaluateWithoutGeneratingNewTokens calls (no
// sampling, as llama-bench) from an empty context. -b S: S sequences of one
// context decode together (each step evaluates one token of every sequence;
// node-llama-cpp batches the concurrent evaluations into one llama_decode),
// t/s is the aggregate S·n / time. One warm-up, then the median of r runs. Must run from the
// repository root (node_modules).
import {getLlama} from "node-llama-cpp";

const args = process.argv.slice(2);
let modelPath = null, p = 512, n = 128, t = 2, r = 5, b = 1, json = false;
for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-p") p = +args[++i];
    else if (a === "-n") n = +args[++i];
    else if (a === "-t") t = +args[++i];
    else if (a === "-r") r = +args[++i];
    else if (a === "-b") b = +args[++i];
    else if (a === "--json") json = true;
    else modelPath = a;
}
if (!modelPath) { console.error("usage: llamacpp-bench.mjs MODEL [-p N] [-n N] [-t N] [-r N] [--json]"); process.exit(2); }

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const vocab = 151000;
let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % vocab; };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function timePP() {
    const ctx = await model.createContext({contextSize: Math.max(p, n) + 16, threads: t, batchSize: Math.max(p, 1)});
    const seq = ctx.getSequence();
    const toks = Array.from({length: p}, rnd);
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(toks);
    const dt = (performance.now() - t0) / 1000;
    await ctx.dispose();
    return p / dt;
}
async function timeTG() {
    // llama-bench's tg: n decode steps of one token each, no sampling
    const ctx = await model.createContext({contextSize: b * (Math.max(p, n) + 16), sequences: b, threads: t,
                                           batchSize: Math.max(p, b, 1)});
    const seqs = Array.from({length: b}, () => ctx.getSequence());
    const toks = Array.from({length: n * b}, rnd);
    const t0 = performance.now();
    for (let i = 0; i < n; i++)
        await Promise.all(seqs.map((s, j) => s.evaluateWithoutGeneratingNewTokens([toks[i * b + j]])));
    const dt = (performance.now() - t0) / 1000;
    await ctx.dispose();
    return n * b / dt;
}
const out = {threads: t, reps: r, n_prompt: p, n_gen: n, batch: b};
if (p > 0) { await timePP(); const xs = []; for (let i = 0; i < r; i++) xs.push(await timePP()); out.pp_tps = median(xs); out.pp_min = Math.min(...xs); out.pp_max = Math.max(...xs); }
if (n > 0) { await timeTG(); const xs = []; for (let i = 0; i < r; i++) xs.push(await timeTG()); out.tg_tps = median(xs); out.tg_min = Math.min(...xs); out.tg_max = Math.max(...xs); }
if (json) console.log(JSON.stringify(out));
else console.log(`llama.cpp ${modelPath}: pp${p} ${out.pp_tps?.toFixed(2)} t/s, tg${n} ${out.tg_tps?.toFixed(2)} t/s (median of ${r}, ${t} threads)`);
await model.dispose();
