# Prints iotlib.config_schema's verdict on each config of a JSON list: null or [field, message].
import json
import sys

from iotlib import config_schema

with open(sys.argv[1]) as f:
    configs = json.load(f)
print(json.dumps([config_schema.check(c) for c in configs]))
