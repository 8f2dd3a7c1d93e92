# A short live demo of the relay core on the unix build's simulated board:
# a pulse, an interlock change-over and a debounced button, in real time.
# Run with: make run
import time

try:
    import relaygpio
except ImportError:
    import pyrelaygpio as relaygpio

PINS = (2, 3, 4, 5)  # relay 0: pump, 1: motor forward, 2: motor reverse, 3: lamp
NAMES = ("pump", "fwd", "rev", "lamp")
BUTTON = 10

bank = relaygpio.Bank(PINS, active_low=0b1000)  # the lamp's module is active-low
bank.min_interval(0, 50)
bank.interlock(0b0110, 300)  # forward and reverse never together, 300 ms dead time
button = bank.input(BUTTON, debounce_ms=30, toggles=3)
t0 = time.ticks_ms()
last = None


def show(event):
    global last
    levels = "".join(str(bank.sim_level(p)) for p in PINS)
    states = " ".join("%s=%s" % (n, "ON " if bank.get(i) else "off") for i, n in enumerate(NAMES))
    m = bank.metrics()
    line = "%s  pins %s  sw=%s rej=%d def=%d pulses=%d edges=%d" % (
        states, levels, m["switches"], m["rejected_interval"], m["deferred"],
        m["pulses_expired"], m["input_edges"])
    if event or line != last:
        print("%5d ms  %-42s %s" % (time.ticks_diff(time.ticks_ms(), t0), event or "", line))
    last = line


def run_for(ms):
    end = time.ticks_add(time.ticks_ms(), ms)
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        if bank.tick():
            show("tick")
        else:
            show(None)
        time.sleep_ms(1)


print("relaygpio %s on a simulated board: relays %s on pins %s, button on pin %d" % (
    relaygpio.IMPL, NAMES, PINS, BUTTON))
show("power-on (all off, lamp pin high: active-low)")
show("pump pulse 200 ms -> %s" % relaygpio.REASONS[bank.pulse(0, 200)])
show("pump off at once (50 ms interval) -> %s" % relaygpio.REASONS[bank.set(0, 0)])
run_for(300)
show("motor forward -> %s" % relaygpio.REASONS[bank.set(1, 1)])
run_for(100)
show("motor reverse -> %s" % relaygpio.REASONS[bank.set(2, 1)])
run_for(400)
bank.sim_drive(BUTTON, 0)
show("button bounces (10 ms)")
run_for(10)
bank.sim_drive(BUTTON, 1)
run_for(50)
bank.sim_drive(BUTTON, 0)
show("button pressed and held")
run_for(100)
bank.sim_drive(BUTTON, 1)
show("button released")
run_for(100)
m = bank.metrics()
print("done: %d ticks (%d late), %d register writes, switches per relay %s" % (
    m["ticks"], m["late_ticks"], m["writes"], m["switches"]))
bank.deinit()
