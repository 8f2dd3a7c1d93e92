# Builds a /metrics page from a list of actions (JSON on stdin: the unix port
# refuses argv items over 255 bytes) and writes it to stdout; run by
# test_prometheus_format.py on MicroPython and on CPython.
import json
import sys

from iotlib.prometheus import Registry, RequestMetrics

actions = json.loads(sys.stdin.read())
reg = Registry((("tenant", actions["tenant"]), ("namespace", actions["namespace"])))
state = reg.gauge("relay_state", "Relay state, 1 = on.", ("relay",))
switches = reg.counter("relay_switches_total", "Relay switches.", ("relay",))
rejected = reg.counter("relay_rejections_total", "Switch requests the relay core refused.", ("reason",))
heap = reg.gauge("heap_free_bytes", "Free heap after a collection.")
uptime = reg.gauge("uptime_seconds", "Time since boot.")
odd = reg.counter("odd_labels_total", "Label values that need escaping: \\ and\nnewline.", ("v",))
requests = RequestMetrics(reg)

for relay, on in actions["switches"]:
    state.set(1 if on else 0, (relay,))
    switches.inc((relay,))
for reason in actions["rejections"]:
    rejected.inc((reason,))
for route, status, ms in actions["requests"]:
    requests.observe(route, status, ms)
for v in actions["odd"]:
    odd.inc((v,))
reg.on_collect(lambda: heap.set(actions["heap"]))
reg.on_collect(lambda: uptime.set(actions["uptime"]))

for chunk in reg.render():
    sys.stdout.write(chunk)
