# Ed25519 (RFC 8032 vectors, mutations, timing), SHA-512, SemVer order, and
# OTAUpdateManager with signed release manifests: accepted, each refusal before download
# (signature, product, board, kind, scope, version, counter floor, foreign URL), the
# attacks (another tenant's image relabelled, an old image replayed, the token sent to a
# foreign host), download retries, apply failure, confirm, rollback and a failed rollback.
import binascii
import os
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib import ed25519
from iotlib.alarm_manager import AlarmManager
from iotlib.ota_update_manager import AppVersionFile, OTAUpdateManager, version_key
from iotlib.sha512 import sha512
from release_signer import manifest, public_key, sign, signed
from standins import FixedAuth, ListLog, Resp, ScriptedHTTP, rm_tree, run, scratch_dir

h = binascii.unhexlify

# RFC 8032 section 7.1: (public key, message, signature)
RFC8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
]
T1024_MSG = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
    "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
    "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
    "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
    "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
    "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
    "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
    "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
    "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
    "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
    "c60c905c15fc910840b94c00a0b9d0"
)
T1024_SIG = ("0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
             "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03")
RFC8032.append(("278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e", T1024_MSG,
                T1024_SIG))

IMAGE = bytes((i * 7 + 3) & 0xFF for i in range(10000))
SHA = "6e97d8601cb17906a4819e0fcc8d03150d3e4331353ecaa516c0084cadad54dd"
OWNER = b"\x01" * 32        # the release key this device trusts (tenant acme's)
OTHER = b"\x02" * 32        # another tenant's release key
PK = binascii.hexlify(public_key(OWNER)).decode()
OFFER_URL = "http://127.0.0.1:9/v1/ota"
IMAGE_URL = "http://127.0.0.1:9/v1/ota/images/" + "ab" * 16
SCOPE = ("acme", "lab")


def _expect_bad(pk, sig, msg, words):
    try:
        ed25519.verify(pk, sig, msg)
    except ed25519.BadSignature as e:
        assert words in str(e), (words, str(e))
        return
    raise AssertionError("accepted: " + words)


# ---- Ed25519 and SHA-512 ----

def test_rfc8032_vectors_verify():
    for pk, msg, sig in RFC8032:
        assert ed25519.verify(h(pk), h(sig), h(msg)) is True, pk


def test_curve_constants():
    P = ed25519.P
    assert ed25519._D == -121665 * pow(121666, P - 2, P) % P
    assert ed25519._D2 == 2 * ed25519._D % P
    assert ed25519._SQRT_M1 == pow(2, (P - 1) // 4, P)
    assert ed25519._BY == 4 * pow(5, P - 2, P) % P
    x, y = ed25519._BX, ed25519._BY  # the base point is on the curve: -x^2 + y^2 = 1 + d x^2 y^2
    assert (-x * x + y * y) % P == (1 + ed25519._D * x * x * y * y) % P


def test_mutated_signatures_are_rejected():
    pk, msg, sig = [h(x) for x in RFC8032[2]]
    for bit in (0, 7, 100, 254, 255, 256, 300, 500):
        bad = bytearray(sig)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not ed25519.is_valid(pk, bytes(bad), msg), bit
    assert not ed25519.is_valid(pk, sig, msg + b"\x00")
    assert not ed25519.is_valid(pk, sig, b"\xaf\x83")
    assert not ed25519.is_valid(h(RFC8032[0][0]), sig, msg)


def test_malformed_inputs_say_why():
    pk, msg, sig = [h(x) for x in RFC8032[0]]
    s = int.from_bytes(sig[32:], "little") + ed25519.L  # same point, non-canonical S
    _expect_bad(pk, sig[:32] + s.to_bytes(32, "little"), msg, "not below the group order")
    _expect_bad(pk, sig[:63], msg, "64 bytes")
    _expect_bad(pk[:31], sig, msg, "32 bytes")
    _expect_bad(b"\x02" + bytes(31), sig, msg, "not a valid curve point")
    # y = p: a non-canonical encoding
    _expect_bad(b"\xed" + b"\xff" * 30 + b"\x7f", sig, msg, "not a valid curve point")
    _expect_bad(pk, sig, b"x", "does not verify")


def test_test_signer_matches_rfc8032():
    # RFC 8032 7.1 test 1 and 2: secret key -> public key and signature
    for seed, pk, msg, sig in (
            ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
             RFC8032[0][0], RFC8032[0][1], RFC8032[0][2]),
            ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
             RFC8032[1][0], RFC8032[1][1], RFC8032[1][2])):
        assert public_key(h(seed)) == h(pk)
        assert sign(h(seed), h(msg)) == h(sig)


