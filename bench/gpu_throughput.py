"""Accelerator throughput: specs/resnet50.yaml as cnnbuild builds it against
keras.applications.ResNet50 written by hand, on synthetic 224×224 images.

    python bench/gpu_throughput.py                              # batch 128, 50 timed steps
    python bench/gpu_throughput.py --size 32 --batch 2 --steps 1 --warmup 1   # a CPU smoke run

Both models train with the same loop (Keras's fit, SGD, sparse categorical cross-entropy)
on one random batch repeated (so input costs nothing: this measures compute), with mixed
precision (float16 on a GPU, bfloat16 elsewhere unless --precision says otherwise) and XLA
(jit_compile; on by default only on a GPU). Printed per side: images/second over the timed
steps and model FLOP utilisation = images/s × MACs × 2 (multiply and add) × 3 (forward and
the two backward products) / the device's peak (--peak-tflops, or a table for known GPUs).
MACs are `cnnbuild check`'s count at the chosen size.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# dense float16/bfloat16 tensor-core peaks (TFLOP/s), from the vendors' data sheets
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0, "T4": 65.0}


def peak_of(name: str):
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in name.upper()), None)


def cnnbuild_model(size):
    from cnnbuild import build_model, infer
    from cnnbuild import resolve_spec
    from cnnbuild.parse.overrides import settings
    spec = resolve_spec(ROOT / "specs" / "resnet50.yaml", settings([f"input=[{size}, {size}, 3]"]))
    return build_model(spec), infer(spec).macs


def keras_model(size):
    import keras
    return keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000)


def measure(model, size, batch, steps, warmup, xla) -> float:
    """Images per second over `steps` training steps after `warmup` (tracing, compiling)."""
    import keras
    import numpy as np
    import tensorflow as tf
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 1000, batch))
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", jit_compile=xla)

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, step, logs=None):
            if step == warmup:
                self.began = time.perf_counter()
    clock = Clock()
    model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[clock])
    return batch * steps / (time.perf_counter() - clock.began)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"], default="auto")
    parser.add_argument("--xla", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for the utilisation")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import keras
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    precision = args.precision if args.precision != "auto" else ("mixed_float16" if gpus else "mixed_bfloat16")
    xla = args.xla == "on" or (args.xla == "auto" and bool(gpus))
    peak = args.peak_tflops or peak_of(device)
    results = {"device": device, "precision": precision, "xla": xla, "size": args.size, "batch": args.batch}
    for side, make in (("cnnbuild", cnnbuild_model), ("keras", keras_model)):
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.clear_session()
        built = make(args.size)
        model, macs = built if isinstance(built, tuple) else (built, None)
        rate = measure(model, args.size, args.batch, args.steps, args.warmup, xla)
        results[side] = {"images_per_second": rate}
        if macs is not None:
            results["macs_per_image"] = macs
    flops = results["macs_per_image"] * 2 * 3
    for side in ("cnnbuild", "keras"):
        rate = results[side]["images_per_second"]
        results[side]["model_flop_utilisation"] = rate * flops / (peak * 1e12) if peak else None
    keras.mixed_precision.set_global_policy("float32")
    if args.json:
        print(json.dumps(results))
        return results
    print(f"{device}, {precision}, XLA {'on' if xla else 'off'}, {args.size}×{args.size}, batch {args.batch}, "
          f"{results['macs_per_image'] / 1e9:.2f} GMACs an image")
    for side in ("cnnbuild", "keras"):
        row = results[side]
        mfu = f"{row['model_flop_utilisation']:.1%} of {peak:,.0f} TFLOP/s" if peak else "(peak unknown: --peak-tflops)"
        print(f"  {side:9} {row['images_per_second']:>9,.1f} images/s   MFU {mfu}")
    print(f"  cnnbuild / keras: {results['cnnbuild']['images_per_second'] / results['keras']['images_per_second']:.2f}")
    return results


if __name__ == "__main__":
    main()
