// Hardware-in-loop harness: one emulated RP2040 (rp2040js) running a UF2, driven by
// line-JSON commands on stdin, one JSON answer per line on stdout.
//
//   node emulator.mjs --npm DIR --uf2 FILE --bootrom FILE
//
// DIR holds node_modules/rp2040js. The bootrom file is the B1 bootrom as little-endian
// 32-bit words. Request: {"id":1,"cmd":"exec","code":"print(1)"}; answer:
// {"id":1,"ok":true,...} or {"id":1,"ok":false,"error":"..."}. Commands are listed in
// COMMANDS below. Time is counted in cycles of the fixed 125 MHz system clock from the
// first power-on, continuing across resets; nothing here reads the host clock, so every
// run is repeatable to the cycle.

import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { UART_COMMANDS, attachUart0, newUartState } from './uart_fixes.mjs'; // UART fixes
import { FLASH_COMMANDS, attachFlashWrites, newFlashState } from './flash_writes.mjs'; // flash writes

const NS_PER_CYCLE = 8; // 125 MHz
const FLASH_BASE = 0x10000000;
const MAX_LOG = 2_000_000;
const RAW_BANNER = 'raw REPL; CTRL-B to exit\r\n>';

// stdout carries the protocol only: anything a library prints goes to stderr
console.log = (...a) => console.error(...a);
console.info = console.log;

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) {
      out[argv[i].slice(2)] = argv[i + 1];
      i++;
    }
  }
  for (const k of ['npm', 'uf2', 'bootrom']) {
    if (!out[k]) {
      console.error(`emulator.mjs: missing --${k}`);
      process.exit(2);
    }
  }
  return out;
}

function loadUF2(file) {
  const data = fs.readFileSync(file);
  if (data.length % 512 !== 0 || data.length === 0) {
    throw new Error(`${file}: not a UF2 file (size ${data.length})`);
  }
  const blocks = [];
  let top = 0;
  for (let off = 0; off < data.length; off += 512) {
    const v = new DataView(data.buffer, data.byteOffset + off, 512);
    if (v.getUint32(0, true) !== 0x0a324655 || v.getUint32(4, true) !== 0x9e5d5157 ||
        v.getUint32(508, true) !== 0x0ab16f30) {
      throw new Error(`${file}: bad UF2 magic in block ${off / 512}`);
    }
    const flags = v.getUint32(8, true);
    if (flags & 1) {
      continue; // "not main flash"
    }
    const addr = v.getUint32(12, true);
    const size = v.getUint32(16, true);
    if (addr < FLASH_BASE || size > 476) {
      throw new Error(`${file}: block ${off / 512} targets 0x${addr.toString(16)}`);
    }
    const payload = data.subarray(off + 32, off + 32 + size);
    blocks.push([addr - FLASH_BASE, payload]);
    top = Math.max(top, addr - FLASH_BASE + size);
  }
  const image = new Uint8Array(top).fill(0xff);
  for (const [o, p] of blocks) {
    image.set(p, o);
  }
  return image;
}

function loadBootrom(file) {
  const buf = fs.readFileSync(file);
  if (buf.length !== 16384) {
    throw new Error(`${file}: bootrom must be 16384 bytes, got ${buf.length}`);
  }
  const words = new Uint32Array(4096);
  for (let i = 0; i < 4096; i++) {
    words[i] = buf.readUInt32LE(i * 4);
  }
  return words;
}

// GPIOPinState -> what the log and `pins` report: 0/1 driven, else the input's pull
const STATE_NAMES = [0, 1, 'in', 'pu', 'pd', 'bk'];

class HarnessError extends Error {}

class Board {
  constructor(lib, flashImage, bootrom) {
    this.lib = lib;
    this.flashImage = flashImage;
    this.bootrom = bootrom;
    this.baseNs = 0; // time of the current MCU's reset on the global timeline
    this.steps = 0; // instructions executed since power-on
    this.log = []; // [cycle, step, pin, state]
    this.logDropped = 0;
    this.resets = []; // watchdog resets seen
    this.driven = new Map(); // pin -> level driven by the host
    this.warnings = new Map();
    this.profile = null; // pc -> cycles while profiling
    this.profilePin = -1; // profile only while this pin is driven high (-1: always)
    this.profileGate = true;
    this.mcu = null;
    this.uart = newUartState(); // UART0's host end (uart_fixes.mjs)
    this.flashWrites = newFlashState(); // flash program/erase (flash_writes.mjs)
    this.powerOn(null);
  }

