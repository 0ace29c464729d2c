// gen_corpus.mjs — writes the tokenizer parity corpus: one JSON string per line.
//
// Deterministic (seeded PRNG, no clock), so every run tests the same strings.
// The corpus aims at the places where tokenizers disagree: Unicode
// whitespace and line breaks, NFC, contractions in every case, added-token
// strings and near-misses, very long words, digits, CJK, emoji sequences.
//
// usage: node gen_corpus.mjs OUT.jsonl
import { writeFileSync } from "node:fs";

let seed = 0x5eed1234;
function rand() {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const cp = (n) => String.fromCodePoint(n);

const out = [];
const add = (s) => out.push(s);

// --- fixed cases --------------------------------------------------------
add("");
add("Hello world");
add("Hello, world! How's it going?");
add(" leading space");
add("trailing space ");
add("  two leading spaces");

// Contractions: every letter-case variant, alone, after words, inside words.
const contractions = ["s", "t", "re", "ve", "m", "ll", "d"];
function caseVariants(s) {
  if (!s) return [""];
  const rest = caseVariants(s.slice(1));
  return rest.flatMap((r) => [s[0].toLowerCase() + r, s[0].toUpperCase() + r]);
}
for (const c of contractions)
  for (const v of caseVariants(c)) {
    add(`'${v}`);
    add(`it'${v} here`);
    add(`WORD'${v}WORD`);
    add(`x '${v}`);
    add(`'${v}'${v}`);
  }
// Long s (U+017F) case-folds to s: HF's (?i:'s) matches "'ſ".
for (const s of ["'ſ", "it'ſ", "it'ſok", "'ſ'S", "X'ſ y", "ſ's"]) add(s);

// Whitespace runs of every length 1..40, alone and between words.
const wsUnits = [" ", "\n", "\r\n", "\t", "\r", " \n", "\n ", "\u3000", "\u00a0"];
for (const u of wsUnits)
  for (let n = 1; n <= 40; n++) {
    const run = u.repeat(n);
    add(run);
    add(`a${run}b`);
    if (n % 3 === 0) add(`${run}word`);
    if (n % 4 === 0) add(`word${run}`);
  }
for (let n = 1; n <= 40; n += 3) add("x" + " ".repeat(n) + "\n".repeat(n % 5 + 1) + " ".repeat(n) + "y");

// Digits.
for (let n = 1; n <= 60; n += 1) {
  let d = "";
  for (let i = 0; i < n; i++) d += String(int(0, 9));
  add(d);
  if (n % 5 === 0) add(`v${d}.${d.slice(0, 3)}`);
}
add("3.14159265358979323846264338327950288419716939937510");
add("1,234,567.89 and -42 and 1e-10 and 0x1F and ٣٤٥ and ５６ and ²³ and ⅫⅣ and ½¾");

// CJK, Japanese, Korean.
const zh = ["我们今天去公园散步。", "机器学习是人工智能的一个分支，", "北京、上海和广州都是大城市！", "「你好」他说——然后走了……", "数据库（Database）查询优化"];
const ja = ["こんにちは、世界。", "東京タワーに行きました！", "がぎぐげご ぱぴぷぺぽ", "カタカナとひらがなと漢字", "ｶﾀｶﾅ半角"];
const ko = ["안녕하세요 세계", "한국어 텍스트입니다.", "대한민국의 수도는 서울이다"];
for (const s of [...zh, ...ja, ...ko]) {
  add(s);
  add(s + " mixed with English words 123");
}
add("\u1100\u1161\u11a8\u1100\u1161"); // Hangul jamo that NFC composes
add("\u110b\u1161\u11ab\u1102\u1167\u11bc"); // 안녕 in jamo
add("\uac00\u11a8"); // LV syllable + trailing jamo -> LVT

// Emoji: ZWJ families, skin tones, flags, keycaps.
const emoji = ["👨‍👩‍👧‍👦", "👍🏽", "👩🏿‍💻", "🏳️‍🌈", "🇺🇸🇯🇵", "1️⃣", "❤️", "😀😃😄", "🧑‍🤝‍🧑", "👋🏻👋🏼👋🏽👋🏾👋🏿"];
for (const e of emoji) {
  add(e);
  add(`hi ${e} there`);
  add(`${e}${e}`);
}

// Combining marks NFC changes.
const combining = ["e\u0301", "Cafe\u0301", "A\u030a", "\u212b", "\u00c5", "A\u030angstro\u0308m", "o\u0308\u0304", "a\u0301\u0323", "\u1e9b\u0323", "n\u0303o", "\u0041\u0300\u0301", "q\u0307\u0323", "\u0915\u093c", "\u0dd9\u0dcf", "\u0b47\u0b3e"];
for (const c of combining) {
  add(c);
  add(`word ${c} word`);
  add(`${c}${c}${c}`);
}

// Code with tabs and indentation.
const code = [
  "def f(x):\n\treturn x + 1\n",
  "if (a && b) {\n    printf(\"%d\\n\", a);\n}\n",
  "for i in range(10):\n        print(i)  # comment\n\n\n",
  "const x = {a: 1, 'b': [2, 3]};\r\n\tconsole.log(x);",
  "#include <stdio.h>\nint main(void){return 0;}",
  "SELECT * FROM t WHERE id = 42;\n",
  "    \t  mixed\t \tindent",
  "a  =  b;;;  // !!!  ???",
  "```python\nprint('hi')\n```",
];
for (const c of code) add(c);

// Added tokens and near-misses.
const specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<think>", "</think>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>"];
const nearMisses = ["<|im_end|", "< |im_end|>", "<|IM_END|>", "<|im_end |>", "|im_end|>", "<|im_end||>", "<<|im_end|>>", "<think", "think>", "<Think>", "</ think>", "<tool_call", "<|im_start|", "<|endoftext|"];
for (const s of specials) {
  add(s);
  add(`text${s}text`);
  add(` ${s} `);
  add(`${s}${s}`);
  add(`${s}\n`);
}
for (const s of nearMisses) {
  add(s);
  add(`a ${s} b`);
}
add("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>");
add("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>");

// Whitespace-like specials where engines disagree.
const wsSpecial = ["\u0085", "\u00a0", "\u2028", "\u2029", "\u3000", "\ufeff", "\u180e", "\u1680", "\u200b", "\u202f", "\u205f", "\u000b", "\u000c", "\u001c"];
for (const w of wsSpecial) {
  add(w);
  add(`a${w}b`);
  add(`a ${w} b`);
  add(`${w}${w}${w}`);
  add(`word${w}\n`);
  add(`${w}word`);
  add(`x${w}${w} y`);
  add(`!${w}?`);
  add(`1${w}2`);
}

// 10k-character words.
add("a".repeat(10000));
add("ab".repeat(5000));
add("的".repeat(3000));
add(" ".repeat(10000));
add("\n".repeat(10000));
add("1".repeat(10000));
add("!".repeat(10000));
{
  let w = "";
  for (let i = 0; i < 10000; i++) w += String.fromCharCode(97 + int(0, 25));
  add(w);
  add("Supercalifragilistic" + w.toUpperCase());
}

// --- random mixes -------------------------------------------------------
const pools = [
  () => pick(["the", "The", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "HTTP", "json", "I", "a"]),
  () => " ".repeat(int(1, 6)),
  () => pick(["\n", "\n\n", "\r\n", "\t", " \n ", "\r\n\r\n"]),
  () => pick(contractions.flatMap(caseVariants)).replace(/^/, "'"),
  () => String(int(0, 99999999)),
  () => pick([...zh, ...ja, ...ko]),
  () => pick(emoji),
  () => pick(combining),
  () => pick(specials),
  () => pick(nearMisses),
  () => pick(wsSpecial),
  () => pick([".", ",", "!", "?", "...", "--", "(", ")", "{", "}", "[", "]", "\"", "'", "`", "#", "$", "%", "&", "*", "/", "\\", "<", ">", "=", "+", "-", "_", "|", "~", "^", "@", ";", ":"]),
  () => {
    // random code points from well-established blocks
    const ranges = [[0x20, 0x7e], [0xa1, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f], [0x3040, 0x30ff], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0x2000, 0x206f], [0x2190, 0x23ff], [0x1f300, 0x1f64f], [0x300, 0x36f]];
    const [lo, hi] = pick(ranges);
    let s = "";
    for (let i = int(1, 8); i > 0; i--) s += cp(int(lo, hi));
    return s;
  },
];
while (out.length < 2600) {
  let s = "";
  for (let i = int(1, 14); i > 0; i--) s += pick(pools)();
  add(s);
}

writeFileSync(process.argv[2], out.map((s) => JSON.stringify(s)).join("\n") + "\n");
console.error(`gen_corpus: ${out.length} strings`);
