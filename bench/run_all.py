"""Runs every benchmark in turn: `make bench` (full counts) and, with --smoke, the quick
check that `make test` runs. Each benchmark runs in its own process; the exit status is
non-zero when one of them failed to run (a missed goal is reported, not a failure).

    .cache/venv/bin/python bench/run_all.py [--smoke]
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["emulated_cycles.py", "unix_ops.py", "memory.py", "rest_load.py", "tls_handshake.py",
           "mqtt_roundtrip.py", "ppp_board.py", "controller_on_chip.py"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny counts: checks the scripts run")
    ap.add_argument("only", nargs="*", help="run only these scripts (e.g. unix_ops.py)")
    args = ap.parse_args(argv)
    failed = []
    for name in args.only or SCRIPTS:
        cmd = [sys.executable, str(HERE / name)] + (["--smoke"] if args.smoke else [])
        print(f"== {name}{' (smoke)' if args.smoke else ''}", flush=True)
        t0 = time.monotonic()
        # bounded: a hung emulator or build cannot stall the run
        try:
            rc = subprocess.run(cmd, cwd=HERE.parent, timeout=300 if args.smoke else 3600).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.monotonic() - t0:.1f} s\n",
              flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("bench: every benchmark ran; results in bench/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
