"""The subset of Go's text/template that docker's ``--format`` uses.

Supported: ``{{.Field.Sub}}``, ``{{.}}``, ``{{$}}``, variables (``{{$v := ...}}``,
``{{range $k, $v := .Map}}``), ``if``/``else``/``else if``/``range``/``with``/
``end``, pipes (``{{.Names | upper}}``), parenthesised pipelines, string/number/
bool literals, comments, the trim markers ``{{-`` and ``-}}``, Go's builtins
(``and or not len index eq ne lt le gt ge print printf println slice``) and
docker's functions (``json join split title lower upper pad truncate``), and the
``table`` directive (see formatting.py).

Values print as Go's ``%v`` does: lists ``[a b]``, maps ``map[k:v]`` with sorted
keys, floats as Go formats float64, nil as ``<nil>``, a missing map key as
``<no value>``.  Rows (ps, images...) are objects whose attributes (or
one-argument methods like ``.Label "x"``) are looked up like struct fields.
"""

from __future__ import annotations

from pybox.cli.pybox.units import go_float
from pybox.errors import TemplateError
from pybox.formats import fastjson

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: A lexed token or a parsed operand: ``(kind, value)``, ``("pipe", Pipe)``,
    #: ``("chain", operand, ".Field.Path")``.
    Token = tuple[Any, ...]


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


# -- lexing ---------------------------------------------------------------------
def _split_actions(text: str) -> list[tuple[str, str]]:
    """-> [("text", str) | ("action", str)], trim markers applied."""
    out = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            out.append(("text", text[pos:]))
            break
        literal = text[pos:start]
        inner_start = start + 2
        if text.startswith("- ", inner_start) or text[inner_start:inner_start + 2] == "-\t" \
                or text[inner_start:inner_start + 2] == "-\n":
            literal = literal.rstrip(" \t\r\n")
            inner_start += 1
        end = _find_close(text, inner_start)
        if end < 0:
            raise TemplateError("unclosed action")
        inner = text[inner_start:end]
        pos = end + 2
        if inner.endswith(" -") or inner.endswith("\t-") or inner.endswith("\n-"):
            inner = inner[:-1]
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
        out.append(("text", literal))
        out.append(("action", inner.strip()))
    return [t for t in out if not (t[0] == "text" and t[1] == "")]


def _find_close(text: str, pos: int) -> int:
    quote = None
    i = pos
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"`'":
            quote = c
        elif text.startswith("}}", i):
            return i
        i += 1
    return -1


def _tokens(action: str) -> list[Token]:
    """Tokens of one action: strings, numbers, fields, variables, idents,
    ``(``, ``)``, ``|``, ``:=``, ``=``, ``,``."""
    toks: list[Token] = []
    i, n = 0, len(action)
    while i < n:
        c = action[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()|,":
            toks.append(("punct", c))
            i += 1
        elif action.startswith(":=", i):
            toks.append(("punct", ":="))
            i += 2
        elif c == "=":
            toks.append(("punct", "="))
            i += 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < n and action[j] != '"':
                if action[j] == "\\" and j + 1 < n:
                    buf.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\",
                                "r": "\r"}.get(action[j + 1], "\\" + action[j + 1]))
                    j += 2
                    continue
                buf.append(action[j])
                j += 1
            if j >= n:
                raise TemplateError("unterminated quoted string")
            toks.append(("string", "".join(buf)))
            i = j + 1
        elif c == "`":
            j = action.find("`", i + 1)
            if j < 0:
                raise TemplateError("unterminated raw quoted string")
            toks.append(("string", action[i + 1:j]))
            i = j + 1
        elif c == "'":
            j = action.find("'", i + 1)
            toks.append(("number", ord(action[i + 1:j][0]) if j > i + 1 else 0))
            i = j + 1
        else:
            j = i
            while j < n and action[j] not in " \t\r\n()|,=\"`" and not action.startswith(":=", j):
                j += 1
            word = action[i:j]
            i = j
            if word.startswith(".") or word.startswith("$"):
                toks.append(("path", word))
            elif word in ("true", "false"):
                toks.append(("bool", word == "true"))
            elif word == "nil":
                toks.append(("nil", None))
            elif word[:1].isdigit() or (word[:1] in "+-" and word[1:2].isdigit()):
                try:
                    toks.append(("number", int(word, 0)))
                except ValueError:
                    try:
                        toks.append(("number", float(word)))
                    except ValueError:
                        raise TemplateError(f"bad number syntax: {word!r}") from None
            else:
                toks.append(("ident", word))
    return toks


