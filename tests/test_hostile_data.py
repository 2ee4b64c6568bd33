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
