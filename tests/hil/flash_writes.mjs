// Flash program and erase for rp2040js 1.4.1, and the host's view of the flash.
//
// Upstream, writes to the SSI's data register (peripherals/ssi.js, SSI_DR0) are dropped and
// every read of it answers 0, and IO_QSPI (0x40018000) is an UnimplementedPeripheral: its
// registers read 0xffffffff. The bootrom's flash routines (program_flash_generic.c, called by
// pico-sdk's flash_range_erase/flash_range_program) still "finish", only because
// flash_was_aborted() reads IO_QSPI's GPIO_QSPI_SD1_CTRL as all ones, so nothing is ever
// written: a file saved on the board's littlefs is gone at the next mount.
//
// How the chip does it, and what this models:
// - The bootrom and pico-sdk drive the flash's chip select by hand: IO_QSPI
//   GPIO_QSPI_SS_CTRL (offset 0x0c), field OUTOVER (bits 8-9): 2 drives CS low (selected),
//   3 high, 0 gives it back to the SSI. One CS-low stretch is one SPI flash command.
//   IO_QSPI here is a plain register file (so flash_was_aborted() reads 0), with SS_CTRL's
//   OUTOVER watched.
// - The SSI runs standard SPI with 8-bit frames, TX and RX (flash_init_spi): each byte
//   written to DR0 is clocked out and the byte clocked in lands in the RX FIFO, which DR0
//   reads pop (TXFLR 0: sent at once; RXFLR, SR.RFNE/RFF from the FIFO; disabling the SSI
//   through SSIENR empties it). Bytes clocked while CS is not forced low (boot stage 2, which
//   lets the SSI drive CS) reach no modelled flash and read 0, as upstream.
// - The flash: a 24-bit-address SPI NOR chip (Winbond W25Q-like) over all of `mcu.flash`:
//   06h write enable / 04h write disable (the WEL latch: program and erase need it and clear
//   it), 05h status (WEL in bit 1, never busy), 35h status 2 (QE set, as boot stage 2 leaves
//   it), 02h page program (ANDs the data into the page, wrapping within its 256 bytes, at CS
//   high), 20h / 52h / D8h erase of the 4 KB / 32 KB / 64 KB around the address and 60h / C7h
//   chip erase (to 0xff, at CS high), 03h read and 0Bh fast read from `mcu.flash`, 4Bh unique
//   id, 9Fh JEDEC id. Anything else is ignored. There is no busy time: program and erase are
//   done when CS goes high.
// - XIP reads: rp2040js reads `mcu.flash` directly (no XIP cache is modelled), so what is
//   programmed is what the next XIP read sees; the cache flush the bootrom does after is a
//   no-op here.
//
// Written as patches of one RP2040 instance's SSI and IO_QSPI so they can go upstream.

const SSI_CTRLR0 = 0x00;
const SSI_SSIENR = 0x08;
const SSI_TXFLR = 0x20;
const SSI_RXFLR = 0x24;
const SSI_SR = 0x28;
const SSI_DR0 = 0x60;
const SR_TFNF = 1 << 1;
const SR_TFE = 1 << 2;
const SR_RFNE = 1 << 3;
const SR_RFF = 1 << 4;
const TMOD_TX_ONLY = 1;
const RX_FIFO_DEPTH = 16;

const SS_CTRL = 0x0c;
const OUTOVER_LSB = 8;
const OUTOVER_LOW = 2;

const PAGE = 256;
const ERASE_SIZES = { 0x20: 4096, 0x52: 32768, 0xd8: 65536 };
const JEDEC_ID = [0xef, 0x40, 0x18]; // Winbond, SPI NOR, 2^24 bytes: the array modelled
const UNIQUE_ID = [0xe6, 0x60, 0x58, 0x38, 0x83, 0x2c, 0x31, 0x2a]; // a made-up, fixed id

// What the host sees and sets: `on` false gives upstream behaviour back (for the tests that
// show what is lost without this); the counters say what the board did.
export function newFlashState() {
  return { on: true, frames: 0, programs: 0, programmed: 0, erases: 0, erased: 0 };
}

// The SPI NOR chip: bytes of one CS-low frame in, the byte it answers out.
class SpiNorFlash {
  constructor(array, state) {
    this.array = array;
    this.state = state;
    this.wel = false;
    this.selected = false;
    this.frame = [];
    this.latch = new Int16Array(PAGE); // page program data, -1: not written
  }

  select(on) {
    if (on === this.selected) {
      return;
    }
    this.selected = on;
    if (on) {
      this.frame = [];
    } else {
      this.finish();
    }
  }

  // the 24-bit address after the command byte
  addr(f = this.frame) {
    return ((f[1] << 16) | (f[2] << 8) | f[3]) & (this.array.length - 1);
  }

