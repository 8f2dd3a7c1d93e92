"""OTA releases: per-tenant release keys, uploads checked against them, offers and downloads.

The platform never signs. A release is signed offline by its owner (tools/release.py): a
canonical JSON manifest and an Ed25519 signature over its exact bytes. An upload is stored
only if the signature verifies with one of the tenant's registered release keys and the
manifest matches the image, the tenant and the namespace. Devices get the manifest and the
signature unchanged and check them with their own trust anchors."""

import base64
import binascii
import hashlib
import json
import re
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.responses import JSONResponse, Response

from .api_error import ApiError

FORMAT = "relays-release/1"
MAX_MANIFEST = 2048
MAX_KEYS = 4
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def key_id(public_hex):
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def _b64url(text):
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _verify(keys, text, signature):
    """The key_id of the first key that verifies signature over text, else None."""
    for row in keys:
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(row["public_key"]))
        try:
            pub.verify(bytes.fromhex(signature), text.encode())
            return row["key_id"]
        except InvalidSignature:
            continue
    return None


def check_upload(keys, text, signature, tenant, namespace, data):
    """(manifest, key_id) for a release that may be stored, else ApiError 422."""
    def bad(code, msg, field="manifest"):
        return ApiError(422, code, msg, field=field)
    if not keys:
        raise bad("no_release_keys", "tenant %r has no release keys; register one first"
                  % tenant, field="tenant")
    if text is None or len(text) > MAX_MANIFEST:
        raise ApiError(400, "invalid_request", "manifest must be base64url of at most %d bytes"
                       % MAX_MANIFEST, field="manifest")
    kid = _verify(keys, text, signature)
    if kid is None:
        raise bad("bad_signature", "the signature does not verify with any release key of"
                  " tenant %r" % tenant, field="signature")
    try:
        m = json.loads(text)
    except ValueError:
        m = None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise bad("bad_manifest", "the signed manifest is not a %s object" % FORMAT)
    for name, kind in (("version", str), ("kind", str), ("sha256", str), ("size", int),
                       ("counter", int), ("boards", list), ("product", str)):
        if not isinstance(m.get(name), kind) or isinstance(m.get(name), bool):
            raise bad("bad_manifest", "the signed manifest lacks a valid %r" % name)
    if m["kind"] not in ("app", "firmware"):
        raise bad("bad_manifest", "kind %r is not an installable image" % m["kind"])
    if m["size"] != len(data) or m["sha256"] != hashlib.sha256(data).hexdigest():
        raise bad("image_mismatch", "the image (%d bytes, sha256 %s) is not the one the manifest"
                  " names" % (len(data), hashlib.sha256(data).hexdigest()), field="(body)")
    if m.get("tenant") not in (None, tenant):
        raise bad("wrong_scope", "the manifest is signed for tenant %r" % m["tenant"])
    if m.get("namespace") not in (None, namespace):
        raise bad("wrong_scope", "the manifest is signed for namespace %r" % m["namespace"])
    return m, kid


