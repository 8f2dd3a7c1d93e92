"""Platform flaps: the platform goes down and comes back (seeded random lengths, 0.2-3 s each
way) while the device's relay r1 is switched over its REST API (a token minted by the platform)
and the platform sets r2's desired state: just before a down over HTTP, during a down straight
into the platform's store. Each desired document also names r9, a relay the device does not
have (force), so each application raises exactly one state.unknown_relay alarm.

Accounting, from the device's own log (its stdout, never rotated), its counters and the
platform's database:
- alarms: the platform's merged counts equal the device's raised minus its counted drops
  (0 duplicates, 0 silent losses); batch ids stored once each, as many as the device sent;
- desired state: every version applied at most once; the last version of each down applied
  after it; r2 ends at the last desired value;
- relays: every change in the audit trail was commanded: r1's changes are exactly the REST
  answers that changed it, in order; r2's only from applied desired versions;
- 0 resets (one boot, no exit), heartbeat misses alone do not reset (heartbeat_max_missed 30).

8 cycles in `make test`; FLAPS_FULL=1 (make test-flaps) runs 50."""

import http.client
import json
import os
import random
import sqlite3
import threading
import time

from e2e_harness import wait_for
from reference_platform.store import Store
from test_rest_e2e import api_config, call, mint, need_ntp, ready

CYCLES = 50 if os.environ.get("FLAPS_FULL") == "1" else 8
SEED = 50
PHASE_S = (0.2, 3.0)


class RestSwitcher:
    """Switches r1 over REST, one request at a time; keeps each answer in order."""

    def __init__(self, dev, token, rng):
        self.dev, self.token, self.rng = dev, token, rng
        self.acked = []      # r1 state of each 200 answer, in order
        self.other = 0       # answers that were not 200 (rate limit, min interval)
        self.errors = 0      # no answer at all
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            on = self.rng.random() < 0.5
            try:
                r = call(self.dev, "POST", "/gpio/r1", self.token,
                         {"state": "HIGH" if on else "LOW"})
            except (OSError, http.client.HTTPException):
                self.errors += 1
                continue
            if r.status == 200:
                self.acked.append(r.json()["state"] == "HIGH")
            else:
                self.other += 1
            self._stop.wait(self.rng.uniform(0.1, 0.6))

    def stop(self):
        self._stop.set()
        self._thread.join(15)


def stdout_records(dev):
    recs = []
    with open(dev.proc.stdout_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    return recs


def platform_alarms(db, device_id):
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT dedup_key, count FROM alarms WHERE device_id=?",
                           (device_id,)).fetchall()
        batches = con.execute("SELECT COUNT(*) FROM alarm_batches WHERE device_id=?",
                              (device_id,)).fetchone()[0]
    finally:
        con.close()
    return dict(rows), batches


