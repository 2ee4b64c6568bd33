"""Images as the sources read them: an image file's header (channels, without its pixels),
decoding files, the wording of a decode failure, resizing masks, encoding for a pack.
TensorFlow, numpy and PIL are imported inside the functions that need them, so the spec
parser, which reads the sources' rules, starts without them."""
from __future__ import annotations

import os
import re
import struct

from ..errors import first_line

IMAGE_KINDS = "png/jpg/bmp/gif"      # IMAGE_SUFFIXES as a user names them


def op_error_text(error) -> str:
    """A TensorFlow op error (or its message) as a user reads it: the first line, without
    the '{{function_node __wrapped__DecodeImage_device_/job:localhost/…}}' prefix and the
    ' [Op:DecodeImage] name:' suffix that eager TensorFlow adds.

    >>> op_error_text("{{function_node __wrapped__X}} Invalid PNG. [Op:DecodeImage] name: ")
    'Invalid PNG.'
    """
    text = first_line(getattr(error, "message", None) or str(error))
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", re.sub(r"^\{\{[^}]*\}\}\s*", "", text))
    return text or "unknown error"


def unreadable_image(error) -> str:
    """The one wording for an image file that cannot be decoded, said by training's data scan
    and by predict alike (each puts the file's name first): 'not a readable png/jpg/bmp/gif
    image: ' and TensorFlow's reason."""
    return f"not a readable {IMAGE_KINDS} image: {op_error_text(error)}"


# What PIL calls the formats TensorFlow's decode_image reads (MPO: a JPEG with extra frames)
DECODABLE_FORMATS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "BMP": "bmp", "DIB": "bmp", "GIF": "gif"}


HEADER_BYTES = 4096       # read at first: a PNG's chunks up to IDAT, a JPEG's markers up to its frame
JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}   # SOF0…SOF15
JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}     # markers without a length: TEM, RST0…RST7
PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}           # IHDR colour type → channels (3, a palette: below)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_header(file):
    """(channels, None) or (None, why it cannot be read): image_info without the size."""
    channels, _, reason = image_info(file)
    return channels, reason


def image_info(file):
    """An image file's header (a path or a binary file object) → (channels as TensorFlow's
    decode_image gives them, (width, height) or None when not known, None), or (None, None,
    why it cannot be read). The header alone is
    read, no pixels: PNG's chunks up to the first IDAT, JPEG's markers up to its frame
    header, GIF's signature and a plain 24-bit BMP's info header are parsed directly (a few
    microseconds a file); anything else, or anything unusual, goes to PIL's Image.open, which
    also reads no pixels and words the reason a file cannot be read. A file whose pixel data
    is damaged passes here and is skipped while training."""
    if isinstance(file, (str, bytes, os.PathLike)):
        descriptor = os.open(file, os.O_RDONLY)     # not open(): its buffered file object costs more than the parse
        try:
            found = _header(os.read(descriptor, HEADER_BYTES),
                            lambda offset: os.pread(descriptor, HEADER_BYTES, offset))
        finally:
            os.close(descriptor)
    else:
        start = file.tell()
        found = _parsed(file)
        file.seek(start)
    if found is not None:
        return found[0], found[1], None
    return _pil_info(file)


def parsed_channels(file):
    """The channels of a PNG, JPEG, GIF or plain 24-bit BMP from its header bytes, as PIL
    would count them (tests/test_streaming.py compares the two), or None to ask PIL. `file`:
    a binary file object, read from where it stands."""
    found = _parsed(file)
    return None if found is None else found[0]


def _parsed(file):
    start = file.tell()

    def more(offset):
        file.seek(start + offset)
        return file.read(HEADER_BYTES)
    return _header(file.read(HEADER_BYTES), more)


def _header(head, more):
    """(channels, (width, height)) of a file whose first bytes are `head` (more(offset) reads
    on), or None to ask PIL."""
    if head.startswith(PNG_SIGNATURE):
        return _png_channels(head)
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg_channels(head, more)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 13:
        return 3, struct.unpack_from("<HH", head, 6)    # TensorFlow decodes every GIF frame as RGB
    if head[:2] == b"BM" and len(head) >= 34:
        size, width, height, planes, bits, compression = struct.unpack_from("<IiiHHI", head, 14)
        if size == 40 and width > 0 and height != 0 and planes == 1 and bits == 24 and compression == 0:
            return 3, (width, abs(height))
    return None


