// gen_cases.mjs — writes the property-test cases (one JSON object per line):
// ≥ 100 distinct JSON schemas (seeded generator + real-world tool parameter
// schemas), regexes, choice lists and GBNF grammars with an independent check.
// Lengths are bounded (maxLength, maxItems, enums) so random walks can end.
// usage: node gen_cases.mjs OUT.jsonl
import { writeFileSync } from "node:fs";

let s = 12345;
const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (a) => a[Math.floor(rnd() * a.length)];
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

const words = ["id", "name", "age", "email", "tags", "items", "price", "qty", "city", "zip", "note", "when",
  "kind", "level", "score", "ok", "data", "meta", "owner", "title", "unit", "lat", "lon", "url_path", "status"];

function leaf() {
  switch (int(0, 15)) {
    case 0: return { type: "string", maxLength: int(0, 10) };
    case 1: return { type: "string", minLength: 1, maxLength: int(1, 8) };
    case 2: return { enum: ["red", "green", "blue", "dark \"violet\"", "naïve"] .slice(0, int(1, 5)) };
    case 3: return { type: "string", const: pick(["fixed", "a\\b", "ümlaut", "x\ny"]) };
    case 4: return { type: "string", pattern: pick(["^[A-Z]{2}-[0-9]{3}$", "^[a-z]{1,6}$", "^\\d{3}(-\\d{2})?$", "^(ab|cd)+$",
      "[0-9]", "^[^\\s]{2,5}$", "^\\w+@\\w+\\.com$", "^é+\\u00e8?$"]) };
    case 5: return { type: "string", format: pick(["date", "date-time", "time", "email", "uuid"]) };
    case 6: return { type: "integer" };
    case 7: return { type: "integer", minimum: int(-50, 0), maximum: int(1, 2000) };
    case 8: return { type: "number" };
    case 9: return { type: "number", minimum: int(-10, 3), exclusiveMaximum: int(4, 100) };
    case 10: return { type: "boolean" };
    case 11: return { type: "null" };
    case 12: return { type: ["string", "null"], maxLength: 5 };
    case 13: return { anyOf: [{ type: "integer", minimum: 0, maximum: 9 }, { type: "string", maxLength: 3 }] };
    case 14: return { oneOf: [{ type: "boolean" }, { type: "array", items: { type: "integer", maximum: 99, minimum: 0 }, maxItems: 2 }] };
    default: return { type: "integer", exclusiveMinimum: -3, maximum: 3 };
  }
}

function schema(depth) {
  const r = rnd();
  if (depth >= 3 || r < 0.35) return leaf();
  if (r < 0.7) {
    const n = int(1, 6), props = {}, req = [];
    for (let i = 0; i < n; i++) {
      const k = words[(i * 7 + int(0, 24)) % words.length] + (rnd() < 0.2 ? "_" + i : "");
      if (props[k]) continue;
      props[k] = schema(depth + 1);
      if (rnd() < 0.6) req.push(k);
    }
    const o = { type: "object", properties: props, required: req };
    const a = rnd();
    o.additionalProperties = a < 0.75 ? false : a < 0.9 ? { type: "integer", minimum: 0, maximum: 9 } : { type: "boolean" };
    return o;
  }
  if (r < 0.85) return { type: "array", items: schema(depth + 1), minItems: int(0, 1), maxItems: int(1, 3) };
  return { anyOf: [schema(depth + 1), { type: "null" }] };
}

