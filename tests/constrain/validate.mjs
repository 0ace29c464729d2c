// validate.mjs — the independent checker of the constraint property test.
// Complete outputs must validate: JSON schemas with ajv (+ ajv-formats,
// strict mode off), regexes with JS RegExp (full match, u flag), choices by
// membership, grammars by a JS parser or regex. Walks cut by the length
// bound never count as passes; they must still be accepted prefixes.
// usage: node validate.mjs CASES.jsonl OUT.jsonl
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(process.cwd() + "/");
const Ajv = require("ajv").default;
const addFormats = require("ajv-formats").default;

const cases = readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const outs = readFileSync(process.argv[3], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const ajv = new Ajv({ strict: false, allErrors: false });
addFormats(ajv);

function arith(s) { // expr := term (("+"|"*") term)* ; term := [0-9]{1,2} | "(" expr ")"
  let i = 0;
  const term = () => {
    if (s[i] === "(") { i++; if (!expr()) return false; if (s[i] !== ")") return false; i++; return true; }
    const m = /^[0-9]{1,2}/.exec(s.slice(i)); if (!m) return false; i += m[0].length; return true;
  };
  const expr = () => { if (!term()) return false; while (s[i] === "+" || s[i] === "*") { i++; if (!term()) return false; } return true; };
  return expr() && i === s.length;
}

let fail = 0, pass = 0, cut = 0, schemaPass = 0;
const schemaCases = new Set();
const validators = new Map();
for (const o of outs) {
  const c = cases[o.case];
  const tag = `case ${o.case} (${c.kind}) seed ${o.seed}`;
  if (o.compile_error) { fail++; console.error(`FAIL ${tag}: compile error: ${o.compile_error}`); continue; }
  if (o.error) { fail++; console.error(`FAIL ${tag}: walk error, output ${JSON.stringify(o.output)}`); continue; }
  if (!o.prefix_ok) { fail++; console.error(`FAIL ${tag}: output is not an accepted prefix`); continue; }
  if (!o.complete) { cut++; continue; }
  let ok = false, why = "";
  try {
    if (c.kind === "schema") {
      if (!validators.has(o.case)) validators.set(o.case, ajv.compile(JSON.parse(c.source)));
      const v = validators.get(o.case);
      ok = v(JSON.parse(o.output));
      if (!ok) why = ajv.errorsText(v.errors);
      if (ok) schemaPass++, schemaCases.add(o.case);
    } else if (c.kind === "regex") {
      ok = new RegExp("^(?:" + c.source + ")$", "u").test(o.output);
    } else if (c.kind === "choice") {
      ok = JSON.parse(c.source).includes(o.output);
    } else if (c.kind === "gbnf") {
      if (c.check === "arith") ok = arith(o.output);
      else if (c.check === "json") { JSON.parse(o.output); ok = true; }
      else ok = new RegExp("^(?:" + c.check_regex + ")$", "u").test(o.output);
    }
  } catch (e) { ok = false; why = String(e); }
  if (ok) pass++;
  else { fail++; console.error(`FAIL ${tag}: ${why} output ${JSON.stringify(o.output)} schema ${c.source}`); }
}
console.error(`validated ${pass} complete outputs (${schemaPass} JSON over ${schemaCases.size} schemas), ${cut} cut by the length bound (not counted), ${fail} failures`);
if (fail > 0) process.exit(1);
if (schemaPass < 500 || schemaCases.size < 100) { console.error("too few validated schema outputs"); process.exit(1); }
