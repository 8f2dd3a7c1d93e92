"""A crash during a state write leaves a valid file: the relay manager on the unix build persists
every change with no coalescing while the test kills it with SIGKILL at random moments; after
each kill the state file (or its previous copy) is whole JSON and a fresh boot restores exactly
what it holds.

The whole device too: python/main.py on the unix build, switched over its REST API with tokens
minted by the platform, is killed (SIGKILL) at seeded random moments under that load and
restarted on the same data folder. Each restart boots, every state file is whole, the relays
come back in a state some request asked for (never an uncommanded one), and a state persisted
before the kill is the one restored. POWER_CUT_FULL=1 (make test-power-cut) kills it 50 times."""

import http.client
import json
import os
import random
import subprocess
import time

import threading

import simulation as sim
from e2e_harness import wait_for
from test_rest_e2e import api_config, call, mint, need_ntp, ready

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "device_scripts",
                      "state_writer.py")
ENV = dict(os.environ, MICROPYPATH="%s:.frozen" % os.path.join(sim.ROOT, "python"))
KILLS = 25       # at least this many kills...
MAX_KILLS = 80   # ...and more, up to this bound, until 3 of them landed inside a write
DEVICE_KILLS = 50 if os.environ.get("POWER_CUT_FULL") == "1" else 8
STATE_FILES = ("relays.json", "config.json", "boot.json")


def run(mode, data_dir, **kw):
    return subprocess.Popen([sim.MICROPYTHON, SCRIPT, mode, data_dir], cwd=sim.ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def strict_json(path):
    with open(path) as f:
        return json.load(f)


def test_kill_during_state_writes_leaves_a_valid_file(tmp_path):
    data = str(tmp_path)
    path = os.path.join(data, "relays.json")
    rng = random.Random(1234)
    mid_write = 0
    kills = 0
    for i in range(MAX_KILLS):
        if kills >= KILLS and mid_write >= 3:
            break
        kills += 1
        p = run("write", data)
        try:
            assert p.stdout.readline().strip() == b"writing", "writer did not start"
            time.sleep(rng.uniform(0.002, 0.04))
        finally:
            p.kill()
            p.wait(timeout=10)
            p.stdout.close()
        # what the kill interrupted: a new copy not yet renamed, or no file between renames
        if os.path.exists(path + ".new") or not os.path.exists(path):
            mid_write += 1
        whole = [p_ for p_ in (path, path + ".old") if os.path.exists(p_)]
        assert whole, "no state file at all after kill %d" % i
        newest = strict_json(whole[0])  # raises on a torn file
        assert sorted(newest["states"]) == ["relay_%02d" % k for k in range(16)]
        r = run("restore", data)
        out, _ = r.communicate(timeout=20)
        assert r.returncode == 0, out
        assert json.loads(out) == newest["states"], "kill %d: restored %s" % (i, out)
    print("\n[state crash] %d kills, %d during a write (temporary or missing file seen)"
          % (kills, mid_write))
    assert mid_write > 0, "no kill landed inside a write; the test proves nothing"


def whole_state_files(data):
    # what a reader finds after the kill: each file (or its previous copy) is whole JSON
    for name in STATE_FILES:
        p = os.path.join(data, name)
        found = [c for c in (p, p + ".old") if os.path.exists(c)]
        assert found, "no %s after the kill" % name
        strict_json(found[0])


def persisted(data):
    try:
        return strict_json(os.path.join(data, "relays.json"))["states"]
    except (OSError, ValueError):
        return None


class Load:
    """Switches r1 and r2 over REST as fast as the device answers; keeps every state a request
    could have left (sent) and the last one the device acknowledged with a 200."""

    def __init__(self, dev, token, rng, state):
        self.dev, self.token, self.rng = dev, token, rng
        self.acked = dict(state)
        self.possible = [dict(state)]
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            relay = self.rng.choice(("r1", "r2"))
            on = self.rng.random() < 0.5
            self.possible.append(dict(self.acked, **{relay: on}))
            try:
                r = call(self.dev, "POST", "/gpio/" + relay, self.token,
                         {"state": "HIGH" if on else "LOW"})
            except (OSError, http.client.HTTPException):
                continue  # the kill cut the connection: the request may or may not have landed
            if r.status == 200:
                self.answered += 1
                self.acked[relay] = r.json()["state"] == "HIGH"
                self.possible.append(dict(self.acked))

    def stop(self):
        self._stop.set()
        self._thread.join(15)


def test_device_killed_under_rest_load_restores_committed_states(platform, sim_device, ntp):
    need_ntp(ntp)
    dev = sim_device(platform, config=api_config(ntp, restore_policy="last"))
    ready(dev)
    tok = mint(dev.cloud)
    rng = random.Random(4321)
    state = {"r1": False, "r2": False}
    boots = dev.status()["boot"]["boots"]
    exact = answered = 0
    for i in range(DEVICE_KILLS):
        load = Load(dev, tok, random.Random(rng.random()), state)
        wait_for(lambda: load.answered >= 2, 15, "kill %d: the device answering the load" % i)
        quiesce = i % 2 == 1
        if quiesce:
            # stop the load and wait for the last acknowledged state to be persisted
            load.stop()
            want = dict(load.acked)
            wait_for(lambda: persisted(dev.data_dir) == want, 15,
                     "kill %d: %s persisted" % (i, want))
        else:
            time.sleep(rng.uniform(0.0, 0.3))  # a random moment under load
        dev.kill()
        load.stop()
        answered += load.answered
        whole_state_files(dev.data_dir)
        dev.start()
        st = dev.wait_status(lambda s: s["boot"]["boots"] == boots + 1,
                             "kill %d: the device booting again" % i, timeout=30)
        boots += 1
        state = st["relays"]
        assert state in load.possible, "kill %d: restored %s, never asked for" % (i, state)
        if quiesce:
            assert state == want, "kill %d: persisted %s, restored %s" % (i, want, state)
            exact += 1
        ready(dev)
    assert dev.stop() == 0
    for path in dev.log_files()[:-1]:  # device and audit logs: whole lines only
        with open(path, "rb") as f:
            data = f.read()
        assert not data or data.endswith(b"\n"), "%s ends with a torn line" % path
        for line in data.splitlines():
            json.loads(line)
    print("\n[device kill] %d SIGKILLs under REST load (%d acknowledged switches), %d after a"
          " persisted state restored exactly, every restart booted with whole files"
          % (DEVICE_KILLS, answered, exact))