const schemas = [];
const seen = new Set();
while (schemas.length < 100) {
  const sc = schema(0);
  const k = JSON.stringify(sc);
  if (!seen.has(k)) seen.add(k), schemas.push(sc);
}
// Recursive $ref, real-world tool parameter schemas, json-like nesting.
schemas.push(
  { $defs: { node: { type: "object", properties: { v: { type: "integer", minimum: 0, maximum: 9 },
    kids: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } }, required: ["v", "kids"], additionalProperties: false } },
    $ref: "#/$defs/node" },
  { definitions: { expr: { anyOf: [{ type: "integer", minimum: 0, maximum: 99 },
    { type: "object", properties: { op: { enum: ["+", "*"] }, args: { type: "array", items: { $ref: "#/definitions/expr" }, minItems: 2, maxItems: 2 } },
      required: ["op", "args"], additionalProperties: false }] } }, $ref: "#/definitions/expr" },
  { type: "object", properties: { location: { type: "string", maxLength: 20, description: "City and country" },
    unit: { type: "string", enum: ["celsius", "fahrenheit"] } }, required: ["location", "unit"], additionalProperties: false },
  { type: "object", properties: { query: { type: "string", maxLength: 16 }, top_k: { type: "integer", minimum: 1, maximum: 20 },
    filters: { type: "object", properties: { lang: { enum: ["en", "de", "fr"] }, after: { type: "string", format: "date" } },
      required: ["lang"], additionalProperties: false } }, required: ["query"], additionalProperties: false },
  { type: "object", properties: { title: { type: "string", maxLength: 12 }, start: { type: "string", format: "date-time" },
    attendees: { type: "array", items: { type: "string", format: "email" }, maxItems: 3 }, reminder_minutes: { type: ["integer", "null"], minimum: 0, maximum: 120 } },
    required: ["title", "start", "attendees", "reminder_minutes"], additionalProperties: false },
  { type: "object", properties: { path: { type: "string", pattern: "^/[a-z0-9_/]{1,20}$" }, recursive: { type: "boolean" },
    mode: { anyOf: [{ const: "r" }, { const: "w" }] } }, required: ["path", "recursive", "mode"], additionalProperties: false },
  { type: "object", properties: { sql: { type: "string", maxLength: 30 }, params: { type: "array", items: { type: ["string", "number", "null"], maxLength: 6 }, maxItems: 3 } },
    required: ["sql", "params"], additionalProperties: false },
  { type: "object", properties: { id: { type: "string", format: "uuid" }, amount: { type: "number", minimum: 0, maximum: 1000 },
    currency: { type: "string", pattern: "^[A-Z]{3}$" }, note: { type: "string", maxLength: 10 } }, required: ["id", "amount", "currency"] },
  { type: "object", properties: { steps: { type: "array", items: { type: "object", properties: { explanation: { type: "string", maxLength: 15 },
    output: { type: "string", maxLength: 8 } }, required: ["explanation", "output"], additionalProperties: false }, maxItems: 3 },
    final_answer: { type: "string", maxLength: 10 } }, required: ["steps", "final_answer"], additionalProperties: false },
  { type: "object", properties: { name: { type: "string", maxLength: 8 } }, required: ["name"], additionalProperties: true },
  { type: "object", properties: { a: { type: "object", properties: { b: { type: "object", properties: { c: { type: "array",
    items: { type: "array", items: { type: "integer", minimum: -5, maximum: 5 }, maxItems: 2 }, maxItems: 2 } }, required: ["c"], additionalProperties: false } },
    required: ["b"], additionalProperties: false } }, required: ["a"], additionalProperties: false },
  { type: "object", properties: { t: { type: "string", format: "time" }, d: { type: "string", format: "date" } }, required: ["t", "d"], additionalProperties: false },
);

const out = [];
for (const sc of schemas) out.push({ kind: "schema", source: JSON.stringify(sc), seeds: 5, budget: 48 });
const regexes = ["[a-z]{3,8}", "(yes|no|maybe)", "\\d{1,3}(\\.\\d{1,3}){3}", "[A-Z][a-z]*( [A-Z][a-z]*){0,3}", "(ab|a)(bc|c)?d",
  "[^\\n]{0,20}\\n", "\\w+@\\w+\\.(com|org)", "-?(0|[1-9]\\d{0,4})(\\.\\d+)?", "\\s{0,3}x\\S{2}", "[\\u00e0-\\u00ff\\u4e00-\\u4e10]{1,5}",
  ".{1,6}", "(a|b|c)*d", "#[0-9a-fA-F]{6}", "\\(\\d{3}\\) \\d{3}-\\d{4}", "([01]?\\d|2[0-3]):[0-5]\\d"];
for (const re of regexes) out.push({ kind: "regex", source: re, seeds: 4, budget: 24 });
const choices = [["positive", "negative", "neutral"], ["a", "ab", "abc", "abcd"], ["北京", "東京", "Paris", "São Paulo"],
  ["true", "false"], Array.from({ length: 300 }, (_, i) => "item-" + i)];
for (const c of choices) out.push({ kind: "choice", source: JSON.stringify(c), seeds: 4, budget: 12 });
const gbnf = [
  { source: 'root ::= expr\nexpr ::= term (("+" | "*") term){0,3}\nterm ::= [0-9]{1,2} | "(" expr ")"\n', check: "arith" },
  { source: 'root ::= word ("," word){0,4}\nword ::= [a-z]{1,5}\n', check_regex: "[a-z]{1,5}(,[a-z]{1,5}){0,4}" },
  { source: '# a small JSON\nroot ::= obj\nobj ::= "{" (pair ("," pair){0,2})? "}"\npair ::= str ":" val\nval ::= str | num | obj | "[" (val ("," val){0,2})? "]" | "true" | "null"\nstr ::= "\\"" [a-z ]{0,6} "\\""\nnum ::= "-"? [1-9] [0-9]{0,3}\n', check: "json" },
  { source: 'root ::= greeting " " name "!"\ngreeting ::= "hi" | "hello"\nname ::= [A-Z] [a-z]{0,7}\n', check_regex: "(hi|hello) [A-Z][a-z]{0,7}!" },
  { source: 'root ::= ("a" | "b")* "c" [^abc\\n]{0,3}\n', check_regex: "[ab]*c[^abc\\n]{0,3}" },
];
for (const g of gbnf) out.push({ kind: "gbnf", seeds: 4, budget: 32, ...g });
writeFileSync(process.argv[2], out.map((o) => JSON.stringify(o)).join("\n") + "\n");
console.error(`cases: ${schemas.length} schemas, ${regexes.length} regexes, ${choices.length} choice lists, ${gbnf.length} grammars`);
