"""The Python API is the command line's: every stage is reachable from `import cnnbuild`,
and importing it stays light (the check path imports neither TensorFlow nor NumPy)."""
import subprocess
import sys

import cnnbuild
from conftest import ROOT


def test_every_public_name_resolves_to_a_callable_or_class():
    import cnnbuild.views.draw  # noqa: F401  (a loaded stage module must not hide its API function)
    import cnnbuild.train  # noqa: F401
    for name in cnnbuild.__all__:
        assert callable(getattr(cnnbuild, name)), name


def test_import_cnnbuild_loads_no_tensorflow_keras_or_numpy():
    program = ("import sys, cnnbuild; r = cnnbuild.check(cnnbuild.load_spec('specs/lenet5.yaml')); "
               "assert r.params == 61706, r.params; "
               "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'numpy')); "
               "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_an_unknown_name_is_an_attribute_error():
    try:
        cnnbuild.no_such_stage
    except AttributeError as e:
        assert "no_such_stage" in str(e)
    else:
        raise AssertionError("cnnbuild.no_such_stage did not raise")
