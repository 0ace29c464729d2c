// batch_invariance.mjs — does a seeded request give the same tokens alone and
// among concurrent requests (mixed prefill chunks and decodes)? Prints the
// first differing position, if any.
//   node bench/serve/batch_invariance.mjs --url http://127.0.0.1:8000/v1 [--tokens 16] [--others 7]
const args = process.argv.slice(2);
const opt = { url: 'http://127.0.0.1:8000/v1', tokens: 16, others: 7 };
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--url') opt.url = args[++i];
  else if (args[i] === '--tokens') opt.tokens = +args[++i];
  else if (args[i] === '--others') opt.others = +args[++i];
}
const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${process.env.OPENAI_API_KEY ?? 'none'}` };
const model = (await (await fetch(`${opt.url}/models`, { headers })).json()).data[0].id;
async function run(content, seed) {
  const r = await fetch(`${opt.url}/chat/completions`, { method: 'POST', headers, body: JSON.stringify({
    model, messages: [{ role: 'user', content }], temperature: 0.8, seed, max_tokens: opt.tokens, ignore_eos: true,
    logprobs: true }) });
  const j = await r.json();
  return j.choices[0].logprobs.content.map((t) => [t.token, t.logprob]);
}
const probe = 'Tell me a story about batching.';
const alone = await run(probe, 42);
const crowd = await Promise.all([run(probe, 42),
  ...Array.from({ length: opt.others }, (_, i) => run(`Other request ${i} with a different and longer prompt `.repeat(i + 1), i))]);
const mixed = crowd[0];
const diff = alone.findIndex((t, i) => t[0] !== mixed[i][0]);
const maxLp = Math.max(...alone.map((t, i) => Math.abs(t[1] - mixed[i][1])));
console.log(JSON.stringify({ tokens: alone.length, identical_tokens: diff < 0, first_difference: diff,
  max_abs_logprob_difference: maxLp }));