# -- parsing --------------------------------------------------------------------
class Node:
    pass


class Text(Node):
    def __init__(self, text: str) -> None:
        self.text = text


class Action(Node):
    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe


class If(Node):
    def __init__(self, kind: str, pipe: Pipe) -> None:
        self.kind = kind          # "if", "with", "range"
        self.pipe = pipe
        self.body: list[Node] = []
        self.else_body: list[Node] = []


class Pipe:
    def __init__(self, decl: list[str], cmds: list[list[Token]], assign: bool = False) -> None:
        self.decl = decl          # variable names declared ($k, $v)
        self.cmds = cmds          # [[operand, ...], ...]
        self.assign = assign


def _parse_pipe(toks: list[Token], pos: int, end_punct: str | None = None) -> tuple[Pipe, int]:
    decl = []
    # variable declaration: $x := ... or $k, $v := ...
    k = pos
    names = []
    while k < len(toks) and toks[k][0] == "path" and toks[k][1].startswith("$") \
            and "." not in toks[k][1][1:]:
        names.append(toks[k][1])
        if k + 1 < len(toks) and toks[k + 1] == ("punct", ","):
            k += 2
            continue
        k += 1
        break
    assign = False
    if names and k < len(toks) and toks[k][0] == "punct" and toks[k][1] in (":=", "="):
        decl = names
        assign = toks[k][1] == "="
        pos = k + 1
    cmds: list[list[Token]] = []
    cmd: list[Token] = []
    while pos < len(toks):
        tok = toks[pos]
        if tok == ("punct", ")"):
            if end_punct == ")":
                break
            raise TemplateError("unexpected right paren")
        if tok == ("punct", "|"):
            if not cmd:
                raise TemplateError("missing command before '|'")
            cmds.append(cmd)
            cmd = []
            pos += 1
            continue
        if tok == ("punct", "("):
            sub, pos = _parse_pipe(toks, pos + 1, ")")
            if pos >= len(toks) or toks[pos] != ("punct", ")"):
                raise TemplateError("unclosed left paren")
            pos += 1
            operand: Token = ("pipe", sub)
            # a field chain may follow the parenthesis: (index .A 0).Name
            if pos < len(toks) and toks[pos][0] == "path" and toks[pos][1].startswith("."):
                operand = ("chain", operand, toks[pos][1])
                pos += 1
            cmd.append(operand)
            continue
        cmd.append(tok)
        pos += 1
    if cmd:
        cmds.append(cmd)
    if not cmds and not decl:
        raise TemplateError("missing value for command")
    return Pipe(decl, cmds, assign), pos


def parse(text: str) -> list[Node]:
    root: list[Node] = []
    stack: list[tuple[If | None, list[Node]]] = [(None, root)]
    for kind, value in _split_actions(text):
        body = stack[-1][1]
        if kind == "text":
            body.append(Text(value))
            continue
        if value.startswith("/*"):
            continue
        toks = _tokens(value)
        if not toks:
            raise TemplateError("missing value for command")
        head = toks[0]
        if head == ("ident", "end"):
            if len(stack) == 1:
                raise TemplateError("unexpected {{end}}")
            stack.pop()     # an 'else if' chain lives in one frame: one {{end}}
            continue
        if head == ("ident", "else"):
            node = stack[-1][0]
            if node is None:
                raise TemplateError("unexpected {{else}}")
            stack.pop()
            if len(toks) > 1 and toks[1] in (("ident", "if"), ("ident", "with")):
                pipe, _ = _parse_pipe(toks, 2)
                inner = If(toks[1][1], pipe)
                node.else_body.append(inner)
                stack.append((inner, inner.body))
            else:
                stack.append((node, node.else_body))
            continue
        if head in (("ident", "if"), ("ident", "range"), ("ident", "with")):
            pipe, _ = _parse_pipe(toks, 1)
            node = If(head[1], pipe)
            body.append(node)
            stack.append((node, node.body))
            continue
        if head in (("ident", "define"), ("ident", "template"), ("ident", "block")):
            raise TemplateError(f"{{{{{head[1]}}}}} is not supported")
        pipe, pos = _parse_pipe(toks, 0)
        if pos != len(toks):
            raise TemplateError("unexpected tokens after the pipeline")
        body.append(Action(pipe))
    if len(stack) != 1:
        raise TemplateError("unexpected EOF")
    return root


