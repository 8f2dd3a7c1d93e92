# The application's Python, frozen into the firmware and the unix build.
metadata(description="RelaysController application", version="0.1.0")
module("pyrelaygpio.py")
