"""A power cut at every point of every flash write: the device's writes on the unix build
(device_scripts/power_cut_device.py: relay states, config, boot record, log and audit appends
with rotation, an OTA download, staging, apply and confirm) run with the power cut at the k-th
mutating filesystem operation (iotlib.atomic_file.cut_at), for every k, from two starting
points: a first boot on an empty folder and a second boot over a full one. After each cut the
folder is what a real cut leaves (a torn write or flush, a rename or remove not done); a fresh
process then boots the real managers from it. Each time: the device boots; every state file
reads as whole JSON (the old or the new version), every log line is whole JSON; the relay
states, config version, boot count and app version restored are the last committed ones or
the ones being written at the cut, never older; an update cut during its install is fetched
again, never marked bad.

`make test` runs a seeded sample of the cut points; POWER_CUT_FULL=1 (make test-power-cut)
runs all of them and prints the count per file."""

import collections
import json
import os
import random
import shutil
import subprocess

from e2e_harness import sim

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "device_scripts",
                      "power_cut_device.py")
ENV = dict(os.environ, MICROPYPATH="%s:%s:.frozen" % (
    os.path.join(sim.ROOT, "tests", "mpy"), os.path.join(sim.ROOT, "python")))
FULL = os.environ.get("POWER_CUT_FULL") == "1"
SAMPLE = 24      # cut points per starting point in the short run
SEED = 8
STATE_FILES = ("relays.json", "config.json", "boot.json", "ota/state.json")
VERSIONS = ("1.0.0", "1.1.0")


def device(*args):
    p = subprocess.run([sim.MICROPYTHON, SCRIPT] + [str(a) for a in args], cwd=sim.ROOT,
                       env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


def boot(d):
    rc, out = device("boot", d)
    assert rc == 0, "the device did not boot from %s:\n%s" % (d, out[-3000:])
    return json.loads(out.split("BOOT ", 1)[1])


def run_to_end(d):
    # -> the trace of every mutating operation of an uncut run
    rc, out = device("work", d, 0)
    assert rc == 0, out[-3000:]
    return json.loads(out.split("OPS ", 1)[1])


def logical(path, d):
    # the file a mutating operation belongs to: its copies and rotations count with it
    name = os.path.relpath(path, d)
    for suffix in (".new", ".old", ".1", ".2", ".3"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    if name.startswith("ota/image."):
        name = "ota/image (download, staging)"
    if name == "app_version.img":
        name = "app_version.img (installed image)"
    return name


def committed(out, name, before):
    # -> (last value committed before the cut, value being written at the cut or None)
    last, pending = before, None
    for ln in out.splitlines():
        parts = ln.split(" ", 2)
        if len(parts) == 3 and parts[1] == name and parts[0] in ("BEGIN", "ACK"):
            v = json.loads(parts[2])
            if parts[0] == "ACK":
                last, pending = v, None
            else:
                pending = v
    return last, pending


def check_files(d, image):
    # what a reader finds: each state file (or its previous copy) is whole JSON
    for name in STATE_FILES:
        p = os.path.join(d, name)
        found = [c for c in (p, p + ".old") if os.path.exists(c)]
        if found:
            with open(found[0]) as f:
                json.load(f)  # raises on a torn or glued copy
    p = os.path.join(d, "app_version")
    found = [c for c in (p, p + ".old") if os.path.exists(c)]
    if found:
        with open(found[0]) as f:
            v = f.read().strip()
        assert v in VERSIONS, "app_version holds %r" % v
        if v == "1.1.0":
            with open(p + ".img", "rb") as f:
                assert f.read() == image, "version 1.1.0 recorded without its whole image"


def check_logs(d):
    for p in sorted(os.listdir(os.path.join(d, "log"))):
        with open(os.path.join(d, "log", p), "rb") as f:
            data = f.read()
        assert not data or data.endswith(b"\n"), "%s ends with a torn line" % p
        for ln in data.splitlines():
            json.loads(ln)  # raises on a torn or glued line


def sweep(tmp_path, start, label, ks=None):
    """Cut at each k of ks (all when None) from the folder `start`; -> (cut points, per file)."""
    ref = str(tmp_path / (label + "-ref"))
    shutil.copytree(start, ref)
    ops = run_to_end(ref)
    with open(os.path.join(ref, "app_version.img"), "rb") as f:
        image = f.read()
    if os.path.exists(os.path.join(start, "boot.json")):
        probe = str(tmp_path / (label + "-probe"))  # what a boot restores from start itself
        shutil.copytree(start, probe)
        before = boot(probe)
        base_relays, base_config = before["relays"], before["config_version"]
        base_boots = before["boots"] - 1
    else:
        before = None
        base_relays, base_config, base_boots = {"r%d" % i: False for i in range(4)}, 0, 0
    per_file = collections.Counter()
    ks = range(1, len(ops) + 1) if ks is None else ks
    for k in ks:
        d = str(tmp_path / ("%s-cut%d" % (label, k)))
        shutil.copytree(start, d)
        rc, out = device("work", d, k)
        where = "%s, cut at operation %d (%s)" % (label, k, ops[k - 1])
        assert rc == 3 and "CUT" in out, "%s: no cut:\n%s" % (where, out[-2000:])
        check_files(d, image)
        got = boot(d)
        check_logs(d)
        for name, value, base in (("relays", got["relays"], base_relays),
                                  ("config", got["config_version"], base_config)):
            last, pending = committed(out, name, base)
            assert value in (last, pending), "%s: %s restored %r, committed %r, in flight %r" % (
                where, name, value, last, pending)
        acked = committed(out, "boots", None)[0]
        if acked is not None:
            assert got["boots"] == acked + 1, "%s: boot count %r after %r" % (
                where, got["boots"], acked)
        else:
            assert got["boots"] in (base_boots + 1, base_boots + 2), where
        if committed(out, "app_version", None)[0] is not None or before:
            assert got["app_version"] == "1.1.0", "%s: update lost" % where
        assert got["app_version"] in VERSIONS
        assert got["ota_bad"] == [], "%s: a cut update was marked bad" % where
        per_file[logical(ops[k - 1].split(" ", 1)[1], ref)] += 1
        shutil.rmtree(d)
    return len(ks), per_file


def test_power_cut_at_every_write(tmp_path):
    first = str(tmp_path / "empty")
    os.mkdir(first)
    second = str(tmp_path / "full")  # the folder a whole first run leaves
    shutil.copytree(first, second)
    run_to_end(second)
    rng = random.Random(SEED)
    total = 0
    per_file = collections.Counter()
    for label, start in (("first-boot", first), ("second-boot", second)):
        ks = None
        if not FULL:
            count = str(tmp_path / (label + "-count"))
            shutil.copytree(start, count)
            n_ops = len(run_to_end(count))
            ks = sorted(rng.sample(range(1, n_ops + 1), min(SAMPLE, n_ops)))
        n, files = sweep(tmp_path, start, label, ks)
        total += n
        per_file.update(files)
    print("\n[power cut] %d cut points, every one booted with whole files and no committed"
          " state lost" % total)
    for name, n in sorted(per_file.items(), key=lambda x: -x[1]):
        print("[power cut]   %-36s %4d" % (name, n))
    assert total >= (200 if FULL else 2 * SAMPLE)
