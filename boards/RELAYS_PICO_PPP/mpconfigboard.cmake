# Raspberry Pi Pico with lwIP: the network reaches the board as PPP over UART0 (GP0 TX, GP1 RX),
# which is what the emulated RP2040 can carry (it has no WiFi chip). Same socket layer
# (modlwip) as the Pico W.
set(PICO_BOARD "pico")
set(PICO_PLATFORM "rp2040")
set(MICROPY_PY_LWIP 1)
