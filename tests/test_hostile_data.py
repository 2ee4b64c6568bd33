"""Hostile and careless data: links, FIFOs, loops, long paths, decompression bombs, full disks,
killed runs, and values no training should start with. Each case is made for real (a FIFO
with os.mkfifo, a PNG bomb with PIL, a tmpfs that fills up, a SIGKILL) and the test checks
what the user is told and that nothing hangs or half-writes."""
import pytest

from cnnbuild.cli import main


@pytest.mark.parametrize("value, message", [
    ("1e30", "learning rate 1e+30 is above 10"),
    (".inf", "learning rate inf is not a finite number"),
    ("0", "must be > 0"),
    ("-0.1", "must be > 0"),
    (".nan", "NaN is not a valid value"),
])
def test_a_learning_rate_no_training_survives_is_refused_at_its_line(tmp_path, capsys, value, message):
    spec = tmp_path / "net.yaml"
    spec.write_text("name: net\ninput: [8, 8, 1]\nlayers:\n  - flatten\n  - dense: {units: 2, activation: softmax}\n"
                    f"train:\n  optimizer: {{name: adam, learning_rate: {value}}}\n")
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:7:42: train.optimizer.learning_rate: " in err and message in err, err
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--set", f"train.optimizer.learning_rate={value}"]) == 1
    assert not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert "--set:1:1: train.optimizer.learning_rate: " in err and message in err and " v: " not in err, err


# ── files that are not regular files, paths too long, decompression bombs ────────────────

import os          # noqa: E402
import subprocess  # noqa: E402
import sys         # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent     # this checkout (a test may have changed the working folder)
from PIL import Image  # noqa: E402

SPEC = """\
name: net
input: [8, 8, 1]
layers:
  - flatten
  - dense: {{units: 2, activation: softmax}}
data: {{source: {path}, on_bad: {on_bad}, validation_split: 0.25{extra}}}
train: {{epochs: 1, batch_size: 4}}
"""


def class_folders(root, per_class=6):
    """Two class folders of real 8×8 digits (0s and 1s) as PNG files."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    for label in (0, 1):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            Image.fromarray(np.round(digits.images[i] * 255 / 16).astype(np.uint8)).save(folder / f"{n}.png")
    return root


def hostile_entries(root):
    """In digit_0: a FIFO, a dangling link, a loop of links, all named like images."""
    folder = root / "digit_0"
    os.mkfifo(folder / "pipe.png")
    (folder / "gone.png").symlink_to(root / "nowhere.png")
    (folder / "loop_a.png").symlink_to(folder / "loop_b.png")
    (folder / "loop_b.png").symlink_to(folder / "loop_a.png")
    return {str(folder / "pipe.png"): "named pipe (FIFO)", str(folder / "gone.png"): "does not exist",
            str(folder / "loop_a.png"): "loop of symbolic links", str(folder / "loop_b.png"): "loop of symbolic links"}


def write_spec(tmp_path, path, on_bad="skip", extra=""):
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(path=path, on_bad=on_bad, extra=extra))
    return spec


def test_fifos_links_and_loops_in_a_class_folder_are_named_and_skipped(tmp_path, capsys):
    """Training does not block on the FIFO; every stray is named on the console and in
    RUN/skipped.txt; with on_bad: error the first is refused, named."""
    root = class_folders(tmp_path / "data")
    strays = hostile_entries(root)
    spec = write_spec(tmp_path, root, on_bad="error")
    assert main(["train", str(spec), "--out", str(tmp_path / "refused")]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and any(f"{file}: is a" in err for file in strays), err
    spec = write_spec(tmp_path, root)
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    listed = dict(line.split("\t") for line in (tmp_path / "run" / "skipped.txt").read_text().splitlines())
    assert set(listed) == set(strays)
    for file, words in strays.items():
        assert words in listed[file]
    assert sum(f"skipped {file}: " in printed for file in strays) == len(strays)
    # check names them too (without TensorFlow), and data pack leaves them out, listed
    assert main(["check", str(spec)]) == 0
    assert main(["data", "pack", str(root), "--out", str(tmp_path / "packed")]) == 0
    import json
    skipped = json.loads((tmp_path / "packed" / "index.json").read_text())["skipped"]
    assert {entry["file"] if isinstance(entry, dict) else entry[0] for entry in skipped} == set(strays)


def test_a_fifo_as_the_tfrecord_path_is_refused_before_tensorflow(tmp_path, capsys):
    fifo = tmp_path / "train.tfrecord"
    os.mkfifo(fifo)
    spec = write_spec(tmp_path, fifo, on_bad="error")
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert f"{fifo}: is a named pipe (FIFO), not a regular file" in err, err
    code = ("import sys; from cnnbuild.cli import main; status = main(['train', sys.argv[1], '--out', sys.argv[2]]);"
            "print('tensorflow' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, str(spec), str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=60, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and "named pipe (FIFO)" in done.stderr, done.stderr
    assert done.stdout.strip() == "False"       # refused before TensorFlow was imported
    assert not (tmp_path / "run").exists()


def test_a_data_path_longer_than_the_system_allows_gets_a_clear_error(tmp_path, capsys):
    long = tmp_path / ("x" * 300) / "data"
    spec = write_spec(tmp_path, long)
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "the path is longer than the system allows" in err and "internal error" not in err, err
    assert "Errno" not in err
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "the path is longer than the system allows" in err and "internal error" not in err, err


def png_bomb(path, side=20000):
    """A valid single-colour side×side grayscale PNG, a few hundred KB on disk, written by
    rows (zlib) so that making it needs no side² buffer."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    compressor, row, parts = zlib.compressobj(9), b"\0" + bytes(side), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_skipped_named_and_memory_stays_bounded(tmp_path):
    """A valid 20000×20000 PNG among the training images: left out from its header, named,
    and the training process's peak RSS (measured by the kernel, in a subprocess) stays
    under 1.5 GB. On main it drove training to 4.1–6.9 GB."""
    root = class_folders(tmp_path / "data")
    bomb = png_bomb(root / "digit_1" / "bomb.png")
    assert bomb.stat().st_size < 2_000_000
    spec = write_spec(tmp_path, root)
    # the process's own peak (VmHWM, kB): ru_maxrss would count the pytest worker's RSS at fork time, which
    # Linux carries into the child's maximum across exec (a worker that built large models reads as 4 GB)
    code = ("import sys; from cnnbuild.cli import main; status = main(['train', sys.argv[1], '--out', sys.argv[2]]); "
            "print('peak', next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))); "
            "sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, str(spec), str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stdout.split("peak")[-1])
    assert peak_kib < 1.5e9 / 1024, peak_kib
    assert f"skipped {bomb}: 20000×20000 = 400 megapixels, more than data.max_pixels (50 megapixels)" in done.stdout
    assert str(bomb) in (tmp_path / "run" / "skipped.txt").read_text()
    # with on_bad: error it is refused, named, with the hint to raise the budget
    spec = write_spec(tmp_path, root, on_bad="error", extra=", max_pixels: 1000000")
    done = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(tmp_path / "r2")],
                          capture_output=True, text=True, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and f"{bomb}: 20000×20000" in done.stderr and "data.max_pixels" in done.stderr, \
        done.stderr


