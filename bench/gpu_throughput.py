"""Accelerator throughput: specs/resnet50.yaml as cnnbuild builds it against
keras.applications.ResNet50 written by hand, on synthetic 224×224 images.

    python bench/gpu_throughput.py                    # batch 256, bfloat16, 3 repeats of 200 steps a side
    python bench/gpu_throughput.py --size 32 --batch 1 --steps 1 --warmup 1 --repeats 1   # a CPU smoke run

What makes the figures trustworthy:
- Each measurement is its own process (`--side`), and the sides alternate (cnnbuild, keras;
  keras, cnnbuild; …) over `--repeats` rounds: neither side inherits the other's compiled
  kernels, allocator state or clock boost, and a drift of the machine hits both. The figure of
  a side is the median of its repeats; every repeat is printed.
- The batch lives on the device (generated there once): no host array copied every step, so
  this measures the model's training step, not PCIe.
- Both sides run the same compiled step: Keras's own train step (`model.train_function`, what
  fit and train_on_batch call), SGD with momentum, sparse categorical cross-entropy, with the
  same mixed-precision policy (bfloat16 by default) and XLA (jit_compile; default on a GPU).
- `--warmup` steps first (tracing, XLA compilation, autotuning), then the clock: it starts and
  stops only after the device has finished every step launched before (the loss is read back,
  which waits for it), so queued work is neither missed nor counted twice.
- Model FLOP utilisation = images/s × MACs × 2 (multiply and add) × 3 (forward and the two
  backward products) / the card's dense 16-bit tensor peak, looked up by its exact model
  (H100 SXM, PCIe and NVL differ by 30%) or given with --peak-tflops. MACs are `cnnbuild
  check`'s count at the chosen size (3.86 G at 224×224).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("cnnbuild", "keras")
# Dense (no sparsity) bfloat16/float16 tensor-core peaks in TFLOP/s, from NVIDIA's data sheets;
# the first key contained in the device's name wins, so the specific models come first.
PEAK_TFLOPS = [
    ("H100 PCIE", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0),   # PCIe cards: lower clocks and power
    ("GH200", 989.0), ("H100", 989.0), ("H200", 989.0),               # SXM (the name has no form factor)
    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0),
    ("V100", 125.0), ("T4", 65.0),                                    # float16 only: no bfloat16 units
]


def peak_of(name: str):
    """The dense 16-bit peak of a card from its TensorFlow device name.

    >>> peak_of("NVIDIA H100 80GB HBM3"), peak_of("NVIDIA H100 PCIe"), peak_of("NVIDIA H100 NVL"), peak_of("CPU")
    (989.0, 756.0, 835.0, None)
    """
    upper = name.upper()
    return next((peak for key, peak in PEAK_TFLOPS if key in upper), None)


def cnnbuild_model(size):
    from cnnbuild import build_model, infer, resolve_spec
    from cnnbuild.parse.overrides import settings
    spec = resolve_spec(ROOT / "specs" / "resnet50.yaml", settings([f"input=[{size}, {size}, 3]"]))
    return build_model(spec), infer(spec).macs


def keras_model(size):
    import keras
    return keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000), None


def measure_side(side, size, batch, steps, warmup, precision, xla) -> dict:
    """One side in this process: images per second over `steps` steps after `warmup`."""
    import keras
    import tensorflow as tf
    keras.mixed_precision.set_global_policy(precision)
    model, macs = (cnnbuild_model if side == "cnnbuild" else keras_model)(size)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(), jit_compile=xla)
    gpus = tf.config.list_physical_devices("GPU")
    with tf.device("/GPU:0" if gpus else "/CPU:0"):     # the batch is made where it is used, once
        images = tf.random.stateless_uniform((batch, size, size, 3), seed=[0, 1])
        labels = tf.random.stateless_uniform((batch,), seed=[0, 2], maxval=1000, dtype=tf.int32)
    model.make_train_function()
    step, data = model.train_function, [(images, labels)]

    def finished(logs) -> float:
        return float(logs["loss"])     # reading the loss back waits for every step launched before

    logs = None
    for _ in range(warmup):
        logs = step(data)
    finished(logs)
    began = time.perf_counter()
    for _ in range(steps):
        logs = step(data)
    loss = finished(logs)
    seconds = time.perf_counter() - began
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    return {"side": side, "images_per_second": batch * steps / seconds, "seconds": seconds, "loss": loss,
            "device": device, "macs_per_image": macs}


def run_side(side, args) -> dict:
    """One side in a process of its own; its one line of JSON back."""
    command = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--size", str(args.size),
               "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--precision", args.precision, "--xla", args.xla]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{side} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per repeat (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="steps before the clock (compiling, autotuning)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, each side once per round (default 3)")
    parser.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"], default="mixed_bfloat16")
    parser.add_argument("--xla", choices=["auto", "on", "off"], default="auto", help="auto: on where there is a GPU")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for the utilisation")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)    # a worker: one side, one process
    args = parser.parse_args(argv)
    if args.side:
        import tensorflow as tf
        xla = args.xla == "on" or (args.xla == "auto" and bool(tf.config.list_physical_devices("GPU")))
        print(json.dumps(measure_side(args.side, args.size, args.batch, args.steps, args.warmup, args.precision, xla)))
        return None
    runs = {side: [] for side in SIDES}
    for round_ in range(args.repeats):
        for side in (SIDES if round_ % 2 == 0 else SIDES[::-1]):
            runs[side].append(run_side(side, args))
    first = runs["cnnbuild"][0]
    device, macs = first["device"], first["macs_per_image"]
    xla = args.xla == "on" or (args.xla == "auto" and device != "CPU")
    peak = args.peak_tflops or peak_of(device)
    results = {"device": device, "precision": args.precision, "xla": xla, "size": args.size, "batch": args.batch,
               "steps": args.steps, "repeats": args.repeats, "macs_per_image": macs, "peak_tflops": peak}
    for side in SIDES:
        rates = [run["images_per_second"] for run in runs[side]]
        rate = statistics.median(rates)
        results[side] = {"images_per_second": rate, "repeats": rates,
                         "model_flop_utilisation": rate * macs * 2 * 3 / (peak * 1e12) if peak else None}
    results["ratio"] = results["cnnbuild"]["images_per_second"] / results["keras"]["images_per_second"]
    if args.json:
        print(json.dumps(results))
        return results
    print(f"{device}, {args.precision}, XLA {'on' if xla else 'off'}, {args.size}×{args.size}, batch {args.batch}, "
          f"{macs / 1e9:.2f} GMACs an image; {args.repeats} repeats of {args.steps} steps a side, medians")
    for side in SIDES:
        row = results[side]
        mfu = f"{row['model_flop_utilisation']:.1%} of {peak:,.0f} TFLOP/s" if peak else "(peak unknown: --peak-tflops)"
        each = ", ".join(f"{rate:,.1f}" for rate in row["repeats"])
        print(f"  {side:9} {row['images_per_second']:>9,.1f} images/s   MFU {mfu}   (repeats: {each})")
    print(f"  cnnbuild / keras: {results['ratio']:.2f}")
    return results


if __name__ == "__main__":
    main()
