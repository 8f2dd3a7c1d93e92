#!/usr/bin/env bash
# Fails when a firmware's code reaches into its own filesystem. On a board the first boot
# would then find no valid filesystem there and format it over the firmware's tail. The
# figures come from the UF2's binary info, as picotool reads them (binary end; the
# "MicroPython" embedded drive that rp2_flash.c declares from MICROPY_HW_FLASH_STORAGE_BYTES).
# Usage: tools/check_flash_layout.sh PICOTOOL FIRMWARE.uf2
set -eu
picotool=$1 uf2=$2
info=$("$picotool" info -a "$uf2")
end=$(sed -n 's/^ *binary end: *\(0x[0-9a-fA-F]*\).*/\1/p' <<<"$info")
drive=$(sed -n 's/^ *embedded drive: *\(0x[0-9a-fA-F]*\)-\(0x[0-9a-fA-F]*\).*/\1 \2/p' <<<"$info")
if [ -z "$end" ] || [ -z "$drive" ]; then
    echo "error: $uf2: picotool gives no binary end or embedded drive" >&2
    exit 1
fi
read -r fs_start fs_end <<<"$drive"
if (( end > fs_start )); then
    echo "error: $uf2: the firmware ends at $end, past the start of its filesystem at $fs_start;" >&2
    echo "       lower MICROPY_HW_FLASH_STORAGE_BYTES in the board's mpconfigboard.h" >&2
    exit 1
fi
printf 'flash layout: firmware to %s, %d KB free before the filesystem at %s (%d KB)\n' \
    "$end" $(( (fs_start - end) / 1024 )) "$fs_start" $(( (fs_end - fs_start) / 1024 ))
