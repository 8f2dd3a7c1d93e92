#!/usr/bin/env bash
# Fails early, naming what is missing, when a board needs MicroPython submodules
# that this MicroPython tree does not have (the Debian source ships lib/* empty).
set -eu
mpy=$1 board=$2
bdir=$mpy/ports/rp2/boards/$board
[ -d "$bdir" ] || { echo "error: no board $board in $mpy/ports/rp2/boards" >&2; exit 1; }
need=(lib/pico-sdk lib/tinyusb)
cm=$bdir/mpconfigboard.cmake
grep -q 'MICROPY_PY_NETWORK_CYW43 ON' "$cm" && need+=(lib/cyw43-driver)
grep -q 'MICROPY_PY_LWIP ON' "$cm" && need+=(lib/lwip)
grep -q 'MICROPY_BLUETOOTH_BTSTACK ON' "$cm" && need+=(lib/btstack)
for d in "${need[@]}"; do
    if [ -z "$(ls -A "$mpy/$d" 2>/dev/null)" ]; then
        echo "error: BOARD=$board needs the MicroPython submodule $d, which is empty in $mpy." >&2
        echo "       Build it from a full upstream checkout:" >&2
        echo "       make firmware BOARD=$board MPY_DIR=/path/to/micropython   (after: git submodule update --init $d)" >&2
        exit 1
    fi
done
