# Frozen into the RP2040 firmware (make firmware): the port's boot modules,
# asyncio, and the application.
freeze("$(PORT_DIR)/modules")
include("$(MPY_DIR)/extmod/asyncio")
include("python/manifest.py")
