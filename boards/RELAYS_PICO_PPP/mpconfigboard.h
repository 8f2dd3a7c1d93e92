// Board and hardware specific configuration: RPI_PICO plus lwIP's PPP client.
#define MICROPY_HW_BOARD_NAME                   "Raspberry Pi Pico (PPP)"
#define MICROPY_HW_FLASH_STORAGE_BYTES          (1408 * 1024)

#define MICROPY_PY_NETWORK                      (1)
#define MICROPY_PY_NETWORK_PPP_LWIP             (1)
