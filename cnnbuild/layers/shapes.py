"""Shape rules: small pure functions, the arithmetic the seeds teach.

Every rule returns the output size and the text of the rule with its numbers, so the
report can show the arithmetic (`(32 − 5 + 2·0)/1 + 1 = 28`). Nothing here imports
TensorFlow or Keras.
"""
from __future__ import annotations

import math
from fractions import Fraction


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Size a dilated kernel covers: D·(F − 1) + 1.

    >>> [effective_kernel(3, d) for d in (1, 2, 4)]
    [3, 5, 9]
    """
    return dilation * (kernel - 1) + 1


def window_output(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1) -> tuple[Fraction, str]:
    """(N − F + 2P)/S + 1, exactly, with the text of the rule. `pad_total` is both sides
    together (2P when symmetric). The result may be fractional: the caller decides.

    >>> window_output(32, 5, 1, 0)[1]
    '(32 − 5 + 2·0)/1 + 1 = 28'
    >>> [str(window_output(7, 3, s, 0)[0]) for s in (1, 2, 3)]
    ['5', '3', '7/3']
    >>> window_output(7, 3, 3, 0)[1]
    '(7 − 3 + 2·0)/3 + 1 = 2.33'
    """
    f = effective_kernel(kernel, dilation)
    value = Fraction(size - f + pad_total, stride) + 1
    pad_text = f"2·{pad_total // 2}" if pad_total % 2 == 0 else f"{pad_total}"
    f_text = f"{f}" if dilation == 1 else f"{f}"
    shown = f"{value.numerator}" if value.denominator == 1 else f"{float(value):.2f}"
    if value.denominator != 1 and float(shown).is_integer():   # '1.00' would hide the fraction (huge strides)
        shown = f"{value.numerator // value.denominator} + {value % 1}"
    return value, f"({size} − {f_text} + {pad_text})/{stride} + 1 = {shown}"


def same_output(size: int, stride: int) -> int:
    """Keras's 'same' padding: ceil(N/S), whatever the kernel.

    >>> same_output(7, 2), same_output(224, 2), same_output(5, 1)
    (4, 112, 5)
    """
    return -(-size // stride)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """The (before, after) padding that 'same' implies, as TensorFlow places it (the extra
    one goes after).

    >>> same_padding(224, 3, 2), same_padding(5, 3, 1), same_padding(7, 5, 1)
    ((0, 1), (1, 1), (2, 2))
    """
    out = same_output(size, stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def transpose_output(size: int, kernel: int, stride: int, padding: str, dilation: int = 1,
                     output_padding: int | None = None) -> int:
    """Transposed convolution, as Keras computes it (keras/src/backend/common/backend_utils.py,
    `_get_output_shape_given_tf_padding`): unset output_padding, 'valid' → N·S + max(F − S, 0),
    'same' → N·S; with output_padding p, 'valid' → (N − 1)·S + F + p, 'same' → (N − 1)·S + F mod 2 + p
    (F dilated).

    >>> transpose_output(7, 3, 2, 'valid'), transpose_output(7, 3, 2, 'same')
    (15, 14)
    >>> transpose_output(8, 2, 3, 'same', output_padding=2)    # Keras's conv_transpose_test: 8 → 23
    23
    """
    f = effective_kernel(kernel, dilation)
    if output_padding is not None:
        return (size - 1) * stride + (f if padding == "valid" else f % 2) + output_padding
    if padding == "same":
        return size * stride
    return size * stride + max(f - stride, 0)


def floor_drop(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1) -> int:
    """Rows (or columns) a floor rounding leaves unread at the far edge.

    >>> floor_drop(7, 3, 3, 0)
    1
    """
    f = effective_kernel(kernel, dilation)
    return (size + pad_total - f) % stride


SEARCH = 10_000   # candidate paddings and strides tried for a hint


def whole_paddings(size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int = 1) -> list[tuple[int, int]]:
    """Paddings (before, after) that make (N − F + P)/S + 1 a whole number, fewest added
    first: the nearest symmetric one and, when the rows missing are odd in number so that no
    symmetric padding adds them, the current padding with them added after (where
    TensorFlow's 'same' puts its odd one).

    >>> whole_paddings(7, 3, 3, (0, 0))      # (7 − 3 + 2·1)/3 + 1 = 3
    [(1, 1)]
    >>> whole_paddings(32, 3, 2, (0, 0))     # 29 is odd, 2P even: only (32 − 3 + 0 + 1)/2 + 1 = 16
    [(0, 1)]
    >>> whole_paddings(8, 3, 3, (0, 0))      # 5 + 1 = 6, or 5 + 2·2 = 9
    [(0, 1), (2, 2)]
    """
    f = effective_kernel(kernel, dilation)
    before, after = pads
    found = []
    base = (before + after) // 2
    # capped (SEARCH steps), so a spec with an 18-digit stride still checks instantly
    for p in range(base + 1, base + 1 + min(max(f, stride), SEARCH)):
        if (size - f + 2 * p) % stride == 0:
            found.append((p, p))
            break
    missing = -(size - f + before + after) % stride
    if (before + after + missing) % 2:
        found.append((before, after + missing))
    return sorted(found, key=sum)


def whole_strides(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1, most: int = 2) -> list[int]:
    """Smaller strides that make (N − F + P)/S + 1 a whole number, largest first.

    >>> whole_strides(7, 3, 3, 0), whole_strides(32, 3, 2, 0)
    ([2, 1], [1])
    """
    span = size - effective_kernel(kernel, dilation) + pad_total
    top = min(stride - 1, max(span, 1))   # a stride above the span cannot divide it
    found = []
    for s in range(top, max(top - SEARCH, 0), -1):
        if span % s == 0:
            found.append(s)
            if len(found) == most:
                break
    return found


def prod(values) -> int:
    return math.prod(int(v) for v in values)
