// tokenizer-throughput.mjs — llama.cpp's tokenizer (node-llama-cpp) on the
// same files as bench_tokenizer: MB/s single thread, and the ids.
//
// usage: node bench/tokenizer-throughput.mjs MODEL.gguf IDS_OUT.jsonl SECONDS FILE...
// Prints one line per file: "<file>: <bytes> bytes, <n> tokens, <MB/s> MB/s".
import { readFileSync, writeFileSync } from "node:fs";
import { getLlama } from "node-llama-cpp";

const [modelPath, idsOut, secondsArg, ...files] = process.argv.slice(2);
const minSeconds = Number(secondsArg);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath, vocabOnly: true });
const lines = [];
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const bytes = Buffer.byteLength(text, "utf8");
  // specialTokens=true: special-token text is matched, as cinfer does by default.
  let ids = model.tokenize(text, true);
  lines.push(JSON.stringify(Array.from(ids)));
  let runs = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  do {
    ids = model.tokenize(text, true);
    runs++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < minSeconds);
  console.log(`${file}: ${bytes} bytes, ${ids.length} tokens, ${((bytes * runs) / elapsed / 1e6).toFixed(2)} MB/s (${runs} runs)`);
}
writeFileSync(idsOut, lines.join("\n") + "\n");
await model.dispose();
