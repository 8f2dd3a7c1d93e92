// Raspberry Pi Pico with the `tls` module (mbedtls) and no network: for bench/tls_handshake.py
// --board, which measures a TLS handshake on the emulated RP2040 (the Pico W has `tls` through
// its network stack; rp2040js emulates no WiFi chip).
#define MICROPY_HW_BOARD_NAME                   "Raspberry Pi Pico (TLS bench)"
// 848 KB as on RPI_PICO_W: mbedtls takes the code past RPI_PICO's 640 KB
#define MICROPY_HW_FLASH_STORAGE_BYTES          (848 * 1024)
#define MICROPY_PY_SSL                          (1)
