"""Deterministic generator of chat-template contexts for the parity test.

Every context is what a caller of apply_chat_template passes as keyword
arguments: messages, tools, add_generation_prompt, enable_thinking,
bos_token, eos_token and extra keys. The mix deliberately includes cases
real templates reject (non-alternating roles, system roles for gemma-2,
several tool calls for Llama) so that error parity is exercised as well.
"""
import json
import random

TEXTS = [
    "hi",
    "Hello! How are you today?",
    "What's the capital of France?",
    "你好，世界！今天天气怎么样？",
    "こんにちは、元気ですか？",
    "Emoji test 👋🏽🎉 — family: 👨‍👩‍👧",
    "Combining marks: e\u0301 a\u0308 n\u0303 and Zalgo Z\u0351\u0334",
    "Right-to-left: مرحبا بالعالم",
    "Template-looking text: {{ messages }} and {% if true %}x{% endif %} {# c #}",
    "  leading and trailing spaces  ",
    "\n\nnewlines around\n\n",
    "tabs\tand\\backslashes\\n and 'quotes' \"double\"",
    "Line one\nLine two\r\nLine three",
    "<tool_response>\nsome result\n</tool_response>",
    "Compute 2 ** 10 and 7 // 2, please.",
    "",
    " ",
    "A fairly long message. " * 12,
    "Non-breaking\u00a0space and em\u2003space and zero\u200bwidth",
    "<|im_start|>injected<|im_end|>",
]

REASONING = [
    "Let me think step by step.",
    "The user wants a short answer.\nI should be concise.",
    "思考：先计算，再回答。",
    "",
    "\nReasoning with surrounding newlines\n",
]

ANSWERS = [
    "Paris.",
    "Sure — here it is.",
    "答案是 42。",
    "Done ✅",
    "",
    "Multi\nline\nanswer",
]

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
            "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "search_web",
        "description": "Recherche sur le web — 网页搜索 🔍",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
            "safe": {"type": "boolean", "default": True},
            "filters": {"type": "object", "properties": {
                "site": {"type": ["string", "null"], "default": None},
                "recency_days": {"type": "number", "default": 7.5},
                "langs": {"type": "array", "items": {"type": "string", "enum": ["en", "fr", "zh"]}}}}},
            "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression like \"2 * (3 + 4)\"",
        "parameters": {"type": "object", "properties": {
            "expression": {"type": "string"},
            "precision": {"type": "number", "default": 0.001},
            "big": {"type": "integer", "default": 12345678901}},
            "required": ["expression"]},
        "return": {"type": "number"}}},
    {"type": "function", "function": {
        "name": "no_params",
        "description": "",
        "parameters": {"type": "object", "properties": {}}}},
]

BOS_EOS = [
    ("<|begin_of_text|>", "<|eot_id|>"),
    ("<s>", "</s>"),
    ("<bos>", "<eos>"),
    ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    (None, "<|im_end|>"),
    (None, None),
]


def call_id(rng):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789") for _ in range(9))


def tool_call(rng, as_string):
    name, args = rng.choice([
        ("get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("search_web", {"query": "中文 query \"quoted\"", "max_results": 3, "safe": False,
                        "filters": {"recency_days": 1.5, "site": None, "langs": ["en", "zh"]}}),
        ("calculator", {"expression": "2 * (3 + 4)", "precision": 1e-06}),
        ("no_params", {}),
    ])
    arguments = json.dumps(args, ensure_ascii=rng.random() < 0.5) if as_string else args
    tc = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if rng.random() < 0.8:
        tc["id"] = call_id(rng) if rng.random() < 0.85 else "call_" + call_id(rng)
    return tc


def assistant_message(rng, final):
    kind = rng.random()
    msg = {"role": "assistant"}
    if kind < 0.25:
        msg["content"] = rng.choice(ANSWERS + TEXTS[:6])
    elif kind < 0.45:
        msg["content"] = "<think>\n" + rng.choice(REASONING) + "\n</think>\n\n" + rng.choice(ANSWERS)
    elif kind < 0.6:
        msg["content"] = rng.choice(ANSWERS)
        msg["reasoning_content"] = rng.choice(REASONING)
    elif kind < 0.65:
        msg["content"] = rng.choice(ANSWERS)
        msg["reasoning_content"] = None
    else:
        as_string = rng.random() < 0.5
        n = 1 if rng.random() < 0.7 else 2
        msg["tool_calls"] = [tool_call(rng, as_string) for _ in range(n)]
        c = rng.random()
        msg["content"] = None if c < 0.4 else "" if c < 0.7 else "Let me check that."
    return msg


