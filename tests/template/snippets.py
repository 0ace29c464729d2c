"""Unit table: small templates, one feature each, rendered by Jinja2 at test
time (run_cases.py snippets) and by cinfer. An entry is a template string or
(template, context). Expected outputs are never written here by hand."""

CTX = {
    "messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}],
    "d": {"b": 2, "a": 1, "items": "key named items", "C": 3},
    "l": [3, 1, 2],
    "s": "Hello World",
    "u": "héllo wörld 你好 👋",
    "n": None, "t": True, "f": 1.5, "i": 7, "z": 0,
    "users": [{"name": "bob", "age": 30, "tags": ["a"]}, {"name": "Alice", "age": 25, "tags": []},
              {"name": "carol", "age": 35, "tags": ["b", "c"]}],
}

SNIPPETS = [
    # ---- whitespace control: trim_blocks / lstrip_blocks / - / +
    "a\n  {% if true %}\n    x\n  {% endif %}\nb",
    "a\n  {%- if true -%}\n    x\n  {%- endif -%}\nb",
    "a\n  {%+ if true %}x{% endif +%}\nb",
    "  {{ 'v' }}\n  {# comment #}\nz",
    "  {#- comment -#}  \n z",
    "x {{- ' y ' -}} z",
    "line\n    {% for i in [1,2] %}\n    {{ i }}\n    {% endfor %}\nend\n",
    "{% raw %}{{ not evaluated }}{% endraw %}",
    "a  {%- raw -%}  {{ x }}  {%- endraw -%}  b",
    "{%- if true %}\r\nwin\r\nnewlines{% endif %}\r\n",
    "trailing newline kept once?\n\n",
    "\t{% if true %}tab{% endif %}",
    "{% if true %}   {% endif %}after",
    "{{ 'a' }}\n{{ 'b' }}\n",
    "{% for x in [1] %}\n{{ x }}{% endfor %}",
    # ---- literals and printing
    "{{ 1 }} {{ 1.0 }} {{ 1.5e3 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ -0.0 }} {{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }}",
    "{{ none }} {{ None }} {{ true }} {{ False }} {{ n }} {{ t }}",
    "{{ [1, 'a', none, true, 2.5] }} {{ ('x',) }} {{ () }} {{ {'k': 'v', 'n': [1]} }}",
    "{{ \"it's\" }} {{ ['it\\'s', \"say \\\"hi\\\"\", 'back\\\\slash', 'nl\\n', 'tab\\t', '\\x00\\x7f'] }}",
    "{{ ['é', '你', '\\u00a0', '\\u200b', '👋', '\\U0001F600'] }}",
    "{{ 'a' 'b' \"c\" }} {{ '\\u4e2d\\x41\\101' }} {{ 'unknown \\d escape' }}",
    "{{ d }} {{ users[0] }}",
    "{{ 3 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}",
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ 'a' ~ 1 ~ none ~ [1] }} {{ -i }} {{ +f }}",
    "{{ 1 + true }} {{ 1.5 + 1 }} {{ [1] + [2] }} {{ (1,) + (2,) }}",
    # ---- comparisons and logic
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }} {{ 1 != 2 }} {{ 'a' in 'abc' }} {{ 'z' not in 'abc' }} {{ 2 in [1,2] }} {{ 'a' in d }} {{ 'items' in d }}",
    "{{ 0 or 'x' }} {{ 'y' and 0 }} {{ none or [] }} {{ not 0 }} {{ not [] and 'q' }} {{ 1 if 0 else 2 }} {{ 'w' if 1 }} [{{ 'w' if 0 }}]",
    "{{ 1 + 1 == 1 * 2 }} {{ 3 > 1 + 1 }} {{ 'a' in 'b' ~ 'a' }} {{ l | length - 1 == 2 }}",
    "{{ true == 1 }} {{ n is none }} {{ n == none }} {{ missing == missing2 }} {{ missing is undefined }}",
    # ---- attribute / item access
    "{{ d.a }} {{ d['b'] }} {{ d.items is defined }} {{ d['items'] }} {{ d.missing }}|{{ d['missing'] }}|{{ l[0] }} {{ l[-1] }} {{ l[5] }}|{{ s[0] }} {{ u[1] }} {{ u[-1] }}",
    "{{ l[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ s[::2] }} {{ u[::-1] }} {{ u[2:5] }} {{ s[100:] }} {{ l[-100:1] }} {{ s[1:-1:3] }}",
    "{{ users[0].name }} {{ users.0.name }} {{ users[1]['age'] }} {{ messages[0].content }}",
    "{{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}",
    "{{ s.x is defined }} {{ n.x is defined }} {{ i.real is defined }} {{ d.pop is defined }}",
    # number attributes by type (a float's .real once read the bool member: UBSan, issue 11)
    "{% set x = 1.1 %}{{ x.real }} {{ x.imag }} {{ f.real }} {{ i.real }} {{ i.imag }} {{ t.real }} {{ t.numerator }} {{ i.denominator }}|{{ f.numerator }}|{{ f.is_integer is defined }}",
    # select()/reject() with no test name (once NULL+0 in select_common)
    "{{ [1] | select() | list }} {{ [0, 1, '', 'a'] | select() | list }} {{ [0, 1, 2] | reject() | list }}",
    # ---- undefined semantics
    "[{{ missing }}] [{% for x in missing %}{{ x }}{% endfor %}] {{ missing | length }} {{ missing | default('dflt') }} {{ missing is defined }}",
    "{{ missing.attr }}",
    "{{ missing['k'] }}",
    "{{ missing + 1 }}",
    "{{ missing() }}",
    "{{ missing | trim }}|{{ missing ~ 'x' }}|{{ missing | string }}|{{ missing | list }}",
    "{{ missing < 1 }}",
    "{{ missing | tojson }}",
    # ---- for loops
    "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
    "{% for x in l %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a','b') }};{% endfor %}",
    "{% for x in [] %}no{% else %}empty{% endfor %} {% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}",
    "{% for x in l if x > 1 %}{{ x }}{{ loop.index }}{{ loop.length }},{% endfor %}",
    "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %} {% for c in 'héy' %}[{{ c }}]{% endfor %} {% for k in d %}{{ k }}{% endfor %}",
    "{% for u in users %}{% for t in u.tags %}{{ loop.index }}{{ t }}{% endfor %}{{ loop.index }};{% endfor %}",
    "{% set x = 1 %}{% for i in range(2) %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}",
    "{% for i in range(3) %}{% if i == 1 %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}",
    "{% for x in l %}{{ loop.changed(x > 1) }}{% endfor %}",
    "{% for a, b in [(1, 2, 3)] %}{% endfor %}",
    "{% for x in none %}{% endfor %}",
    "{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }}",
    "{{ range(100001) | length }}",
    # ---- set, namespace, blocks
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = 1, 2 %}{{ t }}",
    "{% set ns = namespace(a=1, b='x') %}{% for i in l %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns.b }} {{ ns.missing is defined }} {{ ns['a'] }}",
    "{% set ns = namespace() %}{% set ns.items = [1] %}{{ ns.items }}",
    "{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}] {% set y | upper %}up{% endset %}{{ y }}",
    "{% set s = 5 %}{% set s.attr = 1 %}",
    "{% filter upper %}hello {{ 'world' }}{% endfilter %}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]",
    "{% generation %}gen {{ 1 }}{% endgeneration %}",
    # ---- macros and call blocks
    "{% macro m(a, b='B', c=none) %}[{{ a }}|{{ b }}|{{ c }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(1, c=3) }}{{ m(a='k') }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m() }}|{{ m(1, 2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, z=2) }}",
    "{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
    "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inside {{ 1 }}{% endcall %}",
    "{% macro list(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) list([1, 2]) %}<{{ x }}>{% endcall %}",
    "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n }}*{{ fact(n - 1) }}{% endif %}{% endmacro %}{{ fact(5) }}",
    "{% set g = 'global' %}{% macro m() %}{{ g }}{% endmacro %}{% set g = 'changed' %}{{ m() }}",
    "{% macro m(a, b=a ~ '!') %}{{ b }}{% endmacro %}{{ m('x') }} {{ m | string | length > 0 }}",
    # ---- tests
    "{{ 1 is odd }} {{ 2 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 1 is number }} {{ 1.0 is float }} {{ true is integer }} {{ 1 is integer }} {{ true is boolean }}",
    "{{ 'a' is string }} {{ d is mapping }} {{ l is iterable }} {{ l is sequence }} {{ d is sequence }} {{ 1 is iterable }} {{ none is none }} {{ range is callable }} {{ missing is iterable }}",
    "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'aB' is lower }} {{ 2 is in [1, 2] }} {{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 1 is lt 2 }} {{ 3 is ge 3 }} {{ 'x' is ne 'y' }}",
    "{{ true is true }} {{ false is false }} {{ 0 is false }} {{ 1 is true }} {{ none is sameas none }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ l is not string }}",
    "{{ x is nosuchtest }}",
    "{% if x is nosuchtest %}yes{% else %}no{% endif %}",
    # ---- filters
    "{{ d | tojson }} {{ [1.0, 2.5e-7, 1e100, 'é\"\\n\\t\\u0001', none, true] | tojson }} {{ 'ü' | tojson(ensure_ascii=true) }}",
    "{{ users | tojson(indent=2) }}",
    "{{ d | tojson(sort_keys=true) }} {{ d | tojson(separators=(',', ':')) }} {{ {} | tojson(indent=4) }} {{ [] | tojson(indent=4) }} {{ users[0] | tojson(indent='\t') }}",
    "{{ {1: 'a', 2.5: 'b', true: 'c', none: 'd'} | tojson }}",
    "{{ s | length }} {{ u | length }} {{ l | count }} {{ d | length }} {{ s | upper }} {{ s | lower }} {{ 'hello wORLD-foo(bar)' | title }} {{ 'hELLO world' | capitalize }} {{ u | upper }}",
    "[{{ '  x \\n\\t' | trim }}] [{{ 'xxhixx' | trim('x') }}] [{{ '\\u3000\\u00a0full\\u2003' | trim }}] [{{ 5 | trim }}]",
    "{{ missing | default('a') }} {{ '' | default('b') }} {{ '' | default('b', true) }} {{ 0 | d('c', boolean=true) }} {{ none | default('e') }}",
    "{{ l | join(', ') }} {{ users | join('|', attribute='name') }} {{ 'abc' | join('-') }} {{ [1, none, 'x'] | join }}",
    "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | replace('', '-') }}",
    "{{ d | items | list }} {{ l | first }} {{ l | last }} {{ [] | first }} {{ 'xyz' | last }} {{ l | reverse | list }} {{ 'abc' | reverse }} {{ l | list }} {{ 'ab' | list }}",
    "{{ users | map(attribute='name') | list }} {{ l | map('string') | list }} {{ users | map(attribute='zz', default='?') | list }} {{ ['a', 'B'] | map('upper') | join }}",
    "{{ l | select('odd') | list }} {{ l | reject('odd') | list }} {{ users | selectattr('age', 'gt', 26) | map(attribute='name') | list }} {{ users | rejectattr('tags') | map(attribute='name') | list }} {{ [0, 1, '', 'a'] | select | list }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | selectattr('role', 'equalto', 'nobody') | list }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | length }}",
    "{% if messages | selectattr('role', 'equalto', 'nobody') %}generator is truthy{% endif %}",
    "{{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'c'] | sort(case_sensitive=true) }} {{ l | sort(reverse=true) }} {{ users | sort(attribute='age') | map(attribute='name') | join(',') }} {{ users | sort(attribute='name') | map(attribute='name') | join(',') }}",
    "{{ d | dictsort }} {{ d | dictsort(by='value', reverse=true) }} {{ ['a', 'A', 'b', 'a'] | unique | list }} {{ ['a', 'A'] | unique(case_sensitive=true) | list }}",
    "{{ l | sum }} {{ users | sum(attribute='age') }} {{ [0.5, 1] | sum(start=1) }} {{ l | min }} {{ l | max }} {{ ['B', 'a'] | min }} {{ users | max(attribute='age') }} {{ [] | max }}",
    "{{ '42' | int }} {{ ' 42 ' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ 3.9 | int }} {{ '0x1A' | int(0, 16) }} {{ '1_000' | int }} {{ '3.5' | float }} {{ 'x' | float }} {{ 2 | float }}",
    "{{ -3 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }} {{ 7 | round }}",
    "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}",
    "[{{ 'ab' | center(7) }}] [{{ 'abc' | center(6) }}] {{ 'one two, three!' | wordcount }} {{ 'x' | string }} {{ 1 | string }}",
    "{{ '<b>' | e }} {{ '<b>' | escape }} {{ '<b>' | safe }} {{ ('<b>' | safe) | e }}",
    "{{ l | batch(2) | list }} {{ [1,2,3] | batch(2, 'x') | list }} {{ [1,2,3,4,5] | slice(2) | list }}",
    "{{ users[0] | attr('name') }} {{ '%s-%d' | format('a', 3) }} {{ '%s and %s' % ('x', 'y') }}",
    "{{ x | nosuchfilter }}",
    "{{ 5 | length }}",
    "{{ none | join }}",
    "{{ 'a' + 1 }}",
    "{{ 1 / 0 }}",
    "{{ {} | items | list }} {{ missing | items | list }}",
    "{{ 1 | items | list }}",
    # ---- str methods
    "{{ s.upper() }} {{ s.lower() }} {{ s.startswith('He') }} {{ s.endswith('ld') }} {{ s.startswith(('x', 'H')) }} {{ s.split() }} {{ s.split('o') }} {{ 'a,b,,c'.split(',', 1) }} {{ '  a  b  '.split() }} {{ '  a  b c '.split(none, 1) }} {{ '  a  b c '.rsplit(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }}",
    "[{{ '\\n\\nx\\n'.strip('\\n') }}] [{{ 'xxhixx'.lstrip('x') }}] [{{ 'xxhixx'.rstrip('x') }}] [{{ '  y  '.strip() }}] [{{ 'abcba'.strip('ab') }}]",
    "{{ s.find('o') }} {{ s.rfind('o') }} {{ u.find('你') }} {{ s.count('l') }} {{ s.replace('l', 'L', 2) }} {{ '-'.join(['a', 'b']) }} {{ s.title() }} {{ \"they're bill's\".title() }} {{ s.capitalize() }} {{ s.swapcase() }}",
    "{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'ab'.center(6, '*') }} {{ '42'.zfill(5) }} {{ 'abc'.partition('b') }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'pre_x'.removeprefix('pre_') }}",
    "{{ s.index('zz') }}",
    "{{ ''.split('') }}",
    "{{ ', '.join([1, 2]) }}",
    # ---- sandbox
    "{{ l.append(4) }}",
    "{{ d.update({'x': 1}) }}",
    "[{{ l.append }}] {{ l.append is defined }} {{ l.count(1) }} {{ l.index(2) }}",
    "{{ d.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{% set x = l.pop() %}",
    # ---- errors and raise_exception
    "{{ raise_exception('custom failure') }}",
    "{% if true %}{{ raise_exception('in branch') }}{% endif %}",
    "{% if false %}{{ raise_exception('never') }}{% endif %}ok",
    "{% for %}",
    "{% endfor %}",
    "{% if true %}unclosed",
    "{{ 'unterminated }}",
    "{{ 1 + }}",
    "{% break %}",
    "{% include 'x.html' %}",
    "{% if false %}{% include 'x.html' %}{% endif %}fine",
    "{% block body %}block content {{ 1 }}{% endblock %}",
    "{{ strftime_now('%Y') | length }}",
    "{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ namespace(x=1).x }}",
    "{{ [1, 2][0:1:0] }}",
    "{{ {[1]: 2} }}",
    "{{ x }} {{ y }}",
    "{% set x = 1 %}{% for i in l %}{% set x = x + i %}{% endfor %}{{ x }}",
    "{{ messages[-1]['content'] + '!' }} {% for m in messages %}{{ m.role | upper }}:{{ m['content'] | trim }};{% endfor %}",
]

