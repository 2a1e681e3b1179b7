"""GitHub Actions' expression language, evaluated as the runner does, for the CI-file tests.

Enough for workflow files: literals ('string' with '' for a quote, numbers, true,
false, null), context properties (``github.ref``, ``inputs.commit``,
``matrix.buildplat.os``, also ``a['b']``; a missing one is null, names ignore
case), ``!``, ``== != < <= > >=`` (strings compared ignoring case, other mixes of
types as numbers), ``&&`` and ``||`` (which return an operand, not a boolean),
parentheses, and the functions startsWith, endsWith, contains, format, and
success/always/failure/cancelled (as if every earlier step and job succeeded).
"""

from __future__ import annotations

import json
import re


class GitHubExpression:
    """One expression of GitHub's language, evaluated against a context by value()."""

    TOKEN = re.compile(
        r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)"
        r"|(?P<op>==|!=|<=|>=|&&|\|\||[<>!(),.\[\]])|(?P<name>[A-Za-z_][\w-]*))"
    )

    def __init__(self, text: str, context: dict):
        self.tokens: list[tuple[str, str]] = []
        pos, text = 0, text.strip()
        while pos < len(text):
            match = self.TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise ValueError(f"cannot read the expression at {text[pos:]!r}")
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos, self.context = 0, context

    def value(self):
        result = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos][1]!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos == len(self.tokens):
            raise ValueError("the expression ends too early")
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def _or(self):
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self):
        left = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            left = right if truthy(left) else left
        return left

    def _compare(self):
        left = self._unary()
        while self._peek() in ("==", "!=", "<", "<=", ">", ">="):
            op = self._take()[1]
            right = self._unary()
            if op in ("==", "!="):
                left = _github_equal(left, right) == (op == "==")
            else:
                a, b = _github_number(left), _github_number(right)
                left = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return left

    def _unary(self):
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self):
        kind, text = self._take()
        if text == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":
            return self._call(text)
        value = self.context.get(text)
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                key = str(self._or())
                self._take("]")
            value = _github_property(value, key)
        return value

    def _call(self, name: str):
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        low = [github_str(a).lower() for a in args]
        functions = {
            "startswith": lambda: low[0].startswith(low[1]),
            "endswith": lambda: low[0].endswith(low[1]),
            "contains": lambda: low[1] in low[0],
            "format": lambda: re.sub(
                r"\{(\d+)\}", lambda m: github_str(args[1 + int(m.group(1))]), str(args[0])
            ),
            "success": lambda: True,
            "always": lambda: True,
            "failure": lambda: False,
            "cancelled": lambda: False,
        }
        if name.lower() not in functions:
            raise ValueError(f"function {name} is not known here")
        return functions[name.lower()]()


def _github_property(value, key: str):
    if not isinstance(value, dict):
        return None
    for name, item in value.items():
        if name.lower() == key.lower():
            return item
    return None


def _github_number(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return float("nan")
    return float("nan")


def _github_equal(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if type(a) is type(b):
        return a == b
    return _github_number(a) == _github_number(b)


def truthy(value) -> bool:
    return value not in (None, False, "") and not (
        isinstance(value, float) and (value == 0 or value != value)
    )


def github_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def github_render(value, context: dict) -> str:
    """A workflow value with its ``${{ }}`` parts evaluated, as the runner sees it."""
    return EXPRESSION.sub(
        lambda m: github_str(GitHubExpression(m.group(1), context).value()), str(value)
    )


def github_if(condition, context: dict) -> bool:
    """An ``if:`` (with or without ``${{ }}``; absent: true)."""
    if condition is None or isinstance(condition, bool):
        return condition is not False
    text = str(condition).strip()
    whole = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    return truthy(GitHubExpression(whole.group(1) if whole else text, context).value())