# -- evaluation -----------------------------------------------------------------
def go_str(value: Any) -> str:
    """Go's %v."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(value[k])}"
                                 for k in sorted(value, key=str)) + "]"
    to_text = getattr(value, "__str__", None)
    return to_text() if to_text else repr(value)


def truth(value: Any) -> bool:
    if value is None or value is MISSING or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    return True


def _field(value: Any, name: str) -> Any:
    if value is None or value is MISSING:
        raise TemplateError(f"nil pointer evaluating interface {{}}.{name}")
    if isinstance(value, dict):
        if name not in value:
            # docker's templates run with missingkey=error on decoded JSON
            raise TemplateError(f'executing "" at <.{name}>: map has no entry for key '
                                f'"{name}"')
        return value[name]
    getter = getattr(type(value), "field", None)
    if getter is not None:
        return getter(value, name)
    if hasattr(value, name) and not name.startswith("_"):
        return getattr(value, name)
    raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")


def _json(value: Any) -> str:
    """docker's ``json``: compact, no HTML escaping; objects with sorted keys,
    because docker runs the template on the decoded JSON (Go maps marshal
    sorted), as ``docker inspect -f '{{json .State}}'`` shows."""
    if hasattr(value, "to_json"):
        value = value.to_json()
    if value is MISSING:
        value = None
    return fastjson.dumps(_sorted(value))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, (list, tuple, str)):
            try:
                value = value[int(key)]
            except (IndexError, ValueError):
                raise TemplateError(f"error calling index: index out of range: {key}") \
                    from None
        elif value is None or value is MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type "
                                f"{type(value).__name__}")
    return value


def _printf(fmt: str, *args: Any) -> str:
    out = []
    i = 0
    argi = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "+-# 0123456789.":
            j += 1
        if j >= len(fmt):
            out.append(fmt[i:])
            break
        verb = fmt[j]
        spec = fmt[i + 1:j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        if verb in "vs":
            out.append(("%" + spec + "s") % go_str(arg))
        elif verb == "q":
            out.append(go_quote(go_str(arg)))
        elif verb in "dxXo":
            try:
                out.append(("%" + spec + verb) % int(arg))
            except (TypeError, ValueError):
                out.append(f"%!{verb}({go_str(arg)})")
        elif verb in "feEgG":
            try:
                out.append(("%" + spec + verb) % float(arg))
            except (TypeError, ValueError):
                out.append(f"%!{verb}({go_str(arg)})")
        elif verb == "t":
            out.append(go_str(bool(arg)))
        else:
            out.append(go_str(arg))
    return "".join(out)


def go_quote(text: str) -> str:
    """strconv.Quote: double quotes, Go escapes for control characters."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif code < 0x20 or code == 0x7f:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code > 0x7f:
            out.append(f"\\u{code:04x}" if code <= 0xffff else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _compare(op: str) -> Callable[..., bool]:
    def fn(a: Any, *rest: Any) -> bool:
        if op == "eq":
            if not rest:
                raise TemplateError("error calling eq: missing argument for comparison")
            return any(_norm(a) == _norm(b) for b in rest)
        b = rest[0]
        a, b = _norm(a), _norm(b)
        try:
            return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        except TypeError:
            raise TemplateError(f"error calling {op}: incompatible types for comparison") \
                from None
    return fn


def _norm(v: Any) -> Any:
    return None if v is MISSING else v


def _pad(s: Any, left: Any, right: Any) -> str:
    return " " * int(left) + go_str(s) + " " * int(right)


def _truncate(s: Any, n: Any) -> str:
    s = go_str(s)
    return s[:int(n)] if len(s) > int(n) else s


def _title(s: Any) -> str:
    s = go_str(s)
    return s[:1].upper() + s[1:] if s else s


def _slice(value: Any, *idx: Any) -> Any:
    if not idx:
        return value
    if len(idx) == 1:
        return value[int(idx[0]):]
    return value[int(idx[0]):int(idx[1])]


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "title": _title,
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "pad": _pad,
    "truncate": _truncate,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": _printf,
    "len": lambda v: len(v) if v not in (None, MISSING) else 0,
    "index": _index,
    "slice": _slice,
    "not": lambda v: not truth(v),
    "eq": _compare("eq"), "ne": _compare("ne"), "lt": _compare("lt"),
    "le": _compare("le"), "gt": _compare("gt"), "ge": _compare("ge"),
    "html": lambda s: go_str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
    "urlquery": lambda s: go_str(s),
}


