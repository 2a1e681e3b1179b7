"""The wheel's tags are checked against the test interpreter before the test step:
a wheel for another Python or platform is refused in one line and is not moved to
failed/ (it failed no test)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import HOST_ARCH, PY_TAG
from numpy_wheels.build.wheel_tags import check_installable, interpreter_tags
from numpy_wheels.errors import ConfigurationError
from numpy_wheels.files import file_hash
from test_cli import numpy_wheels
from test_pipeline import fixture_copy, settings

OTHER = "cp313" if PY_TAG != "cp313" else "cp312"


def _version(python: str) -> str:
    code = "import sys; print('cp%d%d' % sys.version_info[:2])"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def _other_python() -> str | None:
    """An installed interpreter of another X.Y than this one: on PATH or pyenv's."""
    found = [shutil.which(f"python3.{minor}") for minor in range(9, 16)]
    found += map(str, sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3")))
    return next((p for p in found if p and _version(p) not in ("", PY_TAG)), None)


def test_the_interpreter_is_asked_for_its_own_tags():
    # GIVEN this interpreter, asked as another process (it need not have packaging)
    name, tags = interpreter_tags(sys.executable)
    # THEN it names itself and its tags are packaging's, most specific included
    from packaging.tags import sys_tags

    assert name == PY_TAG
    assert tags == {str(t) for t in sys_tags()}
    assert "py3-none-any" in tags and f"{PY_TAG}-abi3-linux_{HOST_ARCH}" in tags


def test_a_wheel_for_another_python_is_refused_in_one_line():
    wheel = Path(f"numpy-2.4.6-{OTHER}-{OTHER}-manylinux_2_27_{HOST_ARCH}.whl")
    with pytest.raises(ConfigurationError) as info:
        check_installable([wheel, Path("pure-1.0-py3-none-any.whl")], sys.executable)
    message = str(info.value)
    assert message == (
        f"{wheel.name} ({OTHER}-{OTHER}-manylinux_2_27_{HOST_ARCH}) does not install on "
        f"{sys.executable} ({PY_TAG}); test with the interpreter it was built for (PYTHON=...) "
        "or rebuild for this one"
    )
    # what does install passes: pure, abi3 and this interpreter's own wheels
    abi3 = f"x-1.0-cp39-abi3-manylinux_2_17_{HOST_ARCH}.manylinux2014_{HOST_ARCH}.whl"
    own = f"y-1.0-{PY_TAG}-{PY_TAG}-linux_{HOST_ARCH}.whl"
    check_installable([Path(n) for n in ("pure-1.0-py3-none-any.whl", abi3, own)], sys.executable)


def test_another_interpreter_takes_its_own_wheels():
    other = _other_python()
    if other is None:
        pytest.skip("no python3.X of another version on PATH")
    tag = _version(other)
    check_installable([Path(f"numpy-2.4.6-{tag}-{tag}-manylinux_2_27_{HOST_ARCH}.whl")], other)
    with pytest.raises(ConfigurationError, match=f"does not install on {other} "):
        check_installable([Path(f"n-1.0-{PY_TAG}-{PY_TAG}-linux_{HOST_ARCH}.whl")], other)


def test_make_test_refuses_a_cp3xx_wheel_for_another_python(tmp_path):
    # GIVEN a wheel for another Python in build/repaired, passed by make check
    project = fixture_copy(tmp_path)
    repaired = tmp_path / "work" / "repaired"
    repaired.mkdir(parents=True)
    wheel = repaired / f"clib_demo-1.0.0-{OTHER}-{OTHER}-manylinux_2_17_{HOST_ARCH}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("clib_demo/__init__.py", "")
    (tmp_path / "work" / "checked.json").write_text(json.dumps({wheel.name: file_hash(wheel)}))
    # WHEN the test step runs with this interpreter
    env = {**settings(tmp_path, project), "PYTHON": sys.executable}
    proc = numpy_wheels("test", tmp_path=tmp_path, **env)
    # THEN one line names the wheel and the interpreter, exit 2, before any venv or pip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    tags = f"{OTHER}-{OTHER}-manylinux_2_17_{HOST_ARCH}"
    assert errors == [
        f"numpy-wheels: error: {wheel.name} ({tags}) does not install on {sys.executable} "
        f"({PY_TAG}); test with the interpreter it was built for (PYTHON=...) or rebuild for "
        "this one"
    ]
    assert "no supported wheels found" not in proc.stdout + proc.stderr
    assert "threadpoolctl" not in proc.stdout + proc.stderr
    # the wheel stays in repaired/ and nothing is called failed
    assert wheel.is_file()
    assert not (tmp_path / "wheelhouse" / "failed").exists()
    assert "failed their tests" not in proc.stdout + proc.stderr
