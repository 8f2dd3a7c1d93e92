// Board and hardware specific configuration: RPI_PICO plus lwIP's PPP client.
#define MICROPY_HW_BOARD_NAME                   "Raspberry Pi Pico (PPP)"
// 848 KB as on RPI_PICO_W: lwIP and the frozen app take the code past RPI_PICO's 640 KB
#define MICROPY_HW_FLASH_STORAGE_BYTES          (848 * 1024)

#define MICROPY_PY_NETWORK                      (1)
#define MICROPY_PY_NETWORK_PPP_LWIP             (1)