  get cycles() {
    return Math.round((this.baseNs + this.mcu.clock.nanos) / NS_PER_CYCLE);
  }

  get resetCycle() {
    return Math.round(this.baseNs / NS_PER_CYCLE);
  }

  // A fresh chip; `keep` carries the watchdog's scratch registers and REASON over a
  // watchdog reset (the rest of the chip, USB included, starts over). Flash keeps what the
  // board wrote to it: the UF2's image only on the first power-on.
  powerOn(keep) {
    const { RP2040, USBCDC } = this.lib;
    const flash = this.mcu ? this.mcu.flash : this.flashImage;
    if (this.mcu) {
      this.baseNs += this.mcu.clock.nanos;
    }
    const mcu = new RP2040();
    mcu.logger = {
      debug() {},
      info() {},
      warn: (name, msg) => this.warn(name, msg),
      error: (name, msg) => this.warn(name, `error: ${msg}`),
    };
    mcu.loadBootrom(this.bootrom); // also resets, which erases flash: load flash after
    mcu.flash.set(flash);
    const wd = mcu.peripherals[0x40058];
    if (keep) {
      wd.scratchData.set(keep.scratch);
      wd.reason = keep.reason;
    }
    wd.onWatchdogTrigger = () => {
      // Called inside an instruction or a clock alarm: reset between instructions. Stop
      // the counter now, as the chip's reset would: left running at 0, rp2040js re-arms
      // its alarm for the same instant and the clock never advances again.
      wd.alarm.enable = false;
      wd.timer.enable = false;
      if (!this.resetPending) {
        this.resetPending = { cycle: this.cycles, reason: wd.reason };
      }
    };
    attachUart0(mcu, this.uart, () => { this.wake = true; }); // UART fixes (uart_fixes.mjs)
    attachFlashWrites(mcu, this.flashWrites); // flash program/erase (flash_writes.mjs)
    this.mcu = mcu;
    this.resetPending = null;
    this.wake = false;
    this.rx = ''; // everything the board sent on the CDC since this reset
    this.rxRead = 0;
    this.tx = []; // bytes waiting for the board to read them
    this.pendingReads = [];
    this.connected = false;
    this.repl = 'unknown';

    const cdc = new USBCDC(mcu.usbCtrl);
    this.cdc = cdc;
    cdc.onDeviceConnected = () => {
      this.connected = true;
      this.wake = true;
    };
    cdc.onSerialData = (buf) => {
      this.rx += Buffer.from(buf).toString('latin1');
      this.wake = true;
    };
    // rp2040js answers every OUT read at once, with an empty packet when it has no data,
    // which keeps the USB interrupt busy; a real host NAKs until it has data to send.
    const usb = mcu.usbCtrl;
    const cdcRead = usb.onEndpointRead;
    usb.onEndpointRead = (ep, size) => {
      if (ep !== cdc.outEndpoint) {
        cdcRead(ep, size);
        return;
      }
      this.pendingReads.push([ep, size]);
      this.serveReads();
    };

    const c = this.cycles;
    mcu.gpio.forEach((g, i) => {
      // rp2040js takes lastValue before the pad defaults are set: start from the real state
      g.lastValue = g.value;
      this.record(i, STATE_NAMES[g.value], c); // every pin's state at (each) reset
      this.updateInput(i);
      g.addListener((value) => {
        this.record(i, STATE_NAMES[value]);
        if (i === this.profilePin) {
          this.profileGate = value === 1;
        }
        if (!this.driven.has(i)) {
          this.updateInput(i);
        }
        this.wake = true;
      });
    });
    mcu.core.PC = FLASH_BASE; // boot stage 2 at the start of flash, as the bootrom would
  }

