"""What a network sees (`cnnbuild maps`): an image's feature maps after chosen layers, or the
layers' kernels, from a model built from a spec (fixed kernels need no training) or a run's
trained model.keras. The image is read and preprocessed as prediction reads it
(serve/predict.py's `read_image`, preprocess.py), so the maps are the ones the model computes.
"""
from __future__ import annotations

import difflib

from ..errors import UsageError
from ..views.maps import Panel

MAX_MAPS = 32     # maps drawn per layer unless --max-maps says otherwise


def layer_named(model, name: str):
    names = [layer.name for layer in model.layers]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        raise UsageError(f"--layer {name}: the model has no layer of that name",
                         f"did you mean '{close[0]}'?" if close else f"its layers: {', '.join(names)}")
    return model.get_layer(name)


def feature_panels(model, image_path, layer_names, max_maps: int = MAX_MAPS) -> list:
    """One Panel per layer: the image's maps after it (the first `max_maps` channels)."""
    import keras
    import numpy as np

    from ..preprocess import preprocess
    from .predict import ImageError, read_image
    shape = tuple(model.input_shape[1:])
    try:
        pixels = read_image(image_path, training_channels=shape[-1])
    except ImageError as e:
        raise UsageError(str(e)) from None
    image = preprocess(pixels[None], shape)
    layers = [layer_named(model, name) for name in layer_names]
    for layer in layers:
        if len(layer.output.shape) != 4:
            raise UsageError(f"--layer {layer.name}: its output {tuple(layer.output.shape[1:])} is not a map "
                             "(height × width × channels)", "choose a convolution or pooling layer")
    outputs = keras.Model(model.inputs, [layer.output for layer in layers])(image, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    panels = []
    for layer, output in zip(layers, outputs):
        maps = np.moveaxis(np.asarray(output)[0], -1, 0)
        h, w, c = maps.shape[1], maps.shape[2], maps.shape[0]
        shown = maps[:max_maps]
        more = f"; maps 0–{len(shown) - 1} of {c}" if len(shown) < c else ""
        panels.append(Panel(f"{layer.name}: output {h}×{w}×{c}{more}", shown,
                            tuple(f"{layer.name}[{i}]" for i in range(len(shown)))))
    return panels


def kernel_panels(model, layer_names, max_maps: int = MAX_MAPS) -> list:
    """One Panel per layer: its kernels, one picture per filter (RGB when the layer reads 3
    channels, else the mean over its input channels; the header says which)."""
    import numpy as np
    panels = []
    for name in layer_names:
        layer = layer_named(model, name)
        kernels = [w for w in layer.get_weights() if w.ndim == 4]
        if not kernels:
            raise UsageError(f"--layer {name}: has no convolution kernel to draw", "choose a conv layer with --filters")
        kernel = kernels[0]                                  # Keras's layout: F × F × C_in × K
        fh, fw, c, k = kernel.shape
        pictures = np.moveaxis(kernel if c == 3 else kernel.mean(axis=2), -1, 0)[:max_maps]
        read = "RGB" if c == 3 else (f"mean over {c} input channels" if c > 1 else "1 input channel")
        more = f"; filters 0–{len(pictures) - 1} of {k}" if len(pictures) < k else ""
        panels.append(Panel(f"{name}: kernel {fh}×{fw}×{c}×{k} ({read}){more}", pictures,
                            tuple(f"{name}[{i}]" for i in range(len(pictures)))))
    return panels