def test_bench_ed25519_verify():
    text, sig = signed(OWNER, manifest(size=len(IMAGE), sha256=SHA))
    pk, sig, digest = h(PK), h(sig), text.encode()
    n = 5
    t0 = time.ticks_us()
    for _ in range(n):
        ed25519.verify(pk, sig, digest)
    us = time.ticks_diff(time.ticks_us(), t0) // n
    print("bench: ed25519 verify of a release manifest (%d bytes): %d.%d ms (mean of %d, this MicroPython build)"
          % (len(digest), us // 1000, (us % 1000) // 100, n))


def test_sha512_vectors():
    cases = [
        (b"", "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
              "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
        (b"abc", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                 "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
        (b"a" * 111, "fa9121c7b32b9e01733d034cfc78cbf67f926c7ed83e82200ef86818196921760"
                     "b4beff48404df811b953828274461673c68d04e297b0eb7b2b4d60fc6b566a2"),
        (b"a" * 112, "c01d080efd492776a1c43bd23dd99d0a2e626d481e16782e75d54c2503b5dc32"
                     "bd05f0f1ba33e568b88fd2d970929b719ecbb152f58f130a407c8830604b70ca"),
        (bytes(range(200)), "986058e9895e2c2ab8f9e8cbdf801db12a44842a56a91d5a4e87b1fc98b29372"
                            "2c4664142e42c3c551ff898646268cd92b84ed230b8c94bed7798d4f27cd7465"),
    ]
    for data, want in cases:
        assert sha512(data).hexdigest() == want, len(data)
    # fed in pieces that straddle block boundaries
    s = sha512()
    for i in range(0, 200, 37):
        s.update(bytes(range(200))[i:i + 37])
    assert s.hexdigest() == cases[-1][1]


def test_version_order():
    order = ["0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
             "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0-rc1", "1.0.0", "1.0.1",
             "1.9.9", "1.10.0", "2.0.0"]
    for a, b in zip(order, order[1:]):
        assert version_key(a) < version_key(b), (a, b)
    assert version_key("1.0.0+build.5") == version_key("1.0.0")
    for bad in ("2.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0-a..b", "v1.0.0", "1.0.0+", "1.x.0",
                "", 1):
        try:
            version_key(bad)
        except ValueError:
            continue
        raise AssertionError("accepted version %r" % (bad,))


# ---- the update manager ----

def release(seed=OWNER, **over):
    over.setdefault("size", len(IMAGE))
    over.setdefault("sha256", SHA)
    return signed(seed, manifest(**over))


class Platform:
    """The offer and ranged image download of /v1/ota, with faults on request."""

    def __init__(self, rel=None, **offer):
        text, sig = rel or release()
        self.offer = {"available": True, "manifest": text, "signature": sig, "url": IMAGE_URL,
                      "published_at": 1}
        self.offer.update(offer)
        self.image = IMAGE
        self.fail = []       # per image request: None, an exception or a status
        self.ranges = []
        self.foreign = []    # requests to another host, with their headers

    def __call__(self, method, url, body, headers):
        assert method == "GET"
        if not url.startswith("http://127.0.0.1:9/"):
            self.foreign.append((url, dict(headers)))
            return Resp(206, b"", {})
        assert headers["Authorization"] == "Bearer tok"
        if url == OFFER_URL:
            return Resp(200, self.offer)
        assert url == IMAGE_URL, url
        step = self.fail.pop(0) if self.fail else None
        if isinstance(step, Exception):
            raise step
        if step is not None:
            return Resp(step, {"error": "x", "message": "scripted"})
        rng = headers["Range"]
        self.ranges.append(rng)
        first, last = [int(x) for x in rng[len("bytes="):].split("-")]
        last = min(last, len(self.image) - 1)
        return Resp(206, self.image[first:last + 1],
                    {"content-range": "bytes %d-%d/%d" % (first, last, len(self.image))})


class Device:
    """One boot of the device: a manager over a state folder that survives 'reboots'."""

    def __init__(self, folder, platform, **kw):
        self.folder = folder
        self.app = AppVersionFile(folder + "/app_version", default="1.0.0")
        self.alarms = AlarmManager(url=None)
        self.resets = []
        self.http = ScriptedHTTP(platform)
        kw.setdefault("release_keys", [PK])
        kw.setdefault("scope", SCOPE)
        self.ota = OTAUpdateManager(
            self.app.read(), auth=FixedAuth(), offer_url=OFFER_URL, http=self.http,
            logger=ListLog(), alarms=self.alarms, state_dir=folder + "/ota",
            apply_hook=self.app.apply, rollback_hook=self.app.rollback,
            reset=lambda: self.resets.append(1), max_boots=2, chunk_size=4096, **kw)

    def alarm_keys(self):
        return [k for k, _ in self.alarms.pending()]

    def last_alarm(self):
        return self.alarms._buf[-1][2]

    def state(self):
        return self.ota._load()


def _with_folder(fn):
    d = scratch_dir("ota")
    try:
        fn(d)
    finally:
        rm_tree(d)


def _staged_files(folder):
    return sorted(n for n in os.listdir(folder + "/ota") if n.startswith("image"))


def _install(d, p, version="1.1.0", counter=1):
    # apply and confirm a release: the device then runs it
    p.offer["manifest"], p.offer["signature"] = release(version=version, counter=counter)
    dev = Device(d, p)
    dev.ota.boot()
    assert run(dev.ota.check()) == "applied"
    dev = Device(d, p)
    assert dev.ota.boot() == "trial" and dev.ota.confirm()
    return Device(d, p)


def test_update_accepted_then_confirmed():
    def body(d):
        p = Platform(release(counter=4))
        dev = Device(d, p)
        assert dev.ota.boot() == "none"
        assert run(dev.ota.check()) == "applied"
        assert p.ranges == ["bytes=0-4095", "bytes=4096-8191", "bytes=8192-9999"]
        assert dev.app.read() == "1.1.0"
        with open(d + "/app_version.img", "rb") as f:
            assert f.read() == IMAGE
        st = dev.state()["pending"]
        assert (st["version"], st["previous"], st["boots"], st["counter"]) == \
            ("1.1.0", "1.0.0", 0, 4)
        assert _staged_files(d) == []
        assert dev.ota.reset_required and dev.ota.verify_ms is not None
        assert dev.ota.counter_floor() == 0  # not raised before a confirmed boot
        assert run(dev.ota.check()) == "trial" and len(p.ranges) == 3  # nothing more until reset
        # reboot into the new version
        dev = Device(d, p)
        assert dev.ota.version == "1.1.0"
        assert dev.ota.boot() == "trial" and dev.state()["pending"]["boots"] == 1
        assert dev.ota.confirm()
        st = dev.state()
        assert st["pending"] is None and st["confirmed"] == "1.1.0" and st["counter_floor"] == 4
        assert dev.alarm_keys() == ["ota.confirmed"]
        assert run(dev.ota.check()) == "up_to_date"
        dev = Device(d, p)
        assert dev.ota.boot() == "none" and dev.ota.version == "1.1.0"
    _with_folder(body)


def test_fleet_wide_and_scoped_releases_accepted():
    def body(d):
        for i, scope in enumerate(({}, {"tenant": "acme"}, {"tenant": "acme", "namespace": "lab"})):
            folder = d + "/%d" % i
            os.mkdir(folder)
            dev = Device(folder, Platform(release(**scope)))
            assert run(dev.ota.check()) == "applied", scope
    _with_folder(body)


def test_bad_signature_refused_before_download():
    def body(d):
        p = Platform(release(seed=OTHER))
        dev = Device(d, p)
        assert run(dev.ota.check()) == "refused"
        assert [c[1] for c in dev.http.calls] == [OFFER_URL]
        assert dev.alarm_keys() == ["ota.bad_signature"]
        assert "does not verify with any of 1 release key" in dev.last_alarm()
        assert dev.app.read() == "1.0.0" and _staged_files(d) == []
        # the same offer is not tried (or alarmed) again
        assert run(dev.ota.check()) == "skipped"
        assert dev.alarms.pending() == [("ota.bad_signature", 1)]
    _with_folder(body)


def test_attack_other_tenants_image_relabelled_99():
    # Before: tenant A's image offered to tenant B's device as "99.0.0" was applied (the
    # version, kind and tenant came unsigned from the offer). Now each variant is refused
    # before any download.
    def body(d):
        theirs = release(seed=OTHER, tenant="other", version="1.2.0")
        # 1. relabelled: the offer's text changed to 99.0.0 -> the signature fails
        text = theirs[0].replace('"1.2.0"', '"99.0.0"')
        # 2. as signed by its owner, whom this device does not trust
        # 3. signed by a key this device trusts (a fleet vendor key), scoped to another tenant
        # 4. ... or to another namespace of this tenant
        cases = [((text, theirs[1]), "ota.bad_signature"),
                 (theirs, "ota.bad_signature"),
                 (release(tenant="other", version="99.0.0"), "ota.wrong_scope"),
                 (release(tenant="acme", namespace="prod", version="99.0.0"), "ota.wrong_scope")]
        for i, (rel, key) in enumerate(cases):
            folder = d + "/%d" % i
            os.mkdir(folder)
            dev = Device(folder, Platform(rel))
            assert run(dev.ota.check()) == "refused", key
            assert dev.alarm_keys() == [key], (i, dev.alarm_keys())
            assert [c[1] for c in dev.http.calls] == [OFFER_URL], i
            assert dev.app.read() == "1.0.0"
        assert "signed for tenant 'other'; this device is in 'acme'" in dev.alarms._buf[0][2] \
            or "namespace 'prod'" in dev.alarms._buf[0][2]
    _with_folder(body)


def test_attack_old_image_replayed_as_newer():
    # Before: any old signed image could be offered under a newer label (downgrade). Now the
    # version is signed, and the anti-rollback counter floor refuses old builds.
    def body(d):
        p = Platform()
        _install(d, p, "1.2.0", counter=3)
        old = release(version="1.1.0", counter=2)
        cases = [(old, "ota.not_newer"),
                 ((old[0].replace('"1.1.0"', '"9.0.0"'), old[1]), "ota.bad_signature"),
                 # a newer version number on a build below the floor (a revoked line)
                 (release(version="1.3.0", counter=2), "ota.counter_below_floor")]
        for rel, key in cases:
            p.offer["manifest"], p.offer["signature"] = rel
            dev = Device(d, p)
            dev.ota.boot()
            n = len(p.ranges)
            assert run(dev.ota.check()) == "refused", key
            assert dev.alarm_keys()[-1] == key, (key, dev.alarm_keys())
            assert len(p.ranges) == n and dev.app.read() == "1.2.0"
        assert "counter 2 is below the floor 3" in dev.last_alarm()
        # the floor itself allows equal counters: a fix on the same line
        p.offer["manifest"], p.offer["signature"] = release(version="1.2.1", counter=3)
        assert run(Device(d, p).ota.check()) == "applied"
    _with_folder(body)


def test_attack_token_never_sent_to_a_foreign_host():
    # Before: the device sent its platform bearer token to whatever host the offer's url
    # named. Now an image URL off the platform's origin is refused before any request.
    def body(d):
        for i, url in enumerate(("http://evil.example/img", "http://127.0.0.1:10/v1/ota/images/x",
                                 "https://127.0.0.1:9/v1/ota/images/x", "ftp://127.0.0.1:9/x",
                                 None)):
            folder = d + "/%d" % i
            os.mkdir(folder)
            p = Platform(url=url)
            dev = Device(folder, p)
            assert run(dev.ota.check()) == "refused", url
            assert dev.alarm_keys() == ["ota.foreign_url"], (url, dev.alarm_keys())
            assert p.foreign == [] and [c[1] for c in dev.http.calls] == [OFFER_URL]
        # and the client itself never attaches the token off the platform's origin
        dev = Device(d + "/0", Platform())
        dev.ota._origin = ("http", "127.0.0.1", 9)
        run(dev.ota._get("http://evil.example/x"))
        assert "Authorization" not in dev.http.calls[-1][3]
    _with_folder(body)


def test_manifest_refusals_without_download():
    def body(d):
        cases = [
            (dict(size=2 << 20), "ota.too_large"),
            (dict(sha256="XYZ"), "ota.bad_manifest"),
            (dict(boards=["RPI_PICO"]), "ota.wrong_board"),
            (dict(kind="firmware"), "ota.wrong_kind"),
            (dict(product="door-controller"), "ota.wrong_product"),
            (dict(format="relays-release/9"), "ota.bad_manifest"),
            (dict(version="1.2"), "ota.bad_manifest"),
            (dict(counter="5"), "ota.bad_manifest"),
            (dict(counter=None), "ota.bad_manifest"),
        ]
        for i, (over, key) in enumerate(cases):
            over.setdefault("version", "1.1.%d" % i)
            folder = d + "/%d" % i
            os.mkdir(folder)
            dev = Device(folder, Platform(release(**over)))
            assert run(dev.ota.check()) == "refused", key
            assert dev.alarm_keys() == [key], (key, dev.alarm_keys())
            assert len(dev.http.calls) == 1
        for i, offer in enumerate((dict(signature="00" * 10), dict(manifest=None),
                                   dict(manifest="x" * 3000))):
            folder = d + "/o%d" % i
            os.mkdir(folder)
            dev = Device(folder, Platform(**offer))
            assert run(dev.ota.check()) == "refused" and dev.alarm_keys() == ["ota.bad_offer"]
        os.mkdir(d + "/nokey")
        dev = Device(d + "/nokey", Platform(), release_keys=None)
        assert run(dev.ota.check()) == "refused" and dev.alarm_keys() == ["ota.no_public_key"]
    _with_folder(body)


def test_signature_checked_before_any_field_is_read():
    def body(d):
        # text that is not even JSON: refused as a bad signature, not as bad JSON
        dev = Device(d, Platform(manifest="{not json", signature="ab" * 64))
        assert run(dev.ota.check()) == "refused" and dev.alarm_keys() == ["ota.bad_signature"]
        # a signed non-JSON text passes the signature, then fails as a manifest
        os.mkdir(d + "/2")
        dev = Device(d + "/2", Platform(signed(OWNER, "{not json")))
        assert run(dev.ota.check()) == "refused" and dev.alarm_keys() == ["ota.bad_manifest"]
    _with_folder(body)


def test_trust_anchors_saved_and_changed_only_by_a_signed_key_manifest():
    def body(d):
        p = Platform(release(seed=OTHER))
        dev = Device(d, p)
        assert dev.state()["keys"] == [PK]
        # provisioning another key later (e.g. a config from the platform) changes nothing
        dev = Device(d, p, release_keys=[binascii.hexlify(public_key(OTHER)).decode()])
        assert dev.ota.keys == [h(PK)]
        assert run(dev.ota.check()) == "refused" and dev.alarm_keys() == ["ota.bad_signature"]
        other_pk = binascii.hexlify(public_key(OTHER)).decode()
        rotate = manifest(kind="release_keys", keys=[other_pk], counter=1, boards=None,
                          size=None, sha256=None, version=None)
        # a key manifest signed by the key it introduces: refused
        try:
            dev.ota.update_keys(*signed(OTHER, rotate))
            raise AssertionError("self-signed key update accepted")
        except Exception as e:
            assert getattr(e, "key", None) == "ota.bad_signature", e
        # signed by the current key, delivered with the offer: applied, then old ones refused
        p.offer["release_keys"] = dict(zip(("manifest", "signature"), signed(OWNER, rotate)))
        dev = Device(d, p)
        assert run(dev.ota.check()) == "applied"
        assert dev.ota.keys == [public_key(OTHER)] and dev.state()["keys_counter"] == 1
        assert dev.alarm_keys() == ["ota.keys_changed"]
        assert not dev.ota.update_keys(*signed(OTHER, rotate))  # the same counter: a replay
    _with_folder(body)


def test_rotation_not_verifiable_here_does_not_block_updates():
    # a device provisioned after the rotation holds only the new key: the offered rotation
    # (signed by the old key) is set aside, and the release signed by the new key installs
    def body(d):
        new_pk = binascii.hexlify(public_key(OTHER)).decode()
        rotate = manifest(kind="release_keys", keys=[new_pk], counter=1, boards=None, size=None,
                          sha256=None, version=None)
        p = Platform(release(seed=OTHER))
        p.offer["release_keys"] = dict(zip(("manifest", "signature"), signed(OWNER, rotate)))
        dev = Device(d, p, release_keys=[new_pk])
        assert run(dev.ota.check()) == "applied"
        assert dev.ota.keys == [public_key(OTHER)] and dev.alarm_keys() == []
        assert any(m == "release key update not applied" for _, m, _ in dev.ota.log.lines)
    _with_folder(body)


def test_image_changed_in_transit_refused():
    def body(d):
        p = Platform()
        img = bytearray(IMAGE)
        img[5000] ^= 0x40
        p.image = bytes(img)
        dev = Device(d, p)
        assert run(dev.ota.check()) == "refused"
        assert dev.alarm_keys() == ["ota.bad_hash"]
        assert SHA in dev.alarms._buf[0][2]
        assert dev.app.read() == "1.0.0" and _staged_files(d) == []
        assert dev.state().get("pending") is None
    _with_folder(body)


def test_nothing_offered_or_same_version():
    def body(d):
        assert run(Device(d, Platform(available=False)).ota.check()) == "none"
        dev = Device(d, Platform(release(version="1.0.0")))
        assert run(dev.ota.check()) == "up_to_date" and dev.alarm_keys() == []
    _with_folder(body)


def test_pre_release_then_release():
    def body(d):
        p = Platform()
        dev = _install(d, p, "1.1.0-rc.1")
        assert dev.ota.version == "1.1.0-rc.1"
        p.offer["manifest"], p.offer["signature"] = release(version="1.1.0", counter=1)
        assert run(dev.ota.check()) == "applied"
    _with_folder(body)


def test_short_server_image_refused():
    def body(d):
        p = Platform()
        p.image = IMAGE[:9000]  # the server holds fewer bytes than the manifest says
        dev = Device(d, p)
        assert run(dev.ota.check()) == "refused"
        assert dev.alarm_keys() == ["ota.bad_download"]
        assert _staged_files(d) == []
    _with_folder(body)


def test_transient_download_errors_are_retried():
    def body(d):
        p = Platform()
        p.fail = [None, OSError("reset"), 503]
        dev = Device(d, p)
        assert run(dev.ota.check()) == "applied"
        assert dev.app.read() == "1.1.0"
    _with_folder(body)


def test_download_failure_is_retried_on_the_next_check():
    def body(d):
        p = Platform()
        p.fail = [503] * 3
        dev = Device(d, p)
        assert run(dev.ota.check()) == "failed"
        assert dev.alarm_keys() == ["ota.download_failed"]
        assert dev.alarms._buf[0][1] == "warning"
        assert _staged_files(d) == [] and dev.app.read() == "1.0.0"
        assert run(dev.ota.check()) == "applied"
    _with_folder(body)


def test_apply_hook_failure_leaves_old_version():
    def body(d):
        p = Platform()
        dev = Device(d, p)

        def broken(path, meta):
            raise OSError("flash full")
        dev.ota.apply_hook = broken
        assert run(dev.ota.check()) == "failed"
        assert dev.alarm_keys() == ["ota.apply_failed"]
        assert dev.state()["pending"] is None and not dev.ota.reset_required
        assert dev.app.read() == "1.0.0"
    _with_folder(body)


def test_rollback_when_never_confirmed_keeps_the_floor():
    def body(d):
        p = Platform()
        _install(d, p, "1.0.5", counter=2)
        p.offer["manifest"], p.offer["signature"] = release(version="1.1.0", counter=7)
        dev = Device(d, p)
        dev.ota.boot()
        assert run(dev.ota.check()) == "applied"
        for boot in (1, 2):  # max_boots=2: two boots that never get healthy
            dev = Device(d, p)
            assert dev.ota.version == "1.1.0"
            assert dev.ota.boot() == "trial" and dev.state()["pending"]["boots"] == boot
        dev = Device(d, p)
        assert dev.ota.boot() == "rolled_back" and dev.resets == [1]
        assert dev.app.read() == "1.0.5"
        st = dev.state()
        assert st["pending"] is None and st["bad"] == ["1.1.0"]
        assert st["counter_floor"] == 2  # the unconfirmed 7 never raised it
        # the next boot runs the old version and reports what happened
        dev = Device(d, p)
        assert dev.ota.version == "1.0.5" and dev.ota.boot() == "none"
        assert dev.alarm_keys() == ["ota.rolled_back"]
        msg = dev.alarms._buf[0][2]
        assert "1.1.0 did not confirm within 2 boots; rolled back to 1.0.5" in msg, msg
        assert "report" not in dev.state()
        # and the version that failed is not installed again
        n = len(p.ranges)
        assert run(dev.ota.check()) == "skipped" and len(p.ranges) == n
    _with_folder(body)


def test_failed_rollback_hook_stays_pending_and_retries():
    def body(d):
        p = Platform()
        dev = Device(d, p)
        assert run(dev.ota.check()) == "applied"
        for _ in (1, 2):
            Device(d, p).ota.boot()
        broken = [True]

        def rollback(pending):
            if broken[0]:
                raise OSError("flash write failed")
            dev.app.rollback(pending)
        dev = Device(d, p, healthy=lambda: True, confirm_after_s=0)
        dev.ota.rollback_hook = rollback
        assert dev.ota.boot() == "rollback_failed" and dev.resets == []
        st = dev.state()
        assert st["pending"]["version"] == "1.1.0" and st["pending"]["rollback_failures"] == 1
        assert dev.alarm_keys() == ["ota.rollback_failed"]
        # never treated as confirmed, even though it is healthy; no update checks either
        assert not dev.ota.confirm() and "confirmed" not in dev.state()
        assert run(dev.ota.check()) == "trial"
        assert not dev.ota.retry_rollback() and dev.state()["pending"]["rollback_failures"] == 2
        broken[0] = False
        assert dev.ota.retry_rollback() and dev.resets == [1]
        assert dev.app.read() == "1.0.0" and dev.state()["pending"] is None
        # a reboot after a failed hook tries again too
        assert "confirmed" not in dev.state()
    _with_folder(body)


def test_install_that_did_not_take_is_detected():
    def body(d):
        p = Platform()
        dev = Device(d, p)
        dev.ota.apply_hook = lambda path, meta: None  # claims success, changes nothing
        assert run(dev.ota.check()) == "applied"
        dev = Device(d, p)
        assert dev.ota.boot() == "not_running"
        assert dev.alarm_keys() == ["ota.not_running"]
        assert dev.state()["bad"] == ["1.1.0"]
    _with_folder(body)


def test_run_confirms_when_healthy_then_checks():
    def body(d):
        p = Platform()
        dev = Device(d, p)
        assert run(dev.ota.check()) == "applied"
        healthy = [False]
        dev = Device(d, p, healthy=lambda: healthy[0], confirm_after_s=0.1)
        assert dev.ota.boot() == "trial"

        async def main():
            task = asyncio.create_task(dev.ota.run())
            try:
                await asyncio.sleep_ms(300)
                assert dev.ota.trial  # not healthy yet
                healthy[0] = True
                for _ in range(40):
                    if not dev.ota.trial and dev.ota.checks:
                        break
                    await asyncio.sleep_ms(25)
                assert not dev.ota.trial and dev.ota.checks == 1
            finally:
                task.cancel()
                await asyncio.sleep_ms(0)
        run(main())
        assert dev.state()["confirmed"] == "1.1.0"
        assert dev.alarm_keys() == ["ota.confirmed"]
    _with_folder(body)


def test_counters():
    def body(d):
        c = Device(d, Platform()).ota.counters()
        assert c == {"ota_checks": 0, "ota_applied": 0, "ota_refused": 0, "ota_trial": 0}
    _with_folder(body)
