# Runs RelayGPIOManager's persistence on the unix build with no coalescing, so a SIGKILL from
# the test lands during a state write.
#   state_writer.py write DIR    switch relays and persist each change, forever
#   state_writer.py restore DIR  boot a manager from DIR (restore_policy last), print its states
import json
import sys

from iotlib import logger
from iotlib.relay_gpio_manager import RelayGPIOManager

logger.setup(echo=False)
mode, data_dir = sys.argv[1], sys.argv[2]
cfg = {"relays": {}, "restore_policy": "last"}
for i in range(16):
    cfg["relays"]["relay_%02d" % i] = {"pin": i}
m = RelayGPIOManager(data_dir, persist_min_ms=0)
m.start(cfg)
if mode == "restore":
    print(json.dumps(m.states()))
else:
    n = m.persist_writes
    print("writing")
    k = 0
    while True:
        k += 1
        m.write({"relay_%02d" % i: bool((k * 2654435761) >> i & 1) for i in range(16)},
                source="test")
        m.flush()