  // One byte clocked while selected: the byte the chip drives back at the same time.
  exchange(byte) {
    const f = this.frame;
    const i = f.length;
    f.push(byte);
    if (i === 0) {
      if (byte === 0x02) {
        this.latch.fill(-1);
      }
      return 0;
    }
    switch (f[0]) {
      case 0x05:
        return this.wel ? 0x02 : 0x00;
      case 0x35:
        return 0x02;
      case 0x9f:
        return i <= JEDEC_ID.length ? JEDEC_ID[i - 1] : 0;
      case 0x4b:
        return i >= 5 && i < 5 + UNIQUE_ID.length ? UNIQUE_ID[i - 5] : 0;
      case 0x03:
        return i >= 4 ? this.array[(this.addr() + i - 4) & (this.array.length - 1)] : 0;
      case 0x0b:
        return i >= 5 ? this.array[(this.addr() + i - 5) & (this.array.length - 1)] : 0;
      case 0x02:
        if (i >= 4) {
          this.latch[(f[3] + i - 4) & (PAGE - 1)] = byte; // wraps within the page
        }
        return 0;
      default:
        return 0;
    }
  }

  // CS went high: the command takes effect.
  finish() {
    const f = this.frame;
    this.frame = [];
    if (!f.length) {
      return;
    }
    this.state.frames++;
    const cmd = f[0];
    if (cmd === 0x06) {
      this.wel = true;
    } else if (cmd === 0x04) {
      this.wel = false;
    } else if (cmd === 0x02 && f.length >= 4 && this.wel) {
      const page = this.addr(f) & ~(PAGE - 1);
      let n = 0;
      for (let k = 0; k < PAGE; k++) {
        if (this.latch[k] >= 0) {
          this.array[page + k] &= this.latch[k]; // programming only clears bits
          n++;
        }
      }
      this.wel = false;
      this.state.programs++;
      this.state.programmed += n;
    } else if (ERASE_SIZES[cmd] && f.length >= 4 && this.wel) {
      const size = ERASE_SIZES[cmd];
      const start = this.addr(f) & ~(size - 1);
      this.array.fill(0xff, start, start + size);
      this.wel = false;
      this.state.erases++;
      this.state.erased += size;
    } else if ((cmd === 0x60 || cmd === 0xc7) && this.wel) {
      this.array.fill(0xff);
      this.wel = false;
      this.state.erases++;
      this.state.erased += this.array.length;
    }
  }
}

// The patches, on one RP2040. Everything goes to upstream while `state.on` is false.
export function attachFlashWrites(mcu, state) {
  const chip = new SpiNorFlash(mcu.flash, state);
  const ssi = mcu.peripherals[0x18000];
  const ioQspi = mcu.peripherals[0x40018];
  const rx = [];
  const regs = new Map(); // IO_QSPI registers written, by offset

  const up = {
    ssiRead: ssi.readUint32.bind(ssi),
    ssiWrite: ssi.writeUint32.bind(ssi),
    qspiRead: ioQspi.readUint32.bind(ioQspi),
    qspiWrite: ioQspi.writeUint32.bind(ioQspi),
  };

  ssi.readUint32 = function readUint32(offset) {
    if (!state.on) {
      return up.ssiRead(offset);
    }
    switch (offset) {
      case SSI_TXFLR:
        return 0;
      case SSI_RXFLR:
        return rx.length;
      case SSI_SR:
        return SR_TFE | SR_TFNF | (rx.length ? SR_RFNE : 0) |
          (rx.length >= RX_FIFO_DEPTH ? SR_RFF : 0);
      case SSI_DR0:
        return rx.length ? rx.shift() : 0;
      default:
        return up.ssiRead(offset);
    }
  };
  ssi.writeUint32 = function writeUint32(offset, value) {
    if (!state.on) {
      up.ssiWrite(offset, value);
      return;
    }
    if (offset === SSI_DR0) {
      const back = chip.selected ? chip.exchange(value & 0xff) : 0;
      const tmod = (up.ssiRead(SSI_CTRLR0) >> 8) & 3;
      if (tmod !== TMOD_TX_ONLY && rx.length < RX_FIFO_DEPTH) {
        rx.push(back);
      }
      return;
    }
    if (offset === SSI_SSIENR && !(value & 1)) {
      rx.length = 0; // disabling the SSI clears its FIFOs
    }
    up.ssiWrite(offset, value);
  };

  ioQspi.readUint32 = function readUint32(offset) {
    if (!state.on) {
      return up.qspiRead(offset);
    }
    return regs.get(offset & 0xfff) ?? 0;
  };
  ioQspi.writeUint32 = function writeUint32(offset, value) {
    if (!state.on) {
      up.qspiWrite(offset, value);
      return;
    }
    regs.set(offset & 0xfff, value >>> 0);
    if ((offset & 0xfff) === SS_CTRL) {
      chip.select(((value >> OUTOVER_LSB) & 3) === OUTOVER_LOW);
    }
  };
  return chip;
}

const MAX_READ = 16 * 1024 * 1024;

// Commands added to the emulator's protocol.
export const FLASH_COMMANDS = {
  // flash_writes {on?}: on=false is upstream rp2040js (writes are lost); answers the state
  // and the counters (frames, programs, programmed bytes, erases, erased bytes) since the start
  flash_writes(b, req) {
    if (req.on !== undefined) {
      b.flashWrites.on = !!req.on;
    }
    return { ...b.flashWrites };
  },
  // flash_read {offset, length}: `hex` of that flash region as the board sees it now
  flash_read(b, req) {
    const { offset, length } = req;
    const size = b.mcu.flash.length;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 ||
        offset + length > size || length > MAX_READ) {
      throw new Error(`flash_read: offset and length must be integers within the ${size} bytes of flash`);
    }
    return { hex: Buffer.from(b.mcu.flash.subarray(offset, offset + length)).toString('hex') };
  },
};
