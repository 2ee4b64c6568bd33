"""bench/gpu_throughput.py runs end to end at a tiny size on the CPU (the real figures need
an accelerator): both ResNet-50s train, and the utilisation is computed from the check's MACs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "gpu_throughput.py"


def test_gpu_throughput_runs_tiny_on_cpu(capsys):
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--size", "32", "--batch", "1", "--steps", "1", "--warmup", "1", "--precision", "float32",
                          "--peak-tflops", "1", "--json"])
    assert results["device"] == "CPU" and results["xla"] is False
    # ResNet-50 at 224×224 is 3.87 GMACs (He et al. 2015: 3.8·10⁹ FLOPs counted as multiply-adds); at 32×32
    # the spatial work is (32/224)² of it, give or take the padding and the 1000-way dense layer
    assert 0.5 * 3.87e9 * (32 / 224) ** 2 < results["macs_per_image"] < 1.5 * 3.87e9 * (32 / 224) ** 2
    for side in ("cnnbuild", "keras"):
        rate = results[side]["images_per_second"]
        assert rate > 0
        assert abs(results[side]["model_flop_utilisation"] - rate * results["macs_per_image"] * 6 / 1e12) < 1e-12
