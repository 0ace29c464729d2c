// validate_constrained.mjs — the independent checker of test_constrained:
// every output the constraint finished must validate — JSON Schema with ajv
// + ajv-formats (strict off), json_object as any JSON object, regexes with
// JS RegExp (full match, u flag), choices by membership. Outputs cut by max
// tokens are not written (the C test checks them as prefixes).
// usage: node validate_constrained.mjs OUT.jsonl MIN_VALIDATED
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(process.cwd() + "/");
const Ajv = require("ajv").default;
const addFormats = require("ajv-formats").default;

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.length > 0);
const minValidated = Number(process.argv[3] || 1);
const ajv = new Ajv({ strict: false, allErrors: false });
addFormats(ajv);
const validators = new Map();
let pass = 0, fail = 0;
for (const line of lines) {
  const c = JSON.parse(line);
  let ok = false, why = "";
  try {
    if (c.kind === "json" || c.kind === "json_object") {
      const v = JSON.parse(c.output);
      if (c.kind === "json_object") ok = v !== null && typeof v === "object" && !Array.isArray(v);
      else {
        if (!validators.has(c.source)) validators.set(c.source, ajv.compile(JSON.parse(c.source)));
        const validate = validators.get(c.source);
        ok = validate(v);
        if (!ok) why = ajv.errorsText(validate.errors);
      }
    } else if (c.kind === "regex") {
      ok = new RegExp("^(?:" + c.source + ")$", "u").test(c.output);
    } else if (c.kind === "choice") {
      ok = JSON.parse(c.source).includes(c.output);
    } else why = "unknown kind " + c.kind;
  } catch (e) {
    why = String(e);
  }
  if (ok) pass++;
  else {
    fail++;
    console.error(`INVALID ${c.label}: ${JSON.stringify(c.output)} ${why}`);
  }
}
console.log(`validated ${pass}, invalid ${fail} (need >= ${minValidated} validated)`);
process.exit(fail === 0 && pass >= minValidated ? 0 : 1);