  warn(name, msg) {
    const key = `${name}: ${msg}`;
    const n = this.warnings.get(key) || 0;
    this.warnings.set(key, n + 1);
    if (n === 0 && this.warnings.size <= 50) {
      console.error(`[rp2040js] ${key}`);
    }
  }

  record(pin, state, cycle = this.cycles) {
    if (this.log.length >= MAX_LOG) {
      this.logDropped++;
      return;
    }
    this.log.push([cycle, this.steps, pin, state]);
  }

  // An undriven pin reads what the pad sees: its own output, else its pull.
  updateInput(i) {
    const g = this.mcu.gpio[i];
    const level = this.driven.get(i);
    if (level !== undefined) {
      g.setInputValue(!!level);
      return;
    }
    const v = g.value;
    if (v === 0 || v === 1) {
      g.setInputValue(!!v);
    } else if (v === 3) {
      g.setInputValue(true);
    } else if (v === 4) {
      g.setInputValue(false);
    } // floating or bus keeper: keeps the last level
  }

  serveReads() {
    while (this.pendingReads.length && this.tx.length) {
      const [ep, size] = this.pendingReads.shift();
      const n = Math.min(size, this.tx.length);
      const buf = Uint8Array.from(this.tx.splice(0, n));
      this.mcu.usbCtrl.endpointReadDone(ep, buf);
    }
  }

  send(str) {
    for (let i = 0; i < str.length; i++) {
      this.tx.push(str.charCodeAt(i) & 0xff);
    }
    if (this.connected) {
      this.serveReads();
    }
  }

  doReset() {
    const p = this.resetPending;
    const wd = this.mcu.peripherals[0x40058];
    const keep = { scratch: Uint32Array.from(wd.scratchData), reason: wd.reason };
    const lostTx = this.tx.length;
    const bootCycles = p.cycle - this.resetCycle;
    this.powerOn(keep);
    const ev = {
      cycle: p.cycle,
      since_reset: bootCycles,
      reason: p.reason === 1 ? 'timer' : p.reason === 2 ? 'force' : String(p.reason),
      scratch: Array.from(keep.scratch),
      lost_tx: lostTx,
    };
    this.resets.push(ev);
    return ev;
  }

  // Runs at most maxCycles. `until` is asked after each serial, pin or reset event and
  // returns true to stop. Returns 'until' or 'limit'.
  run(maxCycles, until = null) {
    if (!(maxCycles >= 0)) {
      throw new HarnessError(`bad cycle count ${maxCycles}`);
    }
    const endNs = this.baseNs + this.mcu.clock.nanos + maxCycles * NS_PER_CYCLE;
    for (;;) {
      const mcu = this.mcu;
      const core = mcu.core;
      const clock = mcu.clock;
      const localEnd = endNs - this.baseNs;
      while (!this.resetPending) {
        if (this.wake) {
          this.wake = false;
          if (until && until()) {
            return 'until';
          }
        }
        const now = clock.nanos;
        if (now >= localEnd) {
          return 'limit';
        }
        if (core.waiting) {
          // sleeping (WFI/WFE): jump to the next timer event, within the budget
          const dn = clock.nextAlarm ? Math.max(0, clock.nanosToNextAlarm) : Infinity;
          clock.tick(Math.min(dn, localEnd - now));
        } else if (this.profile && this.profileGate) {
          const pc = core.PC;
          const c = core.executeInstruction();
          this.profile.set(pc, (this.profile.get(pc) || 0) + c);
          this.steps++;
          clock.tick(c * NS_PER_CYCLE);
        } else {
          const c = core.executeInstruction();
          this.steps++;
          clock.tick(c * NS_PER_CYCLE);
        }
      }
      this.doReset();
      this.wake = false;
      if (until && until({ reset: true })) {
        return 'until';
      }
    }
  }

  waitConnected(maxCycles) {
    if (this.connected) {
      return;
    }
    this.run(maxCycles, () => this.connected);
    if (!this.connected) {
      throw new HarnessError(`USB CDC not connected after ${maxCycles} cycles`);
    }
  }