def test_validation_drops_are_named_too(tmp_path, capsys):
    """A separate validation source with a damaged file: named, marked as validation data."""
    train_root = class_folders(tmp_path / "train")
    valid_root = class_folders(tmp_path / "valid", per_class=3)
    (valid_root / "digit_1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"no header")
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(path=train_root, on_bad="skip", extra="").replace(
        "validation_split: 0.25", f"validation: {{source: {valid_root}}}"))
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    broken = str(valid_root / "digit_1" / "broken.png")
    assert f"skipped {broken}: " in printed and "(validation data)" in printed, printed
    assert broken in (tmp_path / "run" / "skipped.txt").read_text()


# ── a full disk, a killed run ──────────────────────────────────────────────────────────────

@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB tmpfs (root only): skipped, saying why, where mounting is not permitted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}): the full-disk case "
                    "needs root or CAP_SYS_ADMIN")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk):
    """Fill the disk to the last byte (unbuffered writes, smaller and smaller)."""
    descriptor = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(descriptor)


def test_a_full_disk_names_the_file_and_the_kept_checkpoint(tmp_path, small_disk, capsys):
    root = class_folders(tmp_path / "data")
    spec = write_spec(tmp_path, root)
    run = small_disk / "run"
    assert main(["train", str(spec), "--out", str(run), "--epochs", "2"]) == 0
    capsys.readouterr()
    fill(small_disk)
    assert main(["train", str(spec), "--out", str(run), "--epochs", "4"]) == 1
    err = capsys.readouterr().err
    assert "the disk is full (no space left on device) while writing " in err, err
    assert "the last complete checkpoint is epoch 2" in err and "free space and rerun to resume" in err, err
    assert "internal error" not in err and "Errno 28" not in err
    written = err.split("while writing ")[1].split(";")[0]
    assert Path(written).parent in (run, run / "checkpoints"), written
    assert not [p.name for p in run.rglob(".*") if p.name != ".lock"]     # no half-written sibling left
    (small_disk / "filler").unlink()
    assert main(["train", str(spec), "--out", str(run), "--epochs", "4"]) == 0
    assert "resum" in capsys.readouterr().out.lower()


def test_stray_temporaries_of_a_killed_run_are_removed_on_resume(tmp_path):
    """A real SIGKILL mid-training, then temporaries as a kill between write and rename
    leaves them (atomic_write's .NAME.XXXXXXXX, save_model's .model-PID.keras): resume
    removes them all and finishes."""
    import signal
    import time
    root = class_folders(tmp_path / "data", per_class=40)
    spec = write_spec(tmp_path, root)
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(run),
                                "--epochs", "200"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=os.environ | {"PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while time.time() < deadline and not list((run / "checkpoints").glob("epoch-*.npz")):
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    strays = [".history.csv.k2j4x9_a", ".spec.yaml.0a1b2c3d", ".training_curves.png.zz9_x1qq", ".model-4121.keras",
              ".classes.json.abcdefgh"]
    for name in strays:
        (run / name).write_bytes(b"half")
    (run / "notes.txt").write_text("the user's own file stays")
    assert main(["train", str(spec), "--out", str(run), "--epochs", "2"]) == 0
    left = sorted(p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock")
    assert left == [], left
    assert (run / "notes.txt").exists()


def test_data_errors_are_located_at_the_specs_data_line(tmp_path, capsys):
    import json
    spec = tmp_path / "net.yaml"
    spec.write_text("name: n\ninput: [8, 8, 1]\nlayers:\n  - flatten\n  - dense: {units: 2, activation: softmax}\n"
                    f"data: {{source: {tmp_path / 'absent'}}}\n")
    assert main(["check", str(spec)]) == 1
    assert f"error: {spec}:6:7: data: {tmp_path / 'absent'}: no such folder" in capsys.readouterr().err
    assert main(["check", str(spec), "--json"]) == 1
    [error] = json.loads(capsys.readouterr().out)["data_errors"]
    assert (error["file"], error["line"], error["column"], error["path"]) == (str(spec), 6, 7, "data")
