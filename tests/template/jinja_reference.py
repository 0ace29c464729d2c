"""Reference renderer: Python Jinja2 configured exactly as Hugging Face
transformers' chat-template code (_compile_jinja_template): an
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, the
loopcontrols extension, the AssistantTracker {% generation %} tag, and the
globals raise_exception / strftime_now plus the json.dumps-based tojson.

Run with Debian's /usr/bin/python3 (python3-jinja2). Imported by the test
scripts; never by cinfer itself.
"""
import json
from datetime import datetime

try:
    import jinja2
    import jinja2.ext
    from jinja2 import nodes
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    HAVE_JINJA2 = True
except ImportError:  # the caller reports a skip
    HAVE_JINJA2 = False


def make_env():
    class AssistantTracker(jinja2.ext.Extension):
        # transformers' {% generation %} tag: renders its body unchanged
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

        @jinja2.pass_eval_context
        def _generation_support(self, context, caller):
            return caller()

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def compile_template(env, source):
    """Returns (template, None) or (None, error text)."""
    try:
        return env.from_string(source), None
    except Exception as e:  # syntax errors, unknown filters, ...
        return None, f"{type(e).__name__}: {e}"


def render(template, context):
    """Returns (True, output bytes) or (False, error text)."""
    try:
        out = template.render(**context)
        return True, out.encode("utf-8", "surrogatepass")
    except Exception as e:  # anything Python raises counts as an error
        return False, f"{type(e).__name__}: {e}"
