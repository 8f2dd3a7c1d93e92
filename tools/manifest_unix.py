# Frozen into the unix build (make unix): asyncio and the application, as on the board.
include("$(MPY_DIR)/extmod/asyncio")
include("../python/manifest.py")
