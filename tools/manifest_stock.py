# Frozen into the stock RPI_PICO firmware (make firmware-stock), the board a natmod user keeps.
# It is the port's default manifest (ports/rp2/boards/manifest.py) minus its four
# require() lines (onewire, ds18x20, dht, neopixel from micropython-lib, which is not
# fetched here): the same boot modules (_boot.py mounting littlefs2 on the flash), rp2.py
# and asyncio. No user C module and nothing of ours is built in.
freeze("$(PORT_DIR)/modules")
include("$(MPY_DIR)/extmod/asyncio")
