"""bench/gpu_throughput.py runs end to end at a tiny size on the CPU (the real figures need
an accelerator): both ResNet-50s train, each in a process of its own, and the utilisation is
computed from the check's MACs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "gpu_throughput.py"


def test_gpu_throughput_runs_tiny_on_cpu(capsys):
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--size", "32", "--batch", "1", "--steps", "1", "--warmup", "1", "--repeats", "1",
                          "--precision", "float32",
                          "--peak-tflops", "1", "--json"])
    assert results["device"] == "CPU" and results["xla"] is False
    # ResNet-50 at 224×224 is 3.87 GMACs (He et al. 2015: 3.8·10⁹ FLOPs counted as multiply-adds); at 32×32
    # the spatial work is (32/224)² of it, give or take the padding and the 1000-way dense layer
    assert 0.5 * 3.87e9 * (32 / 224) ** 2 < results["macs_per_image"] < 1.5 * 3.87e9 * (32 / 224) ** 2
    for side in ("cnnbuild", "keras"):
        rate = results[side]["images_per_second"]
        assert rate > 0
        assert abs(results[side]["model_flop_utilisation"] - rate * results["macs_per_image"] * 6 / 1e12) < 1e-12
    assert results["cnnbuild"]["repeats"] == [results["cnnbuild"]["images_per_second"]]   # one repeat: its own median


def test_each_card_gets_its_own_peak():
    """H100 PCIe and NVL cards run at lower clocks than the SXM part: NVIDIA's dense BF16 peaks
    are 756, 835 and 989 TFLOP/s (the data sheets' sparse figures halved)."""
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.peak_of("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.peak_of("NVIDIA H100 PCIe") == 1513 // 2      # the sparse figures halved, rounded down
    assert bench.peak_of("NVIDIA H100 NVL") == 1671 // 2
    assert bench.peak_of("NVIDIA A100-SXM4-80GB") == 312.0 and bench.peak_of("CPU") is None