def parse_range(header, size):
    """(first, last) for one 'bytes=' range; anything else is 416, per RFC 9110 single-range use."""
    def bad(msg):
        return ApiError(416, "range_not_satisfiable", msg, field="Range",
                        headers={"Content-Range": "bytes */%d" % size})
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        raise bad("Range must be 'bytes=<first>-<last>'")
    if "," in spec:
        raise bad("only one range per request is supported")
    first, dash, last = spec.strip().partition("-")
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()) or \
            (not first and not last):
        raise bad("malformed Range %r" % header)
    if not first:
        n = int(last)
        if n == 0 or size == 0:
            raise bad("empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise bad("range %s is outside the image (%d bytes)" % (spec, size))
    return start, min(end, size - 1)


def release_doc(row):
    return {k: row[k] for k in ("image_id", "tenant", "namespace", "version", "kind", "size",
                                 "sha256", "counter", "manifest", "signature", "key_id",
                                 "published_at")}


def mount(route, platform):
    p = platform
    s = platform.store

    # ---- device side ----

    @route("GET", "/v1/ota", auth="device")
    async def ota_offer(ctx):
        t = ctx.device["tenant"]
        out = {"available": False}
        km = s.key_manifest(t)
        if km is not None:  # a rotation of the trust anchors, signed by the tenant's key
            out["release_keys"] = {"manifest": km["manifest"], "signature": km["signature"]}
        rows = s.list_images(t, ctx.device["namespace"])
        if rows:
            r = rows[0]
            out.update({
                "available": True, "manifest": r["manifest"], "signature": r["signature"],
                "key_id": r["key_id"],
                "url": p.base_url(ctx.request) + "/v1/ota/images/" + r["image_id"],
                "published_at": r["published_at"]})
        return JSONResponse(out)

    @route("GET", "/v1/ota/images/{image_id}", auth="device")
    async def ota_image(ctx):
        meta = s.get_image_meta(ctx.params["image_id"])
        # Another namespace's image answers exactly like a missing one.
        if meta is None or meta["tenant"] != ctx.device["tenant"] or \
                meta["namespace"] != ctx.device["namespace"]:
            raise ApiError(404, "not_found", "no such image for this device", field="image_id")
        size = meta["size"]
        headers = {"Accept-Ranges": "bytes", "ETag": '"%s"' % meta["sha256"],
                   "Content-Type": "application/octet-stream"}
        rng = ctx.request.headers.get("range")
        if rng is None:
            return Response(s.read_image(meta["image_id"], 0, size), headers=headers)
        start, end = parse_range(rng, size)
        headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
        return Response(s.read_image(meta["image_id"], start, end - start + 1), status_code=206,
                        headers=headers)

    # ---- operator side ----

    keys_path = "/v1/operator/tenants/{tenant}/release-keys"

    def key_docs(tenant):
        return {"keys": [{"key_id": r["key_id"], "public_key_hex": r["public_key"],
                          "added_at": r["added_at"]} for r in s.release_keys(tenant)]}

    @route("GET", keys_path, auth="operator")
    async def list_release_keys(ctx):
        return JSONResponse(key_docs(ctx.params["tenant"]))

    @route("POST", keys_path, auth="operator")
    async def add_release_key(ctx):
        t = ctx.params["tenant"]
        pub = ctx.body["public_key_hex"]
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub))
        except ValueError:
            raise ApiError(422, "bad_key", "not an Ed25519 public key", field="public_key_hex")
        have = s.release_keys(t)
        if len(have) >= MAX_KEYS and key_id(pub) not in [r["key_id"] for r in have]:
            raise ApiError(409, "conflict", "tenant %r already has %d release keys" % (t, MAX_KEYS),
                           field="public_key_hex")
        created = s.add_release_key(t, key_id(pub), pub, p.now())
        return JSONResponse(key_docs(t), status_code=201 if created else 200)

    @route("PUT", keys_path + "/rotation", auth="operator")
    async def put_key_rotation(ctx):
        # a release_keys manifest signed by a current key: offered to the devices with the OTA
        t = ctx.params["tenant"]
        text, sig = ctx.body["manifest"], ctx.body["signature"]
        if _verify(s.release_keys(t), text, sig) is None:
            raise ApiError(422, "bad_signature", "the signature does not verify with any release"
                           " key of tenant %r" % t, field="signature")
        try:
            m = json.loads(text)
        except ValueError:
            m = None
        if not isinstance(m, dict) or m.get("format") != FORMAT or \
                m.get("kind") != "release_keys" or not isinstance(m.get("counter"), int) or \
                not isinstance(m.get("keys"), list) or m.get("tenant") not in (None, t):
            raise ApiError(422, "bad_manifest", "not a release_keys manifest for tenant %r" % t,
                           field="manifest")
        old = s.key_manifest(t)
        if old is not None and m["counter"] <= old["counter"]:
            raise ApiError(409, "conflict", "counter %d is not above the current %d"
                           % (m["counter"], old["counter"]), field="manifest")
        for pub in m["keys"]:  # the new keys verify this tenant's later uploads
            if isinstance(pub, str) and HEX64.match(pub):
                s.add_release_key(t, key_id(pub), pub, p.now())
        s.set_key_manifest(t, m["counter"], text, sig, p.now())
        return JSONResponse({"counter": m["counter"], "keys": len(m["keys"])})

    ota_path = "/v1/operator/tenants/{tenant}/namespaces/{namespace}/ota"

    @route("GET", ota_path, auth="operator")
    async def list_releases(ctx):
        rows = s.list_images(ctx.params["tenant"], ctx.params["namespace"])
        return JSONResponse({"releases": [release_doc(r) for r in rows]})

    @route("POST", ota_path, auth="operator")
    async def publish(ctx):
        q = ctx.query
        tenant, ns = ctx.params["tenant"], ctx.params["namespace"]
        text = _b64url(q["manifest"])
        m, kid = check_upload(s.release_keys(tenant), text, q["signature"], tenant, ns, ctx.body)
        image_id = secrets.token_hex(16)
        if not s.add_image(image_id, tenant, ns, m, text, q["signature"], kid, ctx.body, p.now()):
            raise ApiError(409, "conflict", "version %r is already published in %s/%s"
                           % (m["version"], tenant, ns), field="manifest")
        return JSONResponse(release_doc(s.get_image_meta(image_id)), status_code=201)
