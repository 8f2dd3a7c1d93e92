"""OTA: per-tenant release keys, uploads checked against them (never signed by the platform),
offers carrying the owner's manifest unchanged, ranged download, scoping."""

import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from platform_harness import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import release as rel  # noqa: E402  (tools/release.py, the owner's signing tool)

IMAGE = os.urandom(10000) + b"relays-app-1.1.0"


def ota_path(dev):
    return "/v1/operator/tenants/%s/namespaces/%s/ota" % (dev.tenant, dev.namespace)


def keys_path(dev):
    return "/v1/operator/tenants/%s/release-keys" % dev.tenant


def new_key(server, dev):
    key = Ed25519PrivateKey.generate()
    r = server.op("POST", keys_path(dev), json_body={"public_key_hex": rel.public_raw(key).hex()})
    assert r.status == 201, r
    return key


def signed(key, data, version="1.1.0", counter=1, **kw):
    kw.setdefault("boards", ["RPI_PICO_W"])
    return rel.sign(key, rel.release_manifest(data, version, counter, **kw))


def publish(server, dev, data, release):
    return server.op("POST", ota_path(dev) + "?" + rel.upload_query(release), data=data,
                     content_type="application/octet-stream")


def test_offer_is_the_owners_manifest_and_download_is_ranged(server, fleet):
    dev = fleet.device()
    key = new_key(server, dev)
    assert dev.call("GET", "/v1/ota").json() == {"available": False}
    release = signed(key, IMAGE, kind="firmware", tenant=dev.tenant)
    r = publish(server, dev, IMAGE, release)
    assert r.status == 201, r
    doc = r.json()
    assert doc["size"] == len(IMAGE) and doc["kind"] == "firmware" and doc["counter"] == 1
    assert doc["key_id"] == release["key_id"]
    offer = dev.call("GET", "/v1/ota").json()
    assert offer["available"] is True
    # exactly the bytes and signature the owner made; the platform added no signed field
    assert offer["manifest"] == release["manifest"] and offer["signature"] == release["signature"]
    key.public_key().verify(bytes.fromhex(offer["signature"]), offer["manifest"].encode())
    m = json.loads(offer["manifest"])
    assert m["sha256"] == hashlib.sha256(IMAGE).hexdigest() and m["tenant"] == dev.tenant
    assert offer["url"].startswith(server.url + "/v1/ota/images/")
    path = offer["url"][len(server.url):]
    got, chunk = b"", 4096
    for _ in range(10):
        end = min(len(got) + chunk, m["size"]) - 1
        r = dev.call("GET", path, headers={"Range": "bytes=%d-%d" % (len(got), end)})
        assert r.status == 206, r
        assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (len(got), end, m["size"])
        got += r.body
        if len(got) >= m["size"]:
            break
    assert hashlib.sha256(got).hexdigest() == m["sha256"]
    r = dev.call("GET", path)
    assert r.status == 200 and r.body == IMAGE and r.headers["Accept-Ranges"] == "bytes"
    assert dev.call("GET", path, headers={"Range": "bytes=9990-"}).body == IMAGE[9990:]
    assert dev.call("GET", path, headers={"Range": "bytes=-16"}).body == b"relays-app-1.1.0"


def test_bad_ranges_are_416(server, fleet):
    dev = fleet.device()
    publish(server, dev, IMAGE, signed(new_key(server, dev), IMAGE))
    path = dev.call("GET", "/v1/ota").json()["url"][len(server.url):]
    for rng in ("bytes=20000-", "bytes=0-1,5-9", "bytes=9-3", "items=0-1", "bytes=-0",
                "bytes=a-b", "bytes=-"):
        r = dev.call("GET", path, headers={"Range": rng})
        assert r.status == 416, (rng, r)
        assert r.json()["error"] == "range_not_satisfiable"
        assert r.headers["Content-Range"] == "bytes */%d" % len(IMAGE)


def test_latest_release_is_offered_and_versions_are_unique(server, fleet):
    dev = fleet.device()
    key = new_key(server, dev)
    assert publish(server, dev, b"one", signed(key, b"one", "1.0.0")).status == 201
    assert publish(server, dev, b"two", signed(key, b"two", "1.0.1")).status == 201
    r = publish(server, dev, b"again", signed(key, b"again", "1.0.1"))
    assert r.status == 409 and r.json()["field"] == "manifest"
    assert json.loads(dev.call("GET", "/v1/ota").json()["manifest"])["version"] == "1.0.1"
    rels = server.op("GET", ota_path(dev)).json()["releases"]
    assert [x["version"] for x in rels] == ["1.0.1", "1.0.0"]