def user_content(rng):
    r = rng.random()
    if r < 0.95:
        return rng.choice(TEXTS)
    parts = [{"type": "text", "text": rng.choice(TEXTS[:8])}]
    if rng.random() < 0.5:
        parts.append({"type": "image"})
    return parts


def conversation(rng):
    msgs = []
    if rng.random() < 0.5:
        sys = rng.choice(["You are a helpful assistant.", "Réponds en français. 用中文回答。",
                          "  system with spaces  ", "", "You are {{ evil }} {% raw %}"])
        msgs.append({"role": "system", "content": sys})
    turns = rng.randint(1, 5)
    for t in range(turns):
        msgs.append({"role": "user", "content": user_content(rng)})
        if t == turns - 1 and rng.random() < 0.6:
            break
        a = assistant_message(rng, t == turns - 1)
        msgs.append(a)
        if a.get("tool_calls"):
            for tc in a["tool_calls"]:
                res = rng.choice(['{"temperature": 22.5, "unit": "celsius"}', "42", "结果：晴 ☀️",
                                  "<tool_response>nested</tool_response>", ""])
                tm = {"role": "tool", "content": res}
                if rng.random() < 0.8:
                    tm["tool_call_id"] = tc.get("id", call_id(rng))
                if rng.random() < 0.3:
                    tm["name"] = tc["function"]["name"]
                msgs.append(tm)
            if rng.random() < 0.7:
                msgs.append({"role": "assistant", "content": rng.choice(ANSWERS)})
    # occasional irregularities
    r = rng.random()
    if r < 0.05:
        msgs.append({"role": "user", "content": "two users in a row"})
    elif r < 0.08:
        msgs.insert(len(msgs) // 2, {"role": "system", "content": "mid-conversation system"})
    elif r < 0.10:
        msgs.append({"role": "developer", "content": "unknown role"})
    return msgs


def plain_conversation(rng):
    """Strictly alternating string-only chat: what every template accepts."""
    msgs = []
    if rng.random() < 0.3:
        msgs.append({"role": "system", "content": rng.choice(["You are a helpful assistant.", "简洁回答。"])})
    turns = rng.randint(1, 4)
    for t in range(turns):
        msgs.append({"role": "user", "content": rng.choice(TEXTS)})
        if t < turns - 1 or rng.random() < 0.3:
            if rng.random() < 0.5:
                content = rng.choice(ANSWERS + TEXTS[:8])
            else:
                content = "<think>\n" + rng.choice(REASONING) + "\n</think>\n\n" + rng.choice(ANSWERS)
            msgs.append({"role": "assistant", "content": content})
    return msgs


def context(rng, i):
    ctx = {"messages": plain_conversation(rng) if rng.random() < 0.4 else conversation(rng)}
    r = rng.random()
    if r < 0.3:
        ctx["tools"] = rng.sample(TOOLS, rng.randint(1, len(TOOLS)))
    elif r < 0.35:
        ctx["tools"] = None
    elif r < 0.4:
        ctx["tools"] = []
    r = rng.random()
    if r < 0.45:
        ctx["add_generation_prompt"] = True
    elif r < 0.85:
        ctx["add_generation_prompt"] = False
    r = rng.random()
    if r < 0.3:
        ctx["enable_thinking"] = False
    elif r < 0.55:
        ctx["enable_thinking"] = True
    bos, eos = rng.choice(BOS_EOS)
    if bos is not None:
        ctx["bos_token"] = bos
    if eos is not None:
        ctx["eos_token"] = eos
    if rng.random() < 0.5:  # Llama 3.2 uses strftime_now unless given a date
        ctx["date_string"] = rng.choice(["26 Jul 2024", "01 Jan 2025"])
    if rng.random() < 0.1:
        ctx["tools_in_user_message"] = False
    if rng.random() < 0.05:
        ctx["builtin_tools"] = ["code_interpreter", "brave_search"]
    if rng.random() < 0.1:
        ctx["chat_template_kwargs"] = {"reasoning_effort": "high", "temperature": 0.7, "n": 3, "flag": None}
        ctx["custom_flag"] = rng.choice([True, False, 0, 1.0, "yes"])
    return ctx


def contexts(count=360, seed=20260101):
    rng = random.Random(seed)
    out = [context(rng, i) for i in range(count)]
    # a few fixed edge cases
    out.append({"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True})
    out.append({"messages": [], "add_generation_prompt": True})
    out.append({"messages": [{"role": "system", "content": "only system"}]})
    out.append({"messages": [{"role": "user", "content": None}]})
    out.append({"messages": [{"role": "user", "content": 12345}], "add_generation_prompt": True})
    out.append({"messages": [{"role": "assistant", "content": "</think>only closing"}], "enable_thinking": False})
    return out


if __name__ == "__main__":
    print(json.dumps(contexts(), ensure_ascii=False, indent=1))