  // Text the board sent from `mark` on, waiting until `pred(text)` holds.
  waitText(mark, pred, maxCycles, what) {
    const start = this.resets.length;
    let reset = false;
    const r = this.run(maxCycles, (ev) => {
      if (ev && ev.reset) {
        reset = true;
        return true;
      }
      return pred(this.rx.slice(mark));
    });
    if (reset) {
      const e = new HarnessError(`board reset while waiting for ${what}`);
      e.reset = this.resets[start];
      throw e;
    }
    if (r !== 'until') {
      const e = new HarnessError(`timeout after ${maxCycles} cycles waiting for ${what}; got ${JSON.stringify(this.rx.slice(mark).slice(-400))}`);
      e.timeout = true;
      throw e;
    }
    return this.rx.slice(mark);
  }

  enterRaw(maxCycles) {
    this.waitConnected(maxCycles);
    const mark = this.rx.length;
    // interrupt whatever runs, then Ctrl-A
    this.send('\r\x03\x03\x01');
    this.waitText(mark, (t) => t.endsWith(RAW_BANNER) || t.includes(RAW_BANNER), maxCycles, 'the raw REPL');
    // anything after the banner is noise from before the switch
    this.repl = 'raw';
  }

  // Runs `code` in the raw REPL: {out, err, cycles}. A reset during the run is reported,
  // not thrown.
  exec(code, maxCycles) {
    const t0 = this.cycles;
    const resets0 = this.resets.length;
    if (this.repl !== 'raw') {
      this.enterRaw(maxCycles);
    }
    const mark = this.rx.length;
    this.send(code.replace(/\x04/g, '') + '\x04');
    const done = (t) => {
      if (t.length >= 2 && !t.startsWith('OK')) {
        return true; // a raw REPL error, e.g. no prompt
      }
      const a = t.indexOf('\x04', 2);
      if (a < 0) return false;
      const b = t.indexOf('\x04', a + 1);
      return b >= 0 && t.length > b + 1;
    };
    let text;
    try {
      text = this.waitText(mark, done, maxCycles - (this.cycles - t0), 'the end of exec');
    } catch (e) {
      if (e.reset) {
        this.repl = 'unknown';
        return {
          out: this.partial(mark), err: '', reset: e.reset,
          cycles: this.cycles - t0, resets: this.resets.slice(resets0),
        };
      }
      if (e.timeout) {
        // stop the code so the next command finds a prompt
        const partial = this.partial(mark);
        this.repl = 'unknown';
        try {
          this.enterRaw(5_000_000);
        } catch (e2) {
          // left for the next command to report
        }
        throw new HarnessError(`exec did not finish within ${maxCycles} cycles; output so far: ${JSON.stringify(partial.slice(-400))}`);
      }
      throw e;
    }
    if (!text.startsWith('OK')) {
      this.repl = 'unknown';
      throw new HarnessError(`raw REPL did not accept the code: ${JSON.stringify(text.slice(0, 200))}`);
    }
    const a = text.indexOf('\x04', 2);
    const b = text.indexOf('\x04', a + 1);
    return {
      out: text.slice(2, a).replace(/\r\n/g, '\n'),
      err: text.slice(a + 1, b).replace(/\r\n/g, '\n'),
      cycles: this.cycles - t0,
      resets: this.resets.slice(resets0),
    };
  }

  partial(mark) {
    return this.rx.slice(mark).replace(/^OK/, '').replace(/\r\n/g, '\n');
  }

  pinStates() {
    return this.mcu.gpio.map((g) => STATE_NAMES[g.value]);
  }
}

function need(req, key, type) {
  const v = req[key];
  if (typeof v !== type) {
    throw new HarnessError(`${req.cmd}: "${key}" must be a ${type}`);
  }
  return v;
}

function pinArg(req, key = 'pin') {
  const p = need(req, key, 'number');
  if (!Number.isInteger(p) || p < 0 || p > 29) {
    throw new HarnessError(`${req.cmd}: pin ${p} out of range 0..29`);
  }
  return p;
}

const DEFAULT_LIMIT = 50_000_000; // 0.4 s emulated

