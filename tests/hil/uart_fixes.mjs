// Two fixes to rp2040js 1.4.1's UART model (peripherals/uart.js), and the host's end of UART0.
//
// Both fixes are written as small patches of one RPUART instance so they can go upstream as
// they are (the comments name the upstream lines):
//
// 1. TX interrupt. Upstream `checkInterrupts()` sets UARTTXINTR every time it runs, so right
//    after the firmware clears it through UARTICR it is raised again. MicroPython's rp2 UART
//    keeps TXIM enabled (pico-sdk uart_set_irqs_enabled), so its handler runs forever and
//    `machine.UART(0, ...)` never returns. The chip raises TXINTR when the TX FIFO drains to
//    its trigger level, i.e. when a byte leaves; this model sends a byte the moment it is
//    written to UARTDR, so TXINTR is raised on each UARTDR write and nowhere else.
// 2. Receive timeout. Upstream never raises UARTRTINTR. The chip raises it when the RX FIFO
//    holds data and nothing more arrived for 32 bit periods; it clears when the FIFO is read
//    empty or through UARTICR. MicroPython's `UART.IRQ_RXIDLE` is this interrupt, and
//    `network.PPP` reads the UART only from that IRQ.
// 3. RX interrupt level. Upstream raises UARTRXINTR for every byte received and keeps it while
//    the FIFO is not empty, and does not model UARTIFLS. The chip raises it when the FIFO
//    holds at least the RXIFLSEL trigger level (4/8/16/24/28 of 32; 1 with the FIFO off).
//    Without this the RX handler empties the FIFO byte by byte, so fix 2 never sees data
//    waiting and IRQ_RXIDLE still never fires.
//
// The host side: bytes for the board are fed at the line rate (one per 10 bit periods), and
// held while the RX FIFO is full, as RTS/CTS flow control would; bytes the board sends are
// collected for the `uart` command.

const UARTDR = 0x0;
const UARTIFLS = 0x34;
const FEN = 1 << 4;
const RX_LEVELS = [4, 8, 16, 24, 28];
const UARTRXINTR = 1 << 4;
const UARTTXINTR = 1 << 5;
const UARTRTINTR = 1 << 6;
const NS_PER_CYCLE = 8;

// The fixes, on one RPUART. `state.fixes` false gives upstream behaviour back, and
// `state.rxFixes` false keeps only fix 1 (for the tests that show what fails without them).
export function applyUartFixes(uart, clock, state) {
  const upstream = {
    checkInterrupts: uart.checkInterrupts.bind(uart),
    writeUint32: uart.writeUint32.bind(uart),
    readUint32: uart.readUint32.bind(uart),
    feedByte: uart.feedByte.bind(uart),
  };
  const bitNs = () => 1e9 / Math.max(uart.baudRate || 0, 1);
  let ifls = 0x12; // reset value: both trigger levels at 1/2
  // fix 3: UARTRXINTR follows the FIFO level against the trigger level
  const rxLevel = () => {
    if (!(uart.lineCtrlRegister & FEN)) {
      return 1;
    }
    return RX_LEVELS[Math.min((ifls >> 3) & 7, 4)];
  };
  const updateRx = () => {
    if (uart.rxFIFO.itemCount >= rxLevel()) {
      uart.interruptStatus |= UARTRXINTR;
    } else {
      uart.interruptStatus &= ~UARTRXINTR;
    }
  };

  uart.checkInterrupts = function checkInterrupts() {
    if (!state.fixes) {
      upstream.checkInterrupts();
      return;
    }
    // fix 1: no unconditional UARTTXINTR here
    this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
  };
  uart.writeUint32 = function writeUint32(offset, value) {
    if (state.fixes && state.rxFixes && offset === UARTIFLS) {
      ifls = value & 0x3f; // fix 3
      updateRx();
      this.checkInterrupts();
      return;
    }
    upstream.writeUint32(offset, value);
    if (state.fixes && offset === UARTDR) {
      this.interruptStatus |= UARTTXINTR; // fix 1: the byte has left
      this.checkInterrupts();
    }
  };
  const rtAlarm = clock.createAlarm(() => {
    if (state.fixes && state.rxFixes && !uart.rxFIFO.empty) {
      uart.interruptStatus |= UARTRTINTR; // fix 2: the line has been idle 32 bit periods
      uart.checkInterrupts();
    }
  });
  uart.feedByte = function feedByte(value) {
    upstream.feedByte(value);
    if (state.fixes && state.rxFixes) {
      updateRx(); // fix 3
      this.checkInterrupts();
      rtAlarm.schedule(32 * bitNs());
    }
  };
  uart.readUint32 = function readUint32(offset) {
    if (state.fixes && state.rxFixes && offset === UARTIFLS) {
      return ifls;
    }
    const v = upstream.readUint32(offset);
    if (state.fixes && state.rxFixes && offset === UARTDR) {
      updateRx(); // fix 3
      if (this.rxFIFO.empty) {
        this.interruptStatus &= ~UARTRTINTR; // fix 2: read empty
      }
      this.checkInterrupts();
    }
    return v;
  };
  return { bitNs };
}

// The host's end of UART0 for one chip: `state` survives resets (what is queued for the board
// and what it sent), the chip-side hooks are made again on every power-on.
export function newUartState() {
  return { fixes: true, rxFixes: true, toBoard: [], fromBoard: [], fed: 0, sent: 0 };
}

export function attachUart0(mcu, state, wakeFn) {
  const uart = mcu.uart[0];
  const { bitNs } = applyUartFixes(uart, mcu.clock, state);
  uart.onByte = (b) => {
    state.fromBoard.push(b);
    state.sent++;
    wakeFn();
  };
  const feeder = mcu.clock.createAlarm(() => {
    // rp2040js's clock leaves `scheduled` true after an alarm fired: say it is not
    feeder.scheduled = false;
    if (state.toBoard.length && !uart.rxFIFO.full && uart.enabled && uart.rxEnabled) {
      uart.feedByte(state.toBoard.shift());
      state.fed++;
    }
    if (state.toBoard.length) {
      feeder.schedule(10 * bitNs());
    }
  });
  state.kick = () => {
    if (!feeder.scheduled) {
      feeder.schedule(10 * bitNs());
    }
  };
  if (state.toBoard.length) {
    state.kick();
  }
}

// Commands added to the emulator's protocol.
export const UART_COMMANDS = {
  // uart {hex?, cycles?}: queue bytes (hex) for the board's UART0 RX, run `cycles` (default
  // 0), answer `hex`: what the board sent on UART0 TX since the last call (hex keeps the
  // line-JSON protocol ASCII)
  uart(b, req) {
    const s = b.uart;
    if (req.hex !== undefined) {
      if (typeof req.hex !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(req.hex)) {
        throw new Error('uart: "hex" must be a string of hex byte pairs');
      }
      for (const b of Buffer.from(req.hex, 'hex')) {
        s.toBoard.push(b);
      }
      s.kick();
    }
    const cycles = req.cycles ?? 0;
    if (cycles > 0) {
      b.run(cycles);
    }
    const out = Buffer.from(s.fromBoard.splice(0)).toString('hex');
    return { hex: out, pending: s.toBoard.length, cycles: b.cycles, ns: b.cycles * NS_PER_CYCLE };
  },
  // uart_fixes {on, rx?}: on=false is upstream rp2040js; rx=false keeps only fix 1 (TX)
  uart_fixes(b, req) {
    b.uart.fixes = !!req.on;
    b.uart.rxFixes = req.rx === undefined ? true : !!req.rx;
    return { on: b.uart.fixes, rx: b.uart.rxFixes };
  },
};
