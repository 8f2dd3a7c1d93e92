# The application's Python, frozen into the firmware and the unix build.
metadata(description="RelaysController application", version="0.1.0")
module("pyrelaygpio.py")
package("iotlib")
module("relays_controller.py")
# main.py runs at boot from the frozen image; it starts the controller only when
# /device.json exists, so a fresh board still reaches its REPL.
module("main.py")
# the web framework of the device REST API (iotlib.rest_api), unpacked by `make deps`
package("microdot", files=("__init__.py", "microdot.py"), base_path="../.cache/microdot/2.7.0")
