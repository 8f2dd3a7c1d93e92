# The baseline of bench/rest_load.py: a bare microdot hello-world on the MicroPython unix
# build, with none of the device API's checks, metrics or relays.
#
#   micropython bench/board_scripts/hello_microdot.py PORT      # serves on 127.0.0.1:PORT until killed
import sys

from microdot import Microdot

app = Microdot()


@app.route("/", methods=["GET", "POST"])
async def index(req):
    return "Hello, world!"


print("hello_microdot: serving on 127.0.0.1:%s" % sys.argv[1])
app.run(host="127.0.0.1", port=int(sys.argv[1]))