const COMMANDS = {
  // status: time, resets, USB and REPL state
  status(b) {
    return {
      cycles: b.cycles, reset_cycle: b.resetCycle, steps: b.steps,
      connected: b.connected, repl: b.repl, resets: b.resets,
      log_len: b.log.length, log_dropped: b.logDropped, warnings: b.warnings.size,
    };
  },
  // warnings: what rp2040js logged (unmodelled registers and the like), with counts
  warnings(b) {
    return { warnings: Object.fromEntries(b.warnings) };
  },
  // run {cycles}: let the board run
  run(b, req) {
    b.run(need(req, 'cycles', 'number'));
    return { cycles: b.cycles };
  },
  // prompt {max_cycles}: wait for USB, press Enter, wait for the friendly prompt
  prompt(b, req) {
    const limit = req.max_cycles ?? DEFAULT_LIMIT;
    const t0 = b.cycles;
    b.waitConnected(limit);
    const connectedAt = b.cycles - b.resetCycle;
    const mark = b.rx.length;
    b.send('\r');
    b.waitText(mark, (t) => t.includes('>>> '), limit, 'the >>> prompt');
    b.repl = 'friendly';
    return {
      cycles: b.cycles, since_reset: b.cycles - b.resetCycle,
      connected_since_reset: connectedAt, waited: b.cycles - t0, banner: b.rx,
    };
  },
  // exec {code, max_cycles}: run code in the raw REPL
  exec(b, req) {
    const r = b.exec(need(req, 'code', 'string'), req.max_cycles ?? DEFAULT_LIMIT);
    return { ...r, end: b.cycles };
  },
  // write {data}: raw bytes (latin1 string) to the CDC; read: what came since last read
  write(b, req) {
    b.send(need(req, 'data', 'string'));
    b.repl = 'unknown';
    return {};
  },
  read(b) {
    const t = b.rx.slice(b.rxRead);
    b.rxRead = b.rx.length;
    return { data: t };
  },
  // wait_text {text, max_cycles}: wait until the board has sent `text` since the last read
  wait_text(b, req) {
    const text = need(req, 'text', 'string');
    const mark = b.rxRead;
    const t = b.waitText(mark, (s) => s.includes(text), req.max_cycles ?? DEFAULT_LIMIT, JSON.stringify(text));
    b.rxRead = b.rx.length;
    return { data: t, cycles: b.cycles };
  },
  // pins: the state of every pin (0/1 driven, 'in'/'pu'/'pd'/'bk' input), and what the host drives
  pins(b) {
    return { pins: b.pinStates(), driven: Object.fromEntries(b.driven), cycles: b.cycles };
  },
  // drive {pin, level}: drive an input (0/1), or release it (null)
  drive(b, req) {
    const pin = pinArg(req);
    const level = req.level;
    if (level === null || level === undefined) {
      b.driven.delete(pin);
    } else if (level === 0 || level === 1) {
      b.driven.set(pin, level);
    } else {
      throw new HarnessError(`drive: level must be 0, 1 or null`);
    }
    b.updateInput(pin);
    return { cycles: b.cycles };
  },
  // drive_seq {pin, steps: [[level, cycles], ...]}: drive each level for its cycles
  drive_seq(b, req) {
    const pin = pinArg(req);
    const steps = req.steps;
    if (!Array.isArray(steps) || steps.length > 10000) {
      throw new HarnessError('drive_seq: steps must be a list of [level, cycles]');
    }
    const at = [];
    for (const [level, cycles] of steps) {
      if (level !== 0 && level !== 1) {
        throw new HarnessError('drive_seq: level must be 0 or 1');
      }
      b.driven.set(pin, level);
      b.updateInput(pin);
      at.push(b.cycles);
      b.run(cycles);
    }
    return { at, cycles: b.cycles };
  },
  // wait_pin {pin, state, max_cycles}: run until the pin is in `state`
  wait_pin(b, req) {
    const pin = pinArg(req);
    const want = req.state;
    const limit = req.max_cycles ?? DEFAULT_LIMIT;
    const is = () => STATE_NAMES[b.mcu.gpio[pin].value] === want;
    const t0 = b.cycles;
    const r = is() ? 'until' : b.run(limit, is);
    if (r !== 'until') {
      throw new HarnessError(`pin ${pin} not ${JSON.stringify(want)} within ${limit} cycles (is ${JSON.stringify(STATE_NAMES[b.mcu.gpio[pin].value])})`);
    }
    return { cycles: b.cycles, waited: b.cycles - t0 };
  },
  // wait_reset {max_cycles}: run until the next watchdog reset
  wait_reset(b, req) {
    const limit = req.max_cycles ?? DEFAULT_LIMIT;
    const n = b.resets.length;
    const r = b.run(limit, (ev) => !!(ev && ev.reset));
    if (r !== 'until' || b.resets.length === n) {
      throw new HarnessError(`no reset within ${limit} cycles`);
    }
    return { reset: b.resets[n], cycles: b.cycles };
  },
  // profile {on, pin?}: on=true starts counting cycles by instruction address (sleep
  // not included), with `pin` only while that pin is driven high; on=false stops and
  // answers `pcs`: [[address, cycles], ...]
  profile(b, req) {
    if (req.on) {
      b.profilePin = req.pin === undefined || req.pin === null ? -1 : pinArg(req);
      b.profileGate = b.profilePin < 0 || b.mcu.gpio[b.profilePin].value === 1;
      b.profile = new Map();
      return {};
    }
    const pcs = b.profile ? Array.from(b.profile.entries()) : [];
    b.profile = null;
    return { pcs };
  },
  // log {pins?, since?}: pin transitions [cycle, step, pin, state] since power-on
  log(b, req) {
    const pins = req.pins ? new Set(req.pins) : null;
    const since = req.since ?? 0;
    const out = b.log.filter((e) => e[0] >= since && (!pins || pins.has(e[2])));
    return { log: out, dropped: b.logDropped, cycles: b.cycles };
  },
  // power_on: a cold start (scratch registers cleared, log and resets kept)
  power_on(b) {
    b.resetPending = { cycle: b.cycles, reason: 0 };
    const keep = { scratch: new Uint32Array(8), reason: 0 };
    b.powerOn(keep);
    b.resetPending = null;
    return { cycles: b.cycles };
  },
  // watchdog: the watchdog block as the firmware left it
  watchdog(b) {
    const wd = b.mcu.peripherals[0x40058];
    return { enabled: wd.enable, reason: wd.reason, scratch: Array.from(wd.scratchData) };
  },
};

