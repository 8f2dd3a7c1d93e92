"""OTA: publish, signed metadata, ranged chunk download, forced bad hash/signature, scoping."""

import hashlib
import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

IMAGE = os.urandom(10000) + b"relays-app-1.1.0"


def ota_path(dev):
    return "/v1/operator/tenants/%s/namespaces/%s/ota" % (dev.tenant, dev.namespace)


def publish(server, dev, data, query="version=1.1.0"):
    return server.op("POST", ota_path(dev) + "?" + query, data=data,
                     content_type="application/octet-stream")


def public_key(server):
    r = server.call("GET", "/v1/ota/public-key")
    assert r.status == 200
    b = r.json()
    raw = Ed25519PublicKey.from_public_bytes(bytes.fromhex(b["public_key_hex"]))
    pem = load_pem_public_key(b["public_key_pem"].encode())
    assert pem.public_bytes_raw() == raw.public_bytes_raw()
    return raw


def test_offer_signature_and_chunked_download(server, fleet):
    dev = fleet.device()
    assert dev.call("GET", "/v1/ota").json() == {"available": False}
    r = publish(server, dev, IMAGE, "version=1.1.0&kind=firmware")
    assert r.status == 201, r
    rel = r.json()
    assert rel["size"] == len(IMAGE) and rel["kind"] == "firmware"
    offer = dev.call("GET", "/v1/ota").json()
    assert offer["available"] is True and offer["version"] == "1.1.0"
    assert offer["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    assert offer["signature_algorithm"] == "Ed25519"
    # the signature is over the raw 32-byte digest
    public_key(server).verify(bytes.fromhex(offer["signature"]), bytes.fromhex(offer["sha256"]))
    assert offer["url"].startswith(server.url + "/v1/ota/images/")
    path = offer["url"][len(server.url):]
    # download in 4 KiB chunks as a device would
    got, chunk = b"", 4096
    for _ in range(10):
        end = min(len(got) + chunk, offer["size"]) - 1
        r = dev.call("GET", path, headers={"Range": "bytes=%d-%d" % (len(got), end)})
        assert r.status == 206, r
        assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (len(got), end, offer["size"])
        got += r.body
        if len(got) >= offer["size"]:
            break
    assert hashlib.sha256(got).hexdigest() == offer["sha256"]
    # whole image, open-ended and suffix ranges
    r = dev.call("GET", path)
    assert r.status == 200 and r.body == IMAGE and r.headers["Accept-Ranges"] == "bytes"
    assert dev.call("GET", path, headers={"Range": "bytes=9990-"}).body == IMAGE[9990:]
    assert dev.call("GET", path, headers={"Range": "bytes=-16"}).body == b"relays-app-1.1.0"
    assert dev.call("GET", path, headers={"Range": "bytes=10000-99999"}).body == IMAGE[10000:]


def test_bad_ranges_are_416(server, fleet):
    dev = fleet.device()
    publish(server, dev, IMAGE)
    path = dev.call("GET", "/v1/ota").json()["url"][len(server.url):]
    for rng in ("bytes=20000-", "bytes=0-1,5-9", "bytes=9-3", "items=0-1", "bytes=-0",
                "bytes=a-b", "bytes=-"):
        r = dev.call("GET", path, headers={"Range": rng})
        assert r.status == 416, (rng, r)
        assert r.json()["error"] == "range_not_satisfiable"
        assert r.headers["Content-Range"] == "bytes */%d" % len(IMAGE)


def test_latest_release_is_offered_and_versions_are_unique(server, fleet):
    dev = fleet.device()
    assert publish(server, dev, b"one", "version=1.0.0").status == 201
    assert publish(server, dev, b"two", "version=1.0.1").status == 201
    r = publish(server, dev, b"again", "version=1.0.1")
    assert r.status == 409 and r.json()["field"] == "version"
    assert dev.call("GET", "/v1/ota").json()["version"] == "1.0.1"
    rels = server.op("GET", ota_path(dev)).json()["releases"]
    assert [x["version"] for x in rels] == ["1.0.1", "1.0.0"]


def test_publish_checks_given_hash_and_signature_unless_forced(server, fleet):
    dev = fleet.device()
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = publish(server, dev, IMAGE, "version=2.0.0&sha256=" + wrong)
    assert r.status == 422 and r.json()["field"] == "sha256"
    r = publish(server, dev, IMAGE, "version=2.0.0&signature=" + "00" * 64)
    assert r.status == 422 and r.json()["field"] == "signature"
    assert dev.call("GET", "/v1/ota").json() == {"available": False}
    key = public_key(server)

    # forced bad hash: advertised digest differs from the image, yet is properly signed
    r = publish(server, dev, IMAGE, "version=2.0.1&force=1&sha256=" + wrong)
    assert r.status == 201
    offer = dev.call("GET", "/v1/ota").json()
    assert offer["sha256"] == wrong
    key.verify(bytes.fromhex(offer["signature"]), bytes.fromhex(wrong))
    body = dev.call("GET", offer["url"][len(server.url):]).body
    assert hashlib.sha256(body).hexdigest() != offer["sha256"]

    # forced bad signature: right digest, signature that does not verify
    r = publish(server, dev, IMAGE, "version=2.0.2&force=1&signature=" + "11" * 64)
    assert r.status == 201
    offer = dev.call("GET", "/v1/ota").json()
    assert offer["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    with pytest.raises(InvalidSignature):
        key.verify(bytes.fromhex(offer["signature"]), bytes.fromhex(offer["sha256"]))


def test_publish_input_errors(server, fleet):
    dev = fleet.device()
    r = server.op("POST", ota_path(dev), data=IMAGE, content_type="application/octet-stream")
    assert r.status == 400 and r.json()["field"] == "version"
    r = publish(server, dev, IMAGE, "version=1.0&kind=bootloader")
    assert r.status == 400 and r.json()["field"] == "kind"
    r = publish(server, dev, b"", "version=1.0")
    assert r.status == 400
    r = server.op("POST", ota_path(dev) + "?version=1.0", json_body={"image": "x"})
    assert r.status == 415


def test_images_are_scoped_to_the_namespace(server, fleet):
    a = fleet.device()
    b = fleet.device()
    c = fleet.device(tenant=a.tenant, namespace=fleet.namespace(a.tenant, "other"))
    publish(server, b, b"tenant-b-secret-image")
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


def test_server_signs_with_a_given_key(fresh_server, tmp_path):
    from platform_harness import Fleet
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    priv = Ed25519PrivateKey.generate()
    path = tmp_path / "ota.pem"
    path.write_bytes(priv.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    srv = fresh_server(["--ota-key", str(path)])
    r = srv.call("GET", "/v1/ota/public-key").json()
    assert bytes.fromhex(r["public_key_hex"]) == priv.public_key().public_bytes_raw()
    dev = Fleet(srv).device()
    publish(srv, dev, IMAGE)
    offer = dev.call("GET", "/v1/ota").json()
    priv.public_key().verify(bytes.fromhex(offer["signature"]), bytes.fromhex(offer["sha256"]))