# give every snippet the shared context
SNIPPETS = [(s, CTX) if isinstance(s, str) else s for s in SNIPPETS]


def _whitespace_cases(count=300, seed=7):
    """Random mixes of text, newlines, indentation and tags with every
    whitespace-control marker, balanced so they parse."""
    import random
    rng = random.Random(seed)
    ws = ["", " ", "  ", "\t", "\n", "\n  ", "  \n", "\n\n", " \n \n ", "\r\n", "\u3000"]
    text = ["a", "b c", "x\n", "\ny"]
    marks = ["", "-", "+"]
    out = []
    for _ in range(count):
        parts, depth = [], 0
        for _ in range(rng.randint(2, 10)):
            k = rng.random()
            left, right = rng.choice(marks), rng.choice(marks).replace("+", "" if rng.random() < 0.5 else "+")
            if k < 0.25:
                parts.append(rng.choice(text))
            elif k < 0.45:
                parts.append(rng.choice(ws))
            elif k < 0.6:
                parts.append("{{%s 'v' %s}}" % (left.replace("+", ""), right.replace("+", "")))
            elif k < 0.7:
                parts.append("{#%s c %s#}" % (left, right))
            elif k < 0.85:
                parts.append("{%%%s if true %s%%}" % (left, right))
                depth += 1
            elif depth:
                parts.append("{%%%s endif %s%%}" % (left, right))
                depth -= 1
            else:
                parts.append("{%%%s set q = 1 %s%%}" % (left, right))
            if rng.random() < 0.5:
                parts.append(rng.choice(ws))
        parts.extend("{% endif %}" for _ in range(depth))
        if rng.random() < 0.2:
            parts.insert(rng.randint(0, len(parts)), "{%- raw %} {{ r }} {% endraw -%}")
        out.append("".join(parts))
    return out


SNIPPETS += [(s, {}) for s in _whitespace_cases()]
