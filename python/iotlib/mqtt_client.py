# A small, strict MQTT 3.1.1 client on asyncio streams (plain TCP or TLS).
#
#   c = MQTTClient(host, port, client_id, user=..., password=..., ssl=ctx,
#                  will=(topic, b"offline", True, 1), on_message=fn)
#   # fn(topic, payload, retain) is called from the reader task
#   await c.connect(); await c.subscribe("a/+/set", 1); t = asyncio.create_task(c.run())
#   await c.publish("a/x/state", b"ON", retain=True, qos=1)
#
# CONNECT with a last will, CONNACK, PUBLISH QoS 0/1 (PUBACK both ways), SUBSCRIBE/SUBACK,
# PINGREQ/PINGRESP, DISCONNECT. No QoS 2 and clean sessions only: the device keeps no session
# on the broker, so nothing is replayed to it after an outage. Every packet the broker sends is
# bounded by max_packet; anything malformed closes the connection with MQTTError (the caller
# reconnects). Written for this device because no asyncio MQTT client for MicroPython (such as
# mqtt_as) is available from a registry reachable by the build, and micropython-lib's umqtt
# blocks.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import time

CONNACK_ERRORS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
MAX_REMAINING = 268435455  # the largest length the 4-byte encoding holds


class MQTTError(Exception):
    pass


def encode_length(n):
    if not 0 <= n <= MAX_REMAINING:
        raise MQTTError("remaining length %d out of range" % n)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise MQTTError("string of %d bytes is too long" % len(b))
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def check_topic(topic, filter=False):
    # a name to publish has no wildcards; a filter's wildcards stand alone in their level
    if not isinstance(topic, str) or not topic or len(topic) > 1024:
        raise MQTTError("topic must be a string of 1..1024 characters")
    if "\x00" in topic:
        raise MQTTError("topic holds a NUL character")
    levels = topic.split("/")
    for i, lv in enumerate(levels):
        if "+" in lv or "#" in lv:
            if not filter:
                raise MQTTError("topic %r: wildcards only in subscriptions" % topic)
            if lv not in ("+", "#") or (lv == "#" and i != len(levels) - 1):
                raise MQTTError("topic filter %r: misplaced wildcard" % topic)


def packet(kind, body):
    return bytes((kind,)) + encode_length(len(body)) + body