def test_platform_flaps(own_platform, sim_device, ntp):
    need_ntp(ntp)
    plat = own_platform()
    dev = sim_device(plat, config=api_config(ntp, restore_policy="last"))
    ready(dev)
    device_id = dev.cloud.device_id
    rng = random.Random(SEED)
    rest = RestSwitcher(dev, mint(dev.cloud), random.Random(rng.random()))
    desired = {}          # version -> r2 value
    last_of_down = []     # the newest version at the end of each down
    made_up = made_down = 0
    down_total = 0.0
    try:
        for cycle in range(CYCLES):
            if rng.random() < 0.5:  # a change just before the platform goes away
                value = rng.random() < 0.5
                r = dev.cloud.set_desired({"r2": value, "r9": True}, force=True)
                assert r.status == 200, r
                desired[r.json()["version"]] = value
                made_up += 1
            plat.stop()
            t0 = time.monotonic()
            store = Store(plat.db)  # the operator's change lands while the HTTP side is down
            try:
                for _ in range(rng.randint(0, 2)):
                    value = rng.random() < 0.5
                    v = store.set_desired(device_id, {"r2": value, "r9": True},
                                          int(time.time()))["version"]
                    desired[v] = value
                    made_down += 1
            finally:
                store.close()
            if desired:
                last_of_down.append(max(desired))
            time.sleep(max(0.0, rng.uniform(*PHASE_S) - (time.monotonic() - t0)))  # down
            down_total += time.monotonic() - t0
            plat.start()
            time.sleep(rng.uniform(*PHASE_S))  # up
    finally:
        rest.stop()
    last = max(desired)
    st = dev.wait_status(lambda s: s["desired_version"] == last, "desired version %d" % last,
                         timeout=30)
    r1_last = rest.acked[-1] if rest.acked else False
    st = dev.wait_status(lambda s: s["counters"]["alarms_buffered"] == 0 and
                         s["relays"] == {"r1": r1_last, "r2": desired[last]},
                         "every alarm delivered, r1 as last switched, r2 as last desired",
                         timeout=60)
    c = st["counters"]
    recs = stdout_records(dev)
    on_platform, batches = platform_alarms(plat.db, device_id)

    # alarms: delivered once or counted as dropped
    received = sum(n for k, n in on_platform.items() if k != "alarms.dropped")
    expected = c["alarms_raised"] - c["alarms_dropped"]
    duplicates = max(0, received - expected)
    lost = max(0, expected - received)
    applied = [r["version"] for r in recs if r.get("msg") == "desired state applied"]
    once = set(applied)

    # relays: every change commanded
    audit = [r for r in recs if r.get("audit") == "relay"]
    r1 = [a["new"] for a in audit if a["relay"] == "r1"]
    want_r1, prev = [], False
    for s in rest.acked:
        if s != prev:
            want_r1.append(s)
        prev = s
    uncommanded = [a for a in audit if a["relay"] == "r1" and a.get("subject") != "operator"] + \
        [a for a in audit if a["relay"] == "r2" and (a.get("source") != "desired" or
                                                     a["new"] not in
                                                     [desired[v] for v in once])] + \
        [a for a in audit if a["relay"] not in ("r1", "r2")]

    print("\n[flaps] %d cycles, %.1f s down in all; REST r1: %d answered 200, %d other, %d no"
          " answer; desired: %d set before a down, %d during, %d versions applied (%d distinct)"
          % (CYCLES, down_total, len(rest.acked), rest.other, rest.errors, made_up, made_down,
             len(applied), len(once)))
    print("[flaps] alarms: device raised %d, dropped %d, sent %d in %d batches (%d failed sends"
          " retried), buffered %d; platform received %d (+%d counted as dropped) in %d batch ids; duplicates %d,"
          " silent losses %d" % (c["alarms_raised"], c["alarms_dropped"], c["alarms_sent"],
                                 c["alarm_batches_sent"], c["alarm_send_failures"],
                                 c["alarms_buffered"], received,
                                 on_platform.get("alarms.dropped", 0), batches, duplicates,
                                 lost))
    superseded = len([v for v in set(last_of_down) if v not in once])
    print("[flaps] last version of each down: %d applied, %d superseded by a newer one"
          % (len(set(last_of_down)) - superseded, superseded))
    print("[flaps] state.unknown_relay on the platform %d, desired applications %d; relay"
          " changes r1 %d (REST %d), uncommanded %d; boots %d, resets %d, exits %s"
          % (on_platform.get("state.unknown_relay", 0), len(applied), len(r1), len(want_r1),
             len(uncommanded), st["boot"]["boots"], c["resets"], dev.exits))

    assert duplicates == 0 and lost == 0, on_platform
    assert on_platform.get("alarms.dropped", 0) == c["alarms_dropped"]
    assert batches == c["alarm_batches_sent"], "batch ids stored %d, sent %d" % (
        batches, c["alarm_batches_sent"])
    assert on_platform.get("state.unknown_relay", 0) == len(applied), \
        "one alarm per desired application"
    assert len(applied) == len(once), "a desired version applied twice: %s" % applied
    # a down's last version is applied after it, unless a newer one was already there to fetch
    not_applied = [v for v in last_of_down if v not in once and not any(w > v for w in once)]
    assert not not_applied, "desired versions never applied: %s" % not_applied
    assert r1 == want_r1, "r1 changes %s, REST answers changed it %s" % (r1, want_r1)
    assert not uncommanded, uncommanded
    assert len(rest.acked) > CYCLES, "too few REST switches to prove anything"
    assert st["boot"]["boots"] == 1 and c["resets"] == 0 and dev.exits == []
