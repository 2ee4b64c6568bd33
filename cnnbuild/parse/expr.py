"""Block parameters: `$name` and `${filters * 4}`, substituted without Python's eval.

The grammar is integers, names, + − * / // % and parentheses; `/` must divide exactly.
"""
from __future__ import annotations

import difflib
import re

from ..errors import Invalid

# `**` is read as one token only to say it is not supported (rather than stumble on its second `*`)
_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(\*\*|//|[-+*/%()]))")
_REFERENCE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
MAX_TEXT = 200
OPERATORS = "+ - * / // % and ( )"
GRAMMAR = f"use integers, names, {OPERATORS}"


def evaluate(text: str, values: dict) -> int:
    """Evaluate integer arithmetic over `values`.

    >>> evaluate("filters * 4", {"filters": 16})
    64
    >>> evaluate("(a + 1) // 2", {"a": 6})
    3
    """
    if len(text) > MAX_TEXT:
        raise Invalid(f"expression is longer than {MAX_TEXT} characters", "write the number itself, or a shorter expression")
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise Invalid(f"cannot read '${{{text}}}' at '{text[pos:].strip()}'", GRAMMAR)
        tokens.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()
    if "**" in tokens:
        raise Invalid(f"'**' (a power) is not supported in '${{{text}}}': the operators are {OPERATORS}",
                      "write a power as a product, e.g. ${c * c} for c ** 2")
    parser = _Parser(tokens, values, text)
    result = parser.sum()
    if parser.i != len(tokens):
        raise Invalid(f"unexpected '{tokens[parser.i]}' in '${{{text}}}'", GRAMMAR)
    return result


class _Parser:
    def __init__(self, tokens, values, text):
        self.tokens, self.values, self.text, self.i = tokens, values, text, 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self):
        token = self.peek()
        self.i += 1
        return token

    def sum(self):
        value = self.product()
        while self.peek() in ("+", "-"):
            op, right = self.take(), self.product()
            value = value + right if op == "+" else value - right
        return value

    def product(self):
        value = self.unary()
        while self.peek() in ("*", "/", "//", "%"):
            op, right = self.take(), self.unary()
            if op == "*":
                value *= right
            elif right == 0:
                raise Invalid(f"division by zero in '${{{self.text}}}'", "divide by a number other than 0")
            elif op == "/":
                if value % right:
                    raise Invalid(f"'${{{self.text}}}': {value} / {right} is not a whole number", "use // to round down")
                value //= right
            elif op == "//":
                value //= right
            else:
                value %= right
            if abs(value) > 10**12:
                raise Invalid(f"'${{{self.text}}}' is too large", "keep sizes and counts below 10^12")
        return value

    def unary(self):
        if self.peek() == "-":
            self.take()
            return -self.unary()
        return self.atom()

    def atom(self):
        token = self.take()
        if token is None:
            raise Invalid(f"'${{{self.text}}}' ends too early", "complete the expression, e.g. ${filters * 2}")
        if token == "(":
            value = self.sum()
            if self.take() != ")":
                raise Invalid(f"missing ')' in '${{{self.text}}}'", "close every '(' with ')'")
            return value
        if token.isdigit():
            return int(token)
        if token in self.values:
            value = self.values[token]
            if isinstance(value, bool) or not isinstance(value, int):
                raise Invalid(f"'{token}' is {value!r}, not a whole number, so it cannot be used in arithmetic", f"give '{token}' a whole number, or use it alone as ${token}")
            return value
        if not (token[0].isalpha() or token[0] == "_"):   # an operator where a number belongs
            raise Invalid(f"unexpected '{token}' in '${{{self.text}}}'", GRAMMAR)
        raise Invalid(f"unknown parameter '{token}' in '${{{self.text}}}'", _known(self.values, token))


def _known(values, word, sigil=""):
    """The hint for an unknown parameter: the nearest name, then the names there are."""
    names = "parameters here: " + ", ".join(sorted(values)) if values else "this block has no parameters"
    close = difflib.get_close_matches(word, list(values), n=1, cutoff=0.6)
    return f"did you mean '{sigil}{close[0]}'? ({names})" if close else names


def substitute(text: str, values: dict, keep=()):
    """Replace references in one scalar. A scalar that is exactly `$name` takes the value's
    type (an int stays an int); references inside longer text are written into the text.
    Names in `keep` are left for a later pass (`$index` inside a repeat)."""
    whole = _REFERENCE.fullmatch(text)
    if whole:
        expr, name = whole.groups()
        if name is not None:
            if name in values:
                return values[name]
            if name in keep:
                return text
            raise Invalid(f"unknown parameter '${name}'", _known(values, name, "$"))
        if _later(expr, values, keep):
            return _partial(expr, values)
        return evaluate(expr, values)

    def replace(m):
        expr, name = m.groups()
        if name is not None:
            if name in keep and name not in values:
                return m.group(0)
            if name not in values:
                raise Invalid(f"unknown parameter '${name}'", _known(values, name, "$"))
            return str(values[name])
        if _later(expr, values, keep):
            return _partial(expr, values)
        return str(evaluate(expr, values))
    return _REFERENCE.sub(replace, text)


def _later(expr, values, keep) -> bool:
    """Does `expr` name a parameter of a later pass (`index` inside a block's repeat)?"""
    return any(re.search(rf"\b{k}\b", expr) for k in keep if k not in values)


def _partial(expr, values):
    """`${index * filters}` with filters = 16 → `${index * 16}`: this pass's values written
    in, the rest left for the later pass.

    >>> _partial("index * filters + 1", {"filters": 16})
    '${index * 16 + 1}'
    """
    def value(m):
        word = m.group(0)
        if word not in values:
            return word
        number = values[word]
        if isinstance(number, bool) or not isinstance(number, int):
            raise Invalid(f"'{word}' is {number!r}, not a whole number, so it cannot be used in arithmetic",
                          f"give '{word}' a whole number, or use it alone as ${word}")
        return f"({number})" if number < 0 else str(number)
    return "${" + re.sub(r"[A-Za-z_][A-Za-z0-9_]*", value, expr) + "}"
