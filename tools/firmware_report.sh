#!/usr/bin/env bash
# Prints the UF2 size, the image's sections and the frozen modules of a firmware build.
set -eu
b=$1
uf2=$b/firmware.uf2
echo "firmware: $uf2 $(stat -c %s "$uf2") bytes"
if command -v arm-none-eabi-size >/dev/null && [ -f "$b/firmware.elf" ]; then
    arm-none-eabi-size "$b/firmware.elf" | sed 's/^/  /'
fi
fc=$b/frozen_content.c
if [ -f "$fc" ]; then
    echo "frozen modules:"
    sed -n '/mp_frozen_names\[\]/,/};/p' "$fc" | sed -n 's/^ *"\([^"\\]\{1,\}\)\\0"$/  \1/p'
fi
