"""How kinds word their arguments for the drawing (`Kind.label`, `Kind.details`)."""
from __future__ import annotations


def size_text(pair) -> str:
    """A kernel or window as the drawing writes it.

    >>> size_text((3, 3)), size_text((1, 7))
    ('3×3', '1×7')
    """
    return f"{pair[0]}×{pair[1]}"


def stride_text(stride) -> str:
    """A stride as the drawing appends it to the window.

    >>> stride_text((1, 1)), stride_text((2, 2)), stride_text((1, 2))
    ('', '/2', '/1×2')
    """
    if tuple(stride) == (1, 1):
        return ""
    return f"/{stride[0]}" if stride[0] == stride[1] else f"/{size_text(stride)}"


def applied(batchnorm, activation) -> list:
    """The steps after a convolution or dense layer, as the drawing names them.

    >>> applied(True, "relu"), applied(False, "linear"), applied(False, None)
    (['batchnorm', 'relu'], [], [])
    """
    return [step for step in ("batchnorm" if batchnorm else "", activation if activation != "linear" else "") if step]
