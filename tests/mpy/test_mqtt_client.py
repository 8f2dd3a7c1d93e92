# iotlib.mqtt_client: the MQTT 3.1.1 packets byte for byte (as the standard lays them out),
# strict parsing of what a broker sends, and the client against a scripted broker on
# 127.0.0.1 (CONNACK refusals, oversize and malformed packets close the link, QoS 1 both ways).
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from check import eq, raises, true
from iotlib import mqtt_client as mc
from iotlib.mqtt_client import MQTTClient, MQTTError
from standins import run


def test_remaining_length_encoding():
    # the spec's boundary values (MQTT 3.1.1, 2.2.3)
    for n, want in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                    (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
                    (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")):
        eq(mc.encode_length(n), want, "length %d" % n)
    raises(MQTTError, "remaining length 268435456 out of range", mc.encode_length, 268435456)


def test_connect_packet_with_will_and_credentials():
    p = mc.connect_packet("dev1", 60, "user", "pw", ("d/avail", b"offline", True, 1))
    body = (b"\x00\x04MQTT\x04" + bytes((0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02,)) + b"\x00\x3c"
            + b"\x00\x04dev1" + b"\x00\x07d/avail" + b"\x00\x07offline"
            + b"\x00\x04user" + b"\x00\x02pw")
    eq(p, b"\x10" + bytes((len(body),)) + body, "CONNECT")
    eq(mc.connect_packet("x", 10)[9], 0x02, "no will, no user: clean session only")


def test_publish_and_subscribe_packets():
    eq(mc.publish_packet("a/b", b"ON", 0, True), b"\x31\x07\x00\x03a/bON", "QoS 0 retained")
    eq(mc.publish_packet("a/b", "OFF", 1, False, 258), b"\x32\x0a\x00\x03a/b\x01\x02OFF", "QoS 1")
    eq(mc.subscribe_packet(7, (("a/+/set", 1),)), b"\x82\x0c\x00\x07\x00\x07a/+/set\x01",
       "SUBSCRIBE")
    raises(MQTTError, "QoS 2 not supported (0 or 1)", mc.publish_packet, "a", b"", 2)


def test_topic_rules():
    raises(MQTTError, "topic 'a/+': wildcards only in subscriptions", mc.check_topic, "a/+")
    raises(MQTTError, "topic filter 'a/#/b': misplaced wildcard", mc.check_topic, "a/#/b", True)
    raises(MQTTError, "topic filter 'a/b+': misplaced wildcard", mc.check_topic, "a/b+", True)
    raises(MQTTError, "topic must be a string of 1..1024 characters", mc.check_topic, "")
    raises(MQTTError, "topic holds a NUL character", mc.check_topic, "a\x00b")
    mc.check_topic("a/+/set", True)
    mc.check_topic("a/#", True)


def test_parse_publish_is_strict():
    eq(mc.parse_publish(0x01, b"\x00\x03a/bON"), ("a/b", b"ON", 0, True, 0), "QoS 0 retained")
    eq(mc.parse_publish(0x02, b"\x00\x01t\x00\x09x"), ("t", b"x", 1, False, 9), "QoS 1")
    raises(MQTTError, "PUBLISH too short", mc.parse_publish, 0, b"\x00")
    raises(MQTTError, "PUBLISH topic runs past the packet", mc.parse_publish, 0, b"\x00\x09ab")
    raises(MQTTError, "PUBLISH without its packet id", mc.parse_publish, 0x02, b"\x00\x01t\x00")
    raises(MQTTError, "PUBLISH with QoS 2: not subscribed to that", mc.parse_publish, 0x04,
           b"\x00\x01t\x00\x01")
    raises(MQTTError, "PUBLISH topic is not UTF-8", mc.parse_publish, 0, b"\x00\x02\xff\xfe")


class Broker:
    # a scripted broker on 127.0.0.1: answers CONNECT with `connack`, then runs `script`
    def __init__(self, connack=b"\x20\x02\x00\x00", script=None):
        self.connack = connack
        self.script = script
        self.got = []
        self.server = None
        self.port = None

    async def read(self, r):
        head = (await r.readexactly(1))[0]
        n = shift = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        body = await r.readexactly(n) if n else b""
        self.got.append((head, body))
        return head, body

    async def serve(self, r, w):
        try:
            await self.read(r)  # CONNECT
            w.write(self.connack)
            await w.drain()
            if self.script:
                await self.script(self, r, w)
            while True:
                await self.read(r)
        except (EOFError, OSError):
            pass
        await w.wait_closed()  # MicroPython closes the socket here, not in close()

    async def start(self):
        for port in range(18830, 18930):
            try:
                self.server = await asyncio.start_server(self.serve, "127.0.0.1", port)
                self.port = port
                return self
            except OSError:
                pass
        raise OSError("no free port")

    def stop(self):
        self.server.close()


def test_connack_refusal_is_named():
    async def main():
        b = await Broker(b"\x20\x02\x00\x04").start()
        c = MQTTClient("127.0.0.1", b.port, "dev", user="u", password="bad", timeout_ms=2000)
        try:
            await c.connect()
            raise AssertionError("connected with a refused CONNACK")
        except MQTTError as e:
            eq(str(e), "broker refused the connection: bad user name or password", "message")
        eq(c.connected, False, "not connected")
        b.stop()
    run(main())


def test_broker_hanging_up_before_connack_is_an_mqtt_error():
    async def main():
        b = Broker(connack=b"")

        async def hang_up(r, w):
            await b.read(r)
            await w.wait_closed()
        b.serve = hang_up
        await b.start()
        c = MQTTClient("127.0.0.1", b.port, "dev", timeout_ms=2000)
        try:
            await c.connect()
            raise AssertionError("connected")
        except MQTTError as e:
            eq(str(e), "broker closed the connection before CONNACK", "message")
        b.stop()
    run(main())


def test_qos1_both_ways_and_retain_flag():
    got = []

    async def script(b, r, w):
        # the broker delivers a QoS 1 retained message, then acks the client's publish
        w.write(b"\x33\x09\x00\x03a/b\x00\x05ON")
        await w.drain()
        head, body = await b.read(r)   # the client's PUBACK for pid 5
        got.append(("puback", head, body))
        head, body = await b.read(r)   # the client's QoS 1 PUBLISH
        w.write(b"\x40\x02" + body[5:7])
        await w.drain()

    async def main():
        b = await Broker(script=script).start()
        msgs = []
        c = MQTTClient("127.0.0.1", b.port, "dev", timeout_ms=2000,
                       on_message=lambda t, p, r: msgs.append((t, p, r)))
        await c.connect()
        reader = asyncio.create_task(c.run())
        for _ in range(200):
            if got:
                break
            await asyncio.sleep_ms(5)
        await c.publish("s/t", b"OFF", retain=True, qos=1)
        eq(msgs, [("a/b", b"ON", True)], "delivered with its retain flag")
        eq(got, [("puback", 0x40, b"\x00\x05")], "PUBACK with the broker's packet id")
        reader.cancel()
        c.close()
        b.stop()
    run(main())


def test_oversize_and_unexpected_packets_close_the_link():
    for send, want in ((b"\x30\xff\x7f", "packet of 16383 bytes is over the 1024 byte limit"),
                       (b"\x30\xff\xff\xff\xff\x01", "malformed remaining length"),
                       (b"\x10\x00", "unexpected packet type 0x10 from the broker"),
                       (b"\x90\x01\x00", "malformed SUBACK")):
        async def script(b, r, w, send=send):
            w.write(send)
            await w.drain()

        async def main():
            b = await Broker(script=script).start()
            c = MQTTClient("127.0.0.1", b.port, "dev", max_packet=1024, timeout_ms=2000)
            await c.connect()
            try:
                await asyncio.wait_for_ms(c.run(), 2000)
                raise AssertionError("run() returned")
            except MQTTError as e:
                eq(str(e), want, "error")
            eq(c.connected, False, "closed")
            b.stop()
        run(main())


def test_broker_closing_ends_run():
    async def script(b, r, w):
        await w.wait_closed()
        raise EOFError

    async def main():
        b = await Broker(script=script).start()
        c = MQTTClient("127.0.0.1", b.port, "dev", timeout_ms=2000)
        await c.connect()
        try:
            await asyncio.wait_for_ms(c.run(), 2000)
        except MQTTError as e:
            eq(str(e), "broker closed the connection", "error")
        true(not c.connected, "closed")
        b.stop()
    run(main())


def test_silent_broker_is_detected_by_keepalive():
    async def script(b, r, w):
        while True:  # reads everything, answers nothing (PINGREQs included)
            await b.read(r)

    async def main():
        b = await Broker(script=script).start()
        c = MQTTClient("127.0.0.1", b.port, "dev", keepalive_s=1, timeout_ms=2000)
        await c.connect()
        try:
            await asyncio.wait_for_ms(c.run(), 4000)
            raise AssertionError("run() returned")
        except MQTTError as e:
            eq(str(e), "broker silent for too long", "error")
        true(any(h == 0xC0 for h, _ in b.got), "PINGREQ sent")
        b.stop()
    run(main())
