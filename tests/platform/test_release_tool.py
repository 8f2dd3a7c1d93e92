"""tools/release.py: key pairs, canonical manifests, SemVer, signing and verifying (CPython)."""

import json
import os
import subprocess
import sys

import pytest

from platform_harness import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import release as rel  # noqa: E402

TOOL = [sys.executable, os.path.join(ROOT, "tools", "release.py")]


def test_semver_2_versions_only():
    for ok in ("1.0.0", "1.0.0-rc.1", "1.0.0-alpha.beta", "0.0.1+build.7", "10.20.30-x-y"):
        assert rel.check_version(ok) == ok
    for bad in ("1.0", "01.0.0", "1.0.0-", "1.0.0-01", "v1.0.0", "1.0.0+", "1.0.0-a..b"):
        with pytest.raises(rel.ReleaseError):
            rel.check_version(bad)


def test_manifest_is_canonical_and_scoped():
    m = rel.release_manifest(b"abc", "1.2.3", 4, ["RPI_PICO_W", "RPI_PICO"], tenant="acme",
                             namespace="lab", created=1800000000)
    text = rel.canonical(m)
    assert text == json.dumps(m, sort_keys=True, separators=(",", ":"))
    assert " " not in text and list(json.loads(text)) == sorted(m)
    assert m["boards"] == ["RPI_PICO", "RPI_PICO_W"] and m["size"] == 3
    assert "tenant" not in rel.release_manifest(b"abc", "1.2.3", 4, ["RPI_PICO_W"])
    for kw in (dict(counter=-1), dict(counter=True), dict(boards=[]), dict(kind="bootloader"),
               dict(namespace="lab"), dict(tenant="Not Valid")):
        args = dict(image=b"x", version="1.0.0", counter=1, boards=["RPI_PICO_W"])
        args.update(kw)
        with pytest.raises(rel.ReleaseError):
            rel.release_manifest(**args)


def test_cli_keygen_sign_verify(tmp_path):
    img = tmp_path / "app.bin"
    img.write_bytes(os.urandom(3000))
    prefix = str(tmp_path / "owner")
    assert subprocess.run(TOOL + ["keygen", "--out", prefix]).returncode == 0
    assert oct(os.stat(prefix + ".key").st_mode & 0o777) == "0o600"
    # never overwrites a release key
    r = subprocess.run(TOOL + ["keygen", "--out", prefix], capture_output=True, text=True)
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    out = str(tmp_path / "r.json")
    r = subprocess.run(TOOL + ["sign", "--key", prefix + ".key", "--image", str(img), "--version",
                               "2.0.0-rc.1", "--counter", "9", "--board", "RPI_PICO_W",
                               "--tenant", "acme", "--out", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(out))
    m = rel.verify(rel.load_public_hex(prefix + ".pub"), doc, img.read_bytes())
    assert (m["version"], m["counter"], m["tenant"]) == ("2.0.0-rc.1", 9, "acme")
    r = subprocess.run(TOOL + ["verify", "--pub", prefix + ".pub", out, "--image", str(img)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "2.0.0-rc.1 counter 9" in r.stdout
    img.write_bytes(b"another image")
    r = subprocess.run(TOOL + ["verify", "--pub", prefix + ".pub", out, "--image", str(img)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not match" in r.stderr
    doc["manifest"] = doc["manifest"].replace("2.0.0-rc.1", "9.0.0")
    with pytest.raises(rel.ReleaseError):
        rel.verify(rel.load_public_hex(prefix + ".pub"), doc)
    r = subprocess.run(TOOL + ["sign", "--key", prefix + ".key", "--image", str(img), "--version",
                               "2.0", "--counter", "1", "--board", "RPI_PICO_W"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "SemVer" in r.stderr