class Template:
    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes = parse(text)

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, [{"$": data}], out)
        return "".join(out)

    def _run(self, nodes: list[Node], dot: Any, scopes: list[dict[str, Any]],
             out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self._pipe(node.pipe, dot, scopes)
                if not node.pipe.decl:
                    out.append(go_str(value))
            elif isinstance(node, If):
                self._control(node, dot, scopes, out)

    def _control(self, node: If, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        if node.kind == "range":
            pipe = Pipe([], node.pipe.cmds)
            value = self._pipe(pipe, dot, scopes)
            items = []
            if isinstance(value, dict):
                items = [(k, value[k]) for k in sorted(value, key=str)]
            elif isinstance(value, (list, tuple)):
                items = list(enumerate(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                items = [(i, i) for i in range(value)]
            elif value not in (None, MISSING):
                raise TemplateError(f"range can't iterate over {go_str(value)}")
            if not items:
                self._run(node.else_body, dot, scopes, out)
                return
            for key, item in items:
                scope = {}
                if len(node.pipe.decl) == 1:
                    scope[node.pipe.decl[0]] = item
                elif len(node.pipe.decl) == 2:
                    scope[node.pipe.decl[0]] = key
                    scope[node.pipe.decl[1]] = item
                self._run(node.body, item, scopes + [scope], out)
            return
        value = self._pipe(Pipe([], node.pipe.cmds), dot, scopes)
        scope = {}
        if node.pipe.decl:
            scope[node.pipe.decl[0]] = value
        if truth(value):
            self._run(node.body, value if node.kind == "with" else dot, scopes + [scope], out)
        else:
            self._run(node.else_body, dot, scopes + [scope], out)

    def _pipe(self, pipe: Pipe, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        value = MISSING
        first = True
        for cmd in pipe.cmds:
            value = self._command(cmd, dot, scopes, None if first else value, not first)
            first = False
        if pipe.decl:
            if pipe.assign:
                for scope in reversed(scopes):
                    if pipe.decl[0] in scope:
                        scope[pipe.decl[0]] = value
                        break
            else:
                scopes[-1][pipe.decl[0]] = value
        return value

    def _command(self, cmd: list[Token], dot: Any, scopes: list[dict[str, Any]], piped: Any,
                 has_piped: bool) -> Any:
        head = cmd[0]
        if head[0] == "ident":
            name = head[1]
            fn = FUNCS.get(name)
            if name == "and" or name == "or":
                args = [self._operand(op, dot, scopes) for op in cmd[1:]]
                if has_piped:
                    args.append(piped)
                result = args[0] if args else None
                for a in args:
                    result = a
                    if (name == "and") != truth(a):
                        break
                return result
            if fn is None:
                raise TemplateError(f'function "{name}" not defined')
            args = [self._operand(op, dot, scopes) for op in cmd[1:]]
            if has_piped:
                args.append(piped)
            try:
                return fn(*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, AttributeError) as err:
                raise TemplateError(f"error calling {name}: {err}") from None
        if len(cmd) > 1 or has_piped:
            # a method call: .Label "key"
            target = self._operand(head, dot, scopes, call=True)
            if callable(target):
                args = [self._operand(op, dot, scopes) for op in cmd[1:]]
                if has_piped:
                    args.append(piped)
                return target(*args)
            raise TemplateError(f"can't give argument to non-function {head[1]}")
        return self._operand(head, dot, scopes)

    def _operand(self, op: Token, dot: Any, scopes: list[dict[str, Any]],
                 call: bool = False) -> Any:
        kind = op[0]
        if kind in ("string", "number", "bool"):
            return op[1]
        if kind == "nil":
            return None
        if kind == "pipe":
            return self._pipe(op[1], dot, scopes)
        if kind == "chain":
            base = self._operand(op[1], dot, scopes)
            return self._walk(base, op[2][1:].split("."), call)
        if kind == "path":
            path = op[1]
            if path == ".":
                return dot
            if path.startswith("$"):
                var, _, rest = path.partition(".")
                for scope in reversed(scopes):
                    if var in scope:
                        base = scope[var]
                        break
                else:
                    raise TemplateError(f'undefined variable "{var}"')
                return self._walk(base, rest.split(".") if rest else [], call)
            return self._walk(dot, path[1:].split("."), call)
        if kind == "ident":
            fn = FUNCS.get(op[1])
            if fn is None:
                raise TemplateError(f'function "{op[1]}" not defined')
            return fn()
        raise TemplateError(f"unexpected {op[1]!r}")

    def _walk(self, value: Any, names: list[str], call: bool = False) -> Any:
        for i, name in enumerate(names):
            if not name:
                continue
            value = _field(value, name)
            if callable(value) and not (call and i == len(names) - 1):
                value = value()
        return value


def render(text: str, data: Any) -> str:
    return Template(text).execute(data)