def _png_channels(head):
    """Walk the chunks from IHDR to the first IDAT (where PIL's Image.open stops too)."""
    if len(head) < 33 or head[12:16] != b"IHDR":
        return None
    length, _, width, height, depth, colour = struct.unpack_from(">I4sIIBB", head, 8)
    if length != 13 or not width or not height or colour not in (*PNG_CHANNELS, 3) or depth not in (1, 2, 4, 8, 16):
        return None
    position, transparent = 33, False
    while position + 8 <= len(head):
        length, kind = struct.unpack_from(">I4s", head, position)
        if kind == b"IDAT":
            return ((4 if transparent else 3) if colour == 3 else PNG_CHANNELS[colour]), (width, height)
        transparent |= kind == b"tRNS"
        position += 12 + length
    return None                  # chunks past the first bytes (large metadata): PIL walks them


def _jpeg_channels(head, more):
    """Walk the markers from SOI to the frame header (SOFn), whose component count is the
    channels; segments beyond the first bytes (a large EXIF block) are skipped by seeking."""
    base, position = 0, 2        # head holds the file's bytes from offset `base`
    for _ in range(256):          # a JPEG has a few dozen segments before its frame at most
        if position + 10 > base + len(head):
            base, head = position, more(position)
            if len(head) < 10:
                return None
        at = position - base
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:                      # a fill byte
            position += 1
        elif marker in JPEG_STANDALONE:
            position += 2
        elif marker in JPEG_FRAMES:
            height, width, components = struct.unpack_from(">HHB", head, at + 5)
            return (components, (width, height)) if width and height and components in (1, 3, 4) else None
        elif marker in (0xD9, 0xDA):            # the end, or scan data before any frame header
            return None
        else:
            position += 2 + struct.unpack_from(">H", head, at + 2)[0]
    return None


def pil_header(file):
    """What PIL's Image.open reads of a file's header → (channels, None) or (None, why)."""
    channels, _, reason = _pil_info(file)
    return channels, reason


def _pil_info(file):
    """(channels, (width, height), None) or (None, None, why), from PIL's Image.open (no pixels read)."""
    import warnings

    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # the pixel budget judges the size
            with Image.open(file) as image:
                kind, mode, transparent, size = image.format, image.mode, "transparency" in image.info, image.size
    except UnidentifiedImageError:
        return None, None, f"not a readable {IMAGE_KINDS} image: its format is not one PIL or TensorFlow can identify"
    except Image.DecompressionBombError:
        return None, None, f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels (PIL's own limit): too large to decode"
    except Exception as e:      # PIL raises many kinds for damaged headers (SyntaxError, OSError, struct.error)
        return None, None, f"not a readable {IMAGE_KINDS} image: {first_line(str(e)) or type(e).__name__}"
    if kind not in DECODABLE_FORMATS:
        return None, None, f"not a readable {IMAGE_KINDS} image: it is a {kind} file, which TensorFlow does not decode"
    if kind == "GIF":
        return 3, size, None     # TensorFlow decodes every GIF frame as RGB
    if mode == "P":
        return (4 if transparent else 3), size, None
    return Image.getmodebands(mode), size, None


def decode_image(path, channels=0):
    """A file (png, jpg, bmp, gif) → uint8 [h, w, c] as stored (channels=0: the count is known
    at run time only, and `preprocess` converts it), or with `channels` (1 or 3) fixed."""
    import tensorflow as tf
    return tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False, dtype=tf.uint8)


def resize_masks(masks, size):
    """Masks [N, h, w] → [N, H, W] by nearest neighbour (class numbers are not blended)."""
    import numpy as np
    import tensorflow as tf
    masks = np.asarray(masks)
    if tuple(masks.shape[1:3]) == tuple(size):
        return masks
    out = tf.image.resize(masks[..., None], size, method="nearest")
    return out.numpy()[..., 0].astype(masks.dtype)


def png_bytes(image, size) -> bytes:
    """A PIL image, resized to `size` (h, w) when given, as PNG bytes (what a pack stores)."""
    import io

    from PIL import Image
    if size is not None:
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