def test_upload_refused_unless_signed_by_the_tenants_key(server, fleet):
    # the platform only stores what the tenant's own release keys signed, for this scope
    dev = fleet.device()
    other = fleet.device()
    r = publish(server, dev, IMAGE, signed(Ed25519PrivateKey.generate(), IMAGE))
    assert r.status == 422 and r.json()["error"] == "no_release_keys", r
    mine = new_key(server, dev)
    theirs = new_key(server, other)
    cases = [
        (signed(theirs, IMAGE), IMAGE, "bad_signature", "signature"),  # another tenant's key
        (signed(Ed25519PrivateKey.generate(), IMAGE), IMAGE, "bad_signature", "signature"),
        (signed(mine, IMAGE), IMAGE + b"x", "image_mismatch", "(body)"),
        (signed(mine, IMAGE, tenant=other.tenant), IMAGE, "wrong_scope", "manifest"),
        (signed(mine, IMAGE, tenant=dev.tenant, namespace="elsewhere"), IMAGE, "wrong_scope",
         "manifest"),
    ]
    for release, data, code, field in cases:
        r = publish(server, dev, data, release)
        assert r.status == 422 and (r.json()["error"], r.json()["field"]) == (code, field), r
    # a manifest altered after signing (relabelled 99.0.0)
    good = signed(mine, IMAGE)
    forged = dict(good, manifest=good["manifest"].replace('"1.1.0"', '"99.0.0"'))
    r = publish(server, dev, IMAGE, forged)
    assert r.status == 422 and r.json()["error"] == "bad_signature"
    assert dev.call("GET", "/v1/ota").json() == {"available": False}
    assert publish(server, dev, IMAGE, good).status == 201


def test_upload_input_errors(server, fleet):
    dev = fleet.device()
    key = new_key(server, dev)
    r = server.op("POST", ota_path(dev), data=IMAGE, content_type="application/octet-stream")
    assert r.status == 400 and r.json()["field"] == "manifest"
    q = rel.upload_query(signed(key, IMAGE))
    r = server.op("POST", ota_path(dev) + "?" + q + "&version=9.0.0", data=IMAGE,
                  content_type="application/octet-stream")
    assert r.status == 400 and r.json()["field"] == "version"  # no unsigned labels
    r = server.op("POST", ota_path(dev) + "?" + q, data=b"",
                  content_type="application/octet-stream")
    assert r.status == 400
    r = server.op("POST", ota_path(dev) + "?" + q, json_body={"image": "x"})
    assert r.status == 415
    r = server.op("POST", ota_path(dev) + "?manifest=%21%21&signature=" + "0" * 128, data=IMAGE,
                  content_type="application/octet-stream")
    assert r.status == 400 and r.json()["field"] == "manifest"


def test_release_keys_register_list_and_limits(server, fleet):
    dev = fleet.device()
    keys = [Ed25519PrivateKey.generate() for _ in range(5)]
    for i, k in enumerate(keys[:4]):
        r = server.op("POST", keys_path(dev), json_body={"public_key_hex": rel.public_raw(k).hex()})
        assert r.status == 201 and len(r.json()["keys"]) == i + 1
    again = server.op("POST", keys_path(dev),
                      json_body={"public_key_hex": rel.public_raw(keys[0]).hex()})
    assert again.status == 200
    r = server.op("POST", keys_path(dev), json_body={"public_key_hex": rel.public_raw(keys[4]).hex()})
    assert r.status == 409
    listed = server.op("GET", keys_path(dev)).json()["keys"]
    assert {k["key_id"] for k in listed} == {rel.key_id(rel.public_raw(k)) for k in keys[:4]}
    r = server.op("POST", keys_path(dev), json_body={"public_key_hex": "zz" * 32})
    assert r.status == 400


def test_key_rotation_is_signed_by_a_current_key_and_offered(server, fleet):
    dev = fleet.device()
    old = new_key(server, dev)
    new = Ed25519PrivateKey.generate()
    rotation = rel.sign(old, rel.keys_manifest([rel.public_raw(new).hex()], 1, tenant=dev.tenant))
    self_signed = rel.sign(new, rel.keys_manifest([rel.public_raw(new).hex()], 2))
    path = keys_path(dev) + "/rotation"
    r = server.op("PUT", path, json_body={k: self_signed[k] for k in ("manifest", "signature")})
    assert r.status == 422 and r.json()["error"] == "bad_signature"
    body = {k: rotation[k] for k in ("manifest", "signature")}
    assert server.op("PUT", path, json_body=body).status == 200
    assert server.op("PUT", path, json_body=body).status == 409  # not above the current counter
    offer = dev.call("GET", "/v1/ota").json()
    assert offer == {"available": False, "release_keys": body}
    # uploads signed by the new key are now accepted
    assert publish(server, dev, IMAGE, signed(new, IMAGE)).status == 201


def test_images_are_scoped_to_the_namespace(server, fleet):
    a = fleet.device()
    b = fleet.device()
    c = fleet.device(tenant=a.tenant, namespace=fleet.namespace(a.tenant, "other"))
    publish(server, b, b"tenant-b-secret-image", signed(new_key(server, b),
                                                         b"tenant-b-secret-image"))
    assert a.call("GET", "/v1/ota").json() == {"available": False}
    assert c.call("GET", "/v1/ota").json() == {"available": False}
    url = b.call("GET", "/v1/ota").json()["url"][len(server.url):]
    for dev in (a, c):
        r = dev.call("GET", url)
        assert r.status == 404 and r.json()["field"] == "image_id"
    assert b.call("GET", url).body == b"tenant-b-secret-image"
    r = a.call("GET", "/v1/ota/images/" + "0" * 32)
    assert r.status == 404
    r = a.call("GET", "/v1/ota/images/not-hex")
    assert r.status == 400 and r.json()["field"] == "image_id"


def test_platform_holds_no_signing_key(server):
    r = server.call("GET", "/v1/ota/public-key")
    assert r.status == 404
    with open(os.path.join(ROOT, "reference_platform", "app.py")) as f:
        assert "sign_digest" not in f.read()
