"""The skip_is_failure plugin, proven on tiny pytest runs in a temporary folder: every way a
test can skip turns the run red, a passing run stays green, and without the plugin the same
skips would have passed (so the plugin is what makes the difference)."""

import os
import subprocess
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent

SKIPS = '''
import pytest

@pytest.fixture
def board():
    pytest.skip("no firmware at /nowhere.uf2")

def test_body_skips():
    pytest.skip("no NTP responder")

@pytest.mark.skipif(True, reason="no unix build")
def test_marked_skip():
    pass

def test_fixture_skips(board):
    pass

@pytest.mark.xfail(reason="known broken")
def test_expected_failure():
    assert False

def test_passes():
    assert 1 + 1 == 2
'''

MODULE_SKIP = '''
import pytest
pytest.importorskip("no_such_module_anywhere")

def test_never_collected():
    pass
'''

PASSES = '''
def test_passes():
    assert sum([1, 2]) == 3
'''


def _pytest(folder, *, plugin=True):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PLUGIN_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    args = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider",
            "--rootdir", str(folder)]
    if plugin:
        args += ["-p", "skip_is_failure"]
    else:
        args += ["-p", "no:skip_is_failure"]
    return subprocess.run(args + [str(folder)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)


def _write(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_every_kind_of_skip_fails_the_run(tmp_path):
    d = _write(tmp_path / "skips", "test_skips.py", SKIPS)
    r = _pytest(d)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "1 passed" in out and "skipped" not in out.splitlines()[-1], out
    for reason in ("no NTP responder", "no unix build", "no firmware at /nowhere.uf2",
                   "expected failure (xfail): known broken"):
        assert reason in out, (reason, out)
    # three skipped tests and an xfail: the body and xfail fail, the setup skips error
    last = out.strip().splitlines()[-1]
    assert "2 failed" in last and "2 error" in last, last


def test_a_module_level_skip_fails_the_run(tmp_path):
    d = _write(tmp_path / "modskip", "test_modskip.py", MODULE_SKIP)
    r = _pytest(d)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "skipped at collection" in out and "no_such_module_anywhere" in out, out


def test_without_the_plugin_the_same_skips_pass(tmp_path):
    d = _write(tmp_path / "skips", "test_skips.py", SKIPS)
    r = _pytest(d, plugin=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "3 skipped" in out and "1 xfailed" in out, out
    assert "SKIPPED" in out and "no NTP responder" in out, out  # -rs prints the reasons


def test_a_run_with_no_skip_stays_green(tmp_path):
    d = _write(tmp_path / "green", "test_green.py", PASSES)
    r = _pytest(d)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "1 passed" in out and "failed" not in out, out
