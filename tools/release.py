"""Sign OTA releases offline, as their owner: the platform stores and serves them, never signs.

    python tools/release.py keygen --out keys/acme          # acme.key (private), acme.pub (hex)
    python tools/release.py sign --key keys/acme.key --image app.bin --version 1.2.0-rc.1 \
        --counter 7 --board RPI_PICO_W [--board RPI_PICO] [--kind app] [--tenant acme] \
        [--namespace lab] [--out app-1.2.0-rc.1.release.json]
    python tools/release.py keys --key keys/acme.key --new-key keys/acme2.pub --counter 1 \
        [--tenant acme] [--out keys.release.json]           # rotate the device's trust anchors
    python tools/release.py verify --pub keys/acme.pub RELEASE.json [--image app.bin]

A release file is JSON: {"manifest": "<canonical JSON text>", "signature": "<128 hex>",
"key_id": "<16 hex>"}. The manifest is JSON with sorted keys and no blanks, ASCII only; the
Ed25519 signature covers exactly its UTF-8 bytes, and the device checks it before it reads any
field. Fields: format, product, boards, kind, version (SemVer 2.0), counter (anti-rollback,
an integer the device never goes below once a version with it has confirmed), size, sha256,
created, and optionally tenant and namespace (absent: fleet-wide). Upload the image with it:
POST /v1/operator/tenants/{tenant}/namespaces/{namespace}/ota?manifest=<base64url>&signature=...
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

FORMAT = "relays-release/1"
PRODUCT = "relays-controller"
KINDS = ("app", "firmware")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
                    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
BOARD = re.compile(r"^[A-Z0-9_]{1,32}$")


class ReleaseError(Exception):
    pass


def canonical(doc):
    """The exact bytes that are signed: sorted keys, no blanks, ASCII."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def key_id(public_raw):
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_raw(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)


def load_private(path):
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError("%s is not an Ed25519 private key" % path)
    return key


def load_public_hex(path):
    with open(path) as f:
        text = f.read().strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ReleaseError("%s: expected 64 lowercase hex characters" % path)
    return text


