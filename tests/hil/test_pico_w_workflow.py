"""The Pico W CI recipe (.github/workflows/pico_w.yml) cannot run on these machines (no
cyw43-driver or btstack here), so its shape is checked instead: it parses, checks out
MicroPython v1.25.0 with its submodules, and every step after the bootstrap is a make target
of this Makefile, so each step runs the same outside CI."""

import re
import shlex

import yaml

from harness import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pico_w.yml"


def make_targets():
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):(?!=)", text, re.M))


def steps():
    doc = yaml.safe_load(WORKFLOW.read_text())
    jobs = doc["jobs"]
    assert list(jobs) == ["pico-w"], list(jobs)
    return jobs["pico-w"]["steps"]


def test_micropython_checked_out_with_submodules():
    mpy = [s for s in steps() if s.get("with", {}).get("repository") == "micropython/micropython"]
    assert len(mpy) == 1, mpy
    assert mpy[0]["uses"].startswith("actions/checkout@")
    assert mpy[0]["with"]["ref"] == "v1.25.0"
    assert mpy[0]["with"]["submodules"] in (True, "recursive")


def test_every_step_after_bootstrap_is_a_make_target():
    runs = [s["run"] for s in steps() if "run" in s]
    assert runs[0].startswith("apt-get "), runs[0]  # make and git into the bare container
    targets = make_targets()
    called = []
    for run in runs[1:]:
        words = shlex.split(run.replace("ulimit -n 1024 && ", ""))
        assert words[:3] == ["make", "-C", "relays"], run
        goals = [w for w in words[3:] if "=" not in w]
        assert goals and set(goals) <= targets, (goals, sorted(targets))
        args = dict(w.split("=", 1) for w in words[3:] if "=" in w)
        assert args.get("MPY_DIR") == "$GITHUB_WORKSPACE/micropython", run
        called.append((goals, args.get("BOARD")))
    assert (["firmware"], "RPI_PICO_W") in called, called
    assert (["test-hil"], "RPI_PICO_W") in called, called
    hil = next(r for r in runs if "test-hil" in r)
    assert "HIL_PYTEST_ARGS='-m \"not network\"'" in hil, hil
