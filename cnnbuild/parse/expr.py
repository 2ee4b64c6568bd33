"""Block parameters: `$name` and `${filters * 4}`, substituted without Python's eval.

The grammar is numbers (integers and decimals), names, + − * / // % and parentheses, and
the named functions in FUNCTIONS (`make_divisible(v, 8)`, `round`, `min`, `max`, `floor`,
`ceil`). `/` of two integers must divide exactly; with a decimal on either side it divides
as a calculator does. A result that is a whole number is an integer (`${16 * 4.5}` is 72).
"""
from __future__ import annotations

import difflib
import math
import re

from ..errors import Invalid

# `**` is read as one token only to say it is not supported (rather than stumble on its second `*`)
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)|(\*\*|//|<=|>=|==|!=|[-+*/%(),<>]))")
# a name, or a dotted one (`in.channels`): whole words, so `channels` is never replaced inside `in.channels`
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_REFERENCE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
MAX_TEXT = 200
OPERATORS = "+ - * / // % and ( )"
# The incoming tensor's shape, read by a layer's own arguments (`filters: ${in.channels // 2}`):
# known only when the check (or the builder) reaches the layer, so every pass before keeps them.
SHAPE_NAMES = ("in.height", "in.width", "in.channels")
SHAPE = "in."
COMPARISONS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
               ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def make_divisible(value, divisor, min_value=None):
    """The nearest multiple of `divisor` to `value`, at least `min_value` (default `divisor`),
    and never more than 10 % below `value`: how MobileNet and EfficientNet round channel
    counts (keras.applications' `_make_divisible`, EfficientNet's `round_filters`).

    >>> make_divisible(32 * 0.75, 8), make_divisible(16 * 4.5, 8), make_divisible(3, 8), make_divisible(100, 8)
    (24, 72, 8, 104)
    """
    if divisor <= 0:
        raise Invalid(f"make_divisible's divisor must be positive, got {divisor}", "e.g. make_divisible(channels * 0.75, 8)")
    low = divisor if min_value is None else min_value
    rounded = max(low, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# name → (fewest arguments, most arguments, function); called only by these names, never eval'd
FUNCTIONS = {
    "make_divisible": (2, 3, make_divisible),
    "round": (1, 1, lambda v: int(math.floor(v + 0.5))),    # halves go up, as a person rounds (not Python's to-even)
    "floor": (1, 1, math.floor),
    "ceil": (1, 1, math.ceil),
    "min": (1, 16, min),
    "max": (1, 16, max),
}
GRAMMAR = f"use numbers, names, {OPERATORS}, the comparisons {' '.join(COMPARISONS)}, and the functions {', '.join(FUNCTIONS)}"
LIMIT = 10**12


def _number(value):
    """A result that is a whole number as an int (72.0 → 72), so it can be a filter count."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= LIMIT:
        return int(value)
    return value


def evaluate(text: str, values: dict):
    """Evaluate arithmetic over `values`.

    >>> evaluate("filters * 4", {"filters": 16})
    64
    >>> evaluate("(a + 1) // 2", {"a": 6})
    3
    >>> evaluate("make_divisible(c * 4.5, 8)", {"c": 16}), evaluate("0.2 * (i - 1) / 4", {"i": 3})
    (72, 0.1)
    >>> evaluate("max(1, round(r * 2.5))", {"r": 3})
    8
    >>> evaluate("depth > 1", {"depth": 2}), evaluate("in.channels // 2", {"in.channels": 64})
    (True, 32)
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
    result = parser.comparison()
    if parser.i != len(tokens):
        raise Invalid(f"unexpected '{tokens[parser.i]}' in '${{{text}}}'", GRAMMAR)
    if not abs(result) < 10**18:   # as source.py's MAX_INT_DIGITS for a number written out; also inf and nan
        raise Invalid(f"'${{{text}}}' is too large ({str(result)[:20]}…)", "no size or count in a network needs more than 18 digits")
    return _number(result)


class _Parser:
    def __init__(self, tokens, values, text):
        self.tokens, self.values, self.text, self.i = tokens, values, text, 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self):
        token = self.peek()
        self.i += 1
        return token

    def comparison(self):
        """A sum, or two sums compared (true or false: for `when:`)."""
        value = self.sum()
        if self.peek() in COMPARISONS:
            op = self.take()
            value = COMPARISONS[op](value, self.sum())
        return value

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
            elif op == "/" and isinstance(value, int) and isinstance(right, int):
                if value % right:
                    raise Invalid(f"'${{{self.text}}}': {value} / {right} is not a whole number",
                                  "use // to round down, or write a decimal (e.g. 4.0) for a fraction")
                value //= right
            elif op == "/":
                value /= right
            elif op == "//":
                value //= right
            else:
                value %= right
            if abs(value) > LIMIT:
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
            value = self.comparison()
            if self.take() != ")":
                raise Invalid(f"missing ')' in '${{{self.text}}}'", "close every '(' with ')'")
            return value
        if token[0].isdigit() or token[0] == ".":
            return int(token) if token.isdigit() else float(token)   # a decimal stays one: 88.0 / 24 divides
        if token in FUNCTIONS and self.peek() == "(":
            return self.call(token)
        if token in self.values:
            value = self.values[token]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Invalid(f"'{token}' is {value!r}, not a number, so it cannot be used in arithmetic", f"give '{token}' a number, or use it alone as ${token}")
            return value
        if not (token[0].isalpha() or token[0] == "_"):   # an operator where a number belongs
            raise Invalid(f"unexpected '{token}' in '${{{self.text}}}'", GRAMMAR)
        if token.startswith(SHAPE):
            raise Invalid(f"unknown shape name '{token}' in '${{{self.text}}}'",
                          f"the incoming tensor's shape is {', '.join(SHAPE_NAMES)}")
        raise Invalid(f"unknown parameter '{token}' in '${{{self.text}}}'", _known(self.values, token))

    def call(self, function):
        """`function(a, b, …)`: the arguments are sums; the name was looked up in FUNCTIONS."""
        self.take()   # "("
        arguments = [self.sum()]
        while self.peek() == ",":
            self.take()
            arguments.append(self.sum())
        if self.take() != ")":
            raise Invalid(f"missing ')' after the arguments of {function} in '${{{self.text}}}'", "close every '(' with ')'")
        low, high, apply = FUNCTIONS[function]
        if not low <= len(arguments) <= high:
            count = f"{low}" if low == high else f"{low} to {high}"
            raise Invalid(f"{function} takes {count} argument{'s' if high > 1 else ''}, got {len(arguments)} in '${{{self.text}}}'",
                          "e.g. make_divisible(channels * 0.75, 8), round(x), min(a, b)")
        return apply(*arguments)


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
    """Does `expr` name a parameter of a later pass (`index` inside a block's repeat, or the
    incoming tensor's shape, `in.channels`, known only when the layer is checked)?"""
    return any(word not in values and (word in keep or word.startswith(SHAPE)) for word in _WORD.findall(expr))


def _partial(expr, values):
    """`${index * filters}` with filters = 16 → `${index * 16}`: this pass's values written
    in, the rest left for the later pass.

    >>> _partial("index * filters + 1", {"filters": 16})
    '${index * 16 + 1}'
    >>> _partial("in.channels // ratio", {"ratio": 4, "channels": 8})
    '${in.channels // 4}'
    """
    def value(m):
        word = m.group(0)
        if word not in values:
            return word
        number = values[word]
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise Invalid(f"'{word}' is {number!r}, not a number, so it cannot be used in arithmetic",
                          f"give '{word}' a number, or use it alone as ${word}")
        return f"({number})" if number < 0 else str(number)
    return "${" + _WORD.sub(value, expr) + "}"