def keygen(out):
    """Write OUT.key (PEM, mode 0600) and OUT.pub (64 hex); returns the public hex."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if os.path.exists(out + ".key"):
        raise ReleaseError("%s.key exists; refusing to overwrite a release key" % out)
    fd = os.open(out + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = public_raw(key).hex()
    with open(out + ".pub", "w") as f:
        f.write(pub + "\n")
    return pub


def check_version(v):
    if not SEMVER.match(v):
        raise ReleaseError("version %r is not SemVer 2.0 (MAJOR.MINOR.PATCH[-pre][+build])" % v)
    return v


def release_manifest(image, version, counter, boards, kind="app", tenant=None, namespace=None,
                     product=PRODUCT, created=None):
    if kind not in KINDS:
        raise ReleaseError("kind must be one of %s" % ", ".join(KINDS))
    if not isinstance(counter, int) or isinstance(counter, bool) or not 0 <= counter < 2**31:
        raise ReleaseError("counter must be an integer in 0..2^31-1")
    if not boards or not all(BOARD.match(b) for b in boards):
        raise ReleaseError("boards: one or more names like RPI_PICO_W")
    for name, v in (("tenant", tenant), ("namespace", namespace)):
        if v is not None and not NAME.match(v):
            raise ReleaseError("%s %r is not a valid name" % (name, v))
    if namespace is not None and tenant is None:
        raise ReleaseError("a namespace scope needs a tenant")
    m = {"format": FORMAT, "product": product, "boards": sorted(set(boards)), "kind": kind,
         "version": check_version(version), "counter": counter, "size": len(image),
         "sha256": hashlib.sha256(image).hexdigest(),
         "created": int(time.time()) if created is None else created}
    if tenant is not None:
        m["tenant"] = tenant
    if namespace is not None:
        m["namespace"] = namespace
    return m


def keys_manifest(new_keys, counter, tenant=None, product=PRODUCT, created=None):
    if not 1 <= len(new_keys) <= 4 or not all(re.fullmatch(r"[0-9a-f]{64}", k) for k in new_keys):
        raise ReleaseError("1 to 4 release keys of 64 hex characters")
    m = {"format": FORMAT, "product": product, "kind": "release_keys", "keys": list(new_keys),
         "counter": counter, "created": int(time.time()) if created is None else created}
    if tenant is not None:
        m["tenant"] = tenant
    return m


def sign(private_key, manifest):
    text = canonical(manifest)
    return {"manifest": text, "signature": private_key.sign(text.encode()).hex(),
            "key_id": key_id(public_raw(private_key))}


def verify(public_hex, release, image=None):
    """The manifest dict if the release verifies (and matches image when given)."""
    pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    try:
        pub.verify(bytes.fromhex(release["signature"]), release["manifest"].encode())
    except (InvalidSignature, ValueError, KeyError):
        raise ReleaseError("signature does not verify with this key")
    m = json.loads(release["manifest"])
    if image is not None and (len(image) != m.get("size") or
                              hashlib.sha256(image).hexdigest() != m.get("sha256")):
        raise ReleaseError("the image does not match the manifest's size and sha256")
    return m


def upload_query(release):
    """The query string for POST .../ota with the image as body."""
    b64 = base64.urlsafe_b64encode(release["manifest"].encode()).decode().rstrip("=")
    return "manifest=%s&signature=%s" % (b64, release["signature"])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="release", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("keygen", help="create a release key pair")
    g.add_argument("--out", required=True, help="path prefix: writes PREFIX.key and PREFIX.pub")
    s = sub.add_parser("sign", help="sign a release manifest for an image")
    s.add_argument("--key", required=True)
    s.add_argument("--image", required=True)
    s.add_argument("--version", required=True)
    s.add_argument("--counter", required=True, type=int)
    s.add_argument("--board", action="append", required=True)
    s.add_argument("--kind", default="app", choices=KINDS)
    s.add_argument("--tenant")
    s.add_argument("--namespace")
    s.add_argument("--out")
    k = sub.add_parser("keys", help="sign a release_keys manifest (rotate the trust anchors)")
    k.add_argument("--key", required=True, help="a current key")
    k.add_argument("--new-key", action="append", required=True, help="a .pub file")
    k.add_argument("--counter", required=True, type=int)
    k.add_argument("--tenant")
    k.add_argument("--out")
    v = sub.add_parser("verify", help="check a release file")
    v.add_argument("--pub", required=True)
    v.add_argument("release")
    v.add_argument("--image")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "keygen":
            print("public key %s (key id %s) in %s.pub; keep %s.key offline" % (
                keygen(a.out), key_id(bytes.fromhex(load_public_hex(a.out + ".pub"))),
                a.out, a.out))
            return 0
        if a.cmd == "verify":
            with open(a.release) as f:
                rel = json.load(f)
            image = open(a.image, "rb").read() if a.image else None
            m = verify(load_public_hex(a.pub), rel, image)
            print("ok: %s %s counter %s" % (m.get("kind"), m.get("version", ""), m["counter"]))
            return 0
        key = load_private(a.key)
        if a.cmd == "sign":
            with open(a.image, "rb") as f:
                image = f.read()
            rel = sign(key, release_manifest(image, a.version, a.counter, a.board, a.kind,
                                             a.tenant, a.namespace))
            out = a.out or "%s-%s.release.json" % (os.path.splitext(a.image)[0], a.version)
        else:
            rel = sign(key, keys_manifest([load_public_hex(p) for p in a.new_key], a.counter,
                                          a.tenant))
            out = a.out or "release-keys-%d.release.json" % a.counter
        with open(out, "w") as f:
            json.dump(rel, f, indent=1)
            f.write("\n")
        print("signed %s (key id %s)\nupload query: %s" % (out, rel["key_id"], upload_query(rel)))
        return 0
    except (ReleaseError, OSError, ValueError) as e:
        print("release: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
