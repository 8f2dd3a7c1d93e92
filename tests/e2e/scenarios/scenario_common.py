# Shared by the scenario scripts the e2e driver runs on the MicroPython unix build:
# the driver writes a JSON file of settings (argv[1]); a scenario prints
# "RESULT {json}" lines and waits for the driver through marker files.
import json
import os
import sys
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib import logger
from iotlib.auth_manager import AuthManager

RESET_EXIT = 3  # the process ends as a board would reset


def settings():
    with open(sys.argv[1]) as f:
        return json.load(f)


def result(event, **fields):
    fields["event"] = event
    print("RESULT " + json.dumps(fields))


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def mark(cfg, name):
    with open(cfg["ctrl_dir"] + "/" + name, "w") as f:
        f.write("1")


async def wait_mark(cfg, name, timeout_ms=30000):
    t0 = time.ticks_ms()
    while not exists(cfg["ctrl_dir"] + "/" + name):
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            raise OSError("timed out waiting for " + name)
        await asyncio.sleep_ms(20)


async def wait_until(cond, timeout_ms):
    t0 = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            return False
        await asyncio.sleep_ms(20)
    return True


def auth_for(cfg):
    return AuthManager(cfg["device_id"], cfg["device_key"], cfg["platform_url"])


def log(name):
    return logger.get(name)
