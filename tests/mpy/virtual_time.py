# Virtual time for the manager tests: inside `with VirtualTime() as vt:` the asyncio loop never
# waits on the host clock; when every task sleeps, the clock jumps to the next wake-up (as the
# emulated RP2040 does when idle). A manager that reads ticks takes vt.ticks_ms, so it sees the
# same time as the loop. Time still runs at host speed in between, never backwards, so a task
# queued with the host's own ticks (asyncio's C queue does that) is always due.
import time

try:
    from asyncio import core
except ImportError:
    from uasyncio import core


class VirtualTime:
    def __init__(self):
        self.skipped_ms = 0  # idle time jumped over (and advance() calls)

    def ticks_ms(self):
        return time.ticks_add(time.ticks_ms(), self.skipped_ms)

    def advance(self, ms):
        # the time a busy caller would take, without taking it
        self.skipped_ms += ms

    def _wait_io_event(self, dt):
        if dt > 0:
            self.skipped_ms += dt
            dt = 0
        # dt < 0: no task is due and only sockets can wake one: wait on them for real
        self._real_wait(dt)

    def __enter__(self):
        self._saved_ticks = core.ticks
        self._real_wait = core._io_queue.wait_io_event
        core.ticks = self.ticks_ms
        core._io_queue.wait_io_event = self._wait_io_event
        return self

    def __exit__(self, *exc):
        core.ticks = self._saved_ticks
        core._io_queue.wait_io_event = self._real_wait
        return False