Object.assign(COMMANDS, UART_COMMANDS); // uart, uart_fixes (uart_fixes.mjs)
Object.assign(COMMANDS, FLASH_COMMANDS); // flash_writes, flash_read (flash_writes.mjs)

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const entry = path.join(args.npm, 'node_modules', 'rp2040js', 'dist', 'esm', 'index.js');
  if (!fs.existsSync(entry)) {
    console.error(`emulator.mjs: rp2040js not installed under ${args.npm}`);
    process.exit(2);
  }
  const lib = await import(pathToFileURL(entry).href);
  const pkg = JSON.parse(fs.readFileSync(path.join(args.npm, 'node_modules', 'rp2040js', 'package.json'), 'utf8'));
  const board = new Board(lib, loadUF2(args.uf2), loadBootrom(args.bootrom));
  const reply = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
  reply({ id: 0, ok: true, ready: true, rp2040js: pkg.version, flash_bytes: board.flashImage.length });

  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      reply({ id: null, ok: false, error: `bad JSON: ${e.message}` });
      continue;
    }
    if (req.cmd === 'quit') {
      reply({ id: req.id, ok: true });
      break;
    }
    const fn = COMMANDS[req.cmd];
    if (!fn) {
      reply({ id: req.id, ok: false, error: `unknown command ${JSON.stringify(req.cmd)}` });
      continue;
    }
    try {
      reply({ id: req.id, ok: true, ...fn(board, req) });
    } catch (e) {
      if (!(e instanceof HarnessError)) {
        console.error(e.stack);
      }
      reply({ id: req.id, ok: false, error: e.message, cycles: board.cycles });
    }
  }
  process.exit(0);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