def connect_packet(client_id, keepalive_s, user=None, password=None, will=None, clean=True):
    flags = 0x02 if clean else 0
    payload = encode_str(client_id)
    if will is not None:
        topic, msg, retain, qos = will
        check_topic(topic)
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += encode_str(topic) + encode_str(msg)
    if user is not None:
        flags |= 0x80
        payload += encode_str(user)
        if password is not None:
            flags |= 0x40
            payload += encode_str(password)
    if not 0 <= keepalive_s <= 65535:
        raise MQTTError("keepalive out of range")
    head = encode_str("MQTT") + bytes((4, flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return packet(0x10, head + payload)


def publish_packet(topic, payload, qos=0, retain=False, pid=0, dup=False):
    check_topic(topic)
    if qos not in (0, 1):
        raise MQTTError("QoS %r not supported (0 or 1)" % (qos,))
    if isinstance(payload, str):
        payload = payload.encode()
    body = encode_str(topic)
    if qos:
        body += bytes((pid >> 8, pid & 0xFF))
    kind = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return packet(kind, body + payload)


def subscribe_packet(pid, filters):
    body = bytes((pid >> 8, pid & 0xFF))
    for topic, qos in filters:
        check_topic(topic, True)
        if qos not in (0, 1):
            raise MQTTError("QoS %r not supported (0 or 1)" % (qos,))
        body += encode_str(topic) + bytes((qos,))
    return packet(0x82, body)


def parse_publish(flags, body):
    # -> (topic, payload, qos, retain, pid)
    qos = (flags >> 1) & 3
    if qos > 1:
        raise MQTTError("PUBLISH with QoS %d: not subscribed to that" % qos)
    if len(body) < 2:
        raise MQTTError("PUBLISH too short")
    n = body[0] << 8 | body[1]
    end = 2 + n
    if end > len(body):
        raise MQTTError("PUBLISH topic runs past the packet")
    try:
        topic = str(body[2:end], "utf-8")
    except UnicodeError:
        raise MQTTError("PUBLISH topic is not UTF-8")
    pid = 0
    if qos:
        if end + 2 > len(body):
            raise MQTTError("PUBLISH without its packet id")
        pid = body[end] << 8 | body[end + 1]
        end += 2
    return topic, bytes(body[end:]), qos, bool(flags & 1), pid


def _nodelay(sock):
    # TCP_NODELAY: a PUBLISH right after a PUBACK must not wait ~40 ms for the peer's delayed ACK
    try:
        sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (Linux and lwIP numbers)
    except (OSError, AttributeError):
        pass  # a stack without the option: only slower


class _NoDelayTLS:
    # asyncio.open_connection makes the socket itself: set the option as it is wrapped
    def __init__(self, ctx):
        self.ctx = ctx

    def wrap_socket(self, sock, **kw):
        _nodelay(sock)
        return self.ctx.wrap_socket(sock, **kw)


class MQTTClient:
    def __init__(self, host, port, client_id, user=None, password=None, ssl=None,
                 server_hostname=None, keepalive_s=60, will=None, on_message=None,
                 max_packet=4096, timeout_ms=10000):
        self.host = host
        self.port = port
        self.client_id = client_id
        self.user = user
        self.password = password
        self.ssl = ssl
        self.server_hostname = server_hostname or host
        self.keepalive_s = keepalive_s
        self.will = will
        self.on_message = on_message
        self.max_packet = max_packet
        self.timeout_ms = timeout_ms
        self.reader = None
        self.writer = None
        self.connected = False
        self._pid = 0
        self._acks = {}          # packet id -> [asyncio.Event, result]
        self._lock = asyncio.Lock()
        self._last_rx = 0
        self._reader_task = None
        self.dead = False
        self.received = 0
        self.sent = 0

    # ---- wire ----

    async def _send(self, data):
        if self.writer is None:
            raise MQTTError("not connected")
        async with self._lock:  # whole packets only, never interleaved
            self.writer.write(data)
            await self.writer.drain()
        self.sent += 1

    async def _read_packet(self):
        r = self.reader
        head = await r.readexactly(1)
        n = 0
        shift = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTError("malformed remaining length")
        if n > self.max_packet:
            raise MQTTError("packet of %d bytes is over the %d byte limit" % (n, self.max_packet))
        body = await r.readexactly(n) if n else b""
        self._last_rx = time.ticks_ms()
        self.received += 1
        return head[0], body

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    # ---- session ----

    async def connect(self):
        self.close()
        try:
            self.reader, self.writer = await asyncio.wait_for_ms(
                asyncio.open_connection(self.host, self.port,
                                        ssl=_NoDelayTLS(self.ssl) if self.ssl else None,
                                        server_hostname=self.server_hostname if self.ssl else None),
                self.timeout_ms)
            if not self.ssl:
                _nodelay(self.writer.s)
            await self._send(connect_packet(self.client_id, self.keepalive_s, self.user,
                                            self.password, self.will))
            kind, body = await asyncio.wait_for_ms(self._read_packet(), self.timeout_ms)
        except asyncio.TimeoutError:
            self.close()
            raise MQTTError("no answer from %s:%d" % (self.host, self.port))
        except EOFError:
            self.close()
            raise MQTTError("broker closed the connection before CONNACK")
        except Exception:
            self.close()
            raise
        if kind != 0x20 or len(body) != 2:
            self.close()
            raise MQTTError("expected CONNACK, got packet type 0x%02x" % kind)
        if body[1]:
            self.close()
            raise MQTTError("broker refused the connection: %s" %
                            CONNACK_ERRORS.get(body[1], "code %d" % body[1]))
        self.connected = True

    def close(self):
        self.connected = False
        w = self.writer
        self.reader = self.writer = None
        for pid in self._acks:
            self._acks[pid][0].set()  # waiters see no result and give up
        self._acks = {}
        if w is not None:
            try:
                w.close()
                s = getattr(w, "s", None)  # MicroPython's Stream.close() leaves the socket open
                if s is not None:
                    s.close()
            except Exception:
                pass

    async def disconnect(self):
        # a clean goodbye: the broker does not publish the will
        try:
            await self._send(b"\xe0\x00")
        except Exception:
            pass
        self.close()

    async def _acked(self, pid, data, what):
        ev = asyncio.Event()
        slot = [ev, None]
        self._acks[pid] = slot
        try:
            await self._send(data)
            await asyncio.wait_for_ms(ev.wait(), self.timeout_ms)
        except asyncio.TimeoutError:
            self.close()
            raise MQTTError("no %s from the broker" % what)
        finally:
            self._acks.pop(pid, None)
        if slot[1] is None:
            raise MQTTError("connection lost before %s" % what)
        return slot[1]

    async def publish(self, topic, payload, retain=False, qos=0):
        if qos == 0:
            await self._send(publish_packet(topic, payload, 0, retain))
            return
        pid = self._next_pid()
        await self._acked(pid, publish_packet(topic, payload, qos, retain, pid), "PUBACK")

    async def subscribe(self, topic, qos=1):
        pid = self._next_pid()
        codes = await self._acked(pid, subscribe_packet(pid, ((topic, qos),)), "SUBACK")
        if not codes or codes[0] == 0x80:
            raise MQTTError("broker refused the subscription to %r" % topic)
        return codes[0]

    # ---- the reader task: returns only by raising (connection lost or broken) ----

    async def run(self):
        self.dead = False
        self._reader_task = asyncio.current_task()
        ping = asyncio.create_task(self._pinger())
        try:
            while True:
                try:
                    kind, body = await self._read_packet()
                except EOFError:
                    raise MQTTError("broker closed the connection")
                except asyncio.CancelledError:
                    if self.dead:  # cancelled by the pinger, not by our owner
                        raise MQTTError("broker silent for too long")
                    raise
                self._dispatch(kind, body)
        finally:
            ping.cancel()
            self.close()

    def _dispatch(self, kind, body):
        t = kind & 0xF0
        if t == 0x30:
            topic, payload, qos, retain, pid = parse_publish(kind & 0x0F, body)
            if qos:
                # QoS 1: acknowledged once handed over; a redelivery is handled again
                # sent by a task: a write here could race a drain of the same stream
                asyncio.create_task(self._send_quiet(bytes((0x40, 2, pid >> 8, pid & 0xFF))))
            if self.on_message is not None:
                self.on_message(topic, payload, retain)
        elif t == 0x40 or t == 0x90:
            if len(body) < 3 if t == 0x90 else len(body) != 2:
                raise MQTTError("malformed %s" % ("SUBACK" if t == 0x90 else "PUBACK"))
            pid = body[0] << 8 | body[1]
            slot = self._acks.get(pid)
            if slot is not None:
                slot[1] = bytes(body[2:]) if t == 0x90 else True
                slot[0].set()
        elif t == 0xD0:
            pass  # PINGRESP: _last_rx is enough
        else:
            raise MQTTError("unexpected packet type 0x%02x from the broker" % kind)

    async def _send_quiet(self, data):
        try:
            await self._send(data)
        except Exception:
            pass  # the reader sees the broken link

    def _lost(self):
        self.dead = True
        self._reader_task.cancel()

    async def _pinger(self):
        # PINGREQ at half the keepalive; nothing heard for 1.5 keepalives: the link is dead
        half = max(self.keepalive_s * 500, 500)
        while True:
            await asyncio.sleep_ms(half)
            if time.ticks_diff(time.ticks_ms(), self._last_rx) > 3 * half:
                self._lost()
                return
            try:
                await self._send(b"\xc0\x00")
            except Exception:
                self._lost()
                return
