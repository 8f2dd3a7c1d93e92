# Token-bucket rate limiting for the device REST API, keyed by client address
# and by token subject, plus one device-wide budget of token verifications
# (each costs an HMAC). Integer arithmetic only, time passed in as ms ticks so
# tests are exact, and a bounded key table so a flood of addresses cannot use
# up the heap: when it is full of active keys, newcomers share one overflow
# bucket, so new addresses or subjects never buy a fresh burst.
_MASK = 0x3FFFFFFF   # ticks_ms() ring on the board; masking also fits wider rings
READ_FACTOR = 4      # reads and health get this many times the write limit


class Limit:
    # `requests` per `per_s` seconds on average, up to `burst` at once.
    # Levels count in units of 1/(per_s*1000) token, so refill per ms is exact.
    def __init__(self, requests, per_s=1, burst=None):
        if burst is None:
            burst = requests
        for name, v in (("requests", requests), ("per_s", per_s), ("burst", burst)):
            if type(v) is not int or v < 1:
                raise ValueError("rate limit %s must be an int >= 1, got %r" % (name, v))
        self.requests = requests
        self.per_s = per_s
        self.burst = burst
        self.unit = per_s * 1000       # units per token
        self.cap = burst * self.unit   # a full bucket

    @classmethod
    def from_config(cls, entry):
        # a config rate_limits entry: {"requests": n, "window_s": s}; burst = n
        return cls(entry["requests"], entry["window_s"])

    def scaled(self, factor):
        return Limit(self.requests * factor, self.per_s, self.burst * factor)

    def __eq__(self, other):
        return isinstance(other, Limit) and (self.requests, self.per_s, self.burst) == \
            (other.requests, other.per_s, other.burst)

    def __repr__(self):
        return "Limit(%d, per_s=%d, burst=%d)" % (self.requests, self.per_s, self.burst)


DEFAULT_WRITE = Limit(5, 1, 10)
DEFAULT_READ = DEFAULT_WRITE.scaled(READ_FACTOR)
DEFAULT_VERIFY_PER_S = 50   # token verifications (HMACs) per second, all clients together


def _level(e, now):
    # the bucket level of entry [level, last_ms, limit] at now
    level, last, lim = e
    missing = lim.cap - level
    if missing <= 0:
        return lim.cap
    elapsed = (now - last) & _MASK
    # compare before multiplying: long idle times would make big ints
    if elapsed >= (missing + lim.requests - 1) // lim.requests:
        return lim.cap
    return level + elapsed * lim.requests


class RateLimiter:
    # one bucket per key, at most max_keys of them; past that, one shared overflow bucket
    def __init__(self, limit, max_keys=32):
        if type(max_keys) is not int or max_keys < 1:
            raise ValueError("max_keys must be an int >= 1")
        self.limit = limit
        self.max_keys = max_keys
        self._b = {}
        self._over = None   # the overflow bucket, made when first needed
        self.rejected = 0
        self.evicted = 0
        self.overflowed = 0  # checks that went to the overflow bucket

    def __len__(self):
        return len(self._b)

    def check(self, key, now_ms, limit=None):
        # -> (allowed, retry_after_s); a refused request costs nothing
        lim = limit or self.limit
        now = now_ms & _MASK
        e = self._b.get(key)
        if e is None:
            if len(self._b) >= self.max_keys:
                self._drop_refilled(now)
            if len(self._b) < self.max_keys:
                e = [lim.cap, now, lim]
                self._b[key] = e
            else:
                # every key is active: no eviction would give the newcomer a fresh bucket
                self.overflowed += 1
                e = self._over
                if e is None:
                    e = self._over = [lim.cap, now, lim]
        if e[2] is not lim:
            # the key's limit changed (new config or role): keep its fill ratio
            old = e[2]
            e[0] = _level(e, now) * lim.cap // old.cap
            e[1] = now
            e[2] = lim
        level = _level(e, now)
        e[1] = now
        if level >= lim.unit:
            e[0] = level - lim.unit
            return True, 0
        e[0] = level
        self.rejected += 1
        wait_ms = (lim.unit - level + lim.requests - 1) // lim.requests
        return False, (wait_ms + 999) // 1000

    def _drop_refilled(self, now):
        # a refilled bucket is the same as no bucket: drop all of those (an active key,
        # one whose bucket is not full, is never dropped)
        full = [k for k in self._b if _level(self._b[k], now) >= self._b[k][2].cap]
        for k in full:
            del self._b[k]
        self.evicted += len(full)


class ApiRateLimiter:
    # Buckets by client address (checked before the token is read, so floods
    # cost no HMAC) and by token subject (with the token's role's limit).
    # Reads and health have their own, larger buckets: a client flooding writes
    # does not take reads away from anyone, itself included.
    def __init__(self, write=DEFAULT_WRITE, read=None, role_limits=None, max_keys=32,
                 verify_per_s=DEFAULT_VERIFY_PER_S):
        self.write = write
        self.verify = Limit(verify_per_s)
        self._verify = RateLimiter(self.verify, 1)
        self.read = read or write.scaled(READ_FACTOR)
        self.role_limits = role_limits or {}
        self._addr_w = RateLimiter(self.write, max_keys)
        self._addr_r = RateLimiter(self.read, max_keys)
        self._sub_w = RateLimiter(self.write, max_keys)
        self._sub_r = RateLimiter(self.read, max_keys)
        self._read_of = {}  # role -> its read limit, made once

    @classmethod
    def from_config(cls, rate_limits, max_keys=32, verify_per_s=DEFAULT_VERIFY_PER_S):
        # config "rate_limits": {role or "default": {"requests", "window_s"}};
        # verify_per_s: config http.token_checks_per_s
        rate_limits = rate_limits or {}
        write = DEFAULT_WRITE
        if "default" in rate_limits:
            write = Limit.from_config(rate_limits["default"])
        roles = {}
        for name in rate_limits:
            if name != "default":
                roles[name] = Limit.from_config(rate_limits[name])
        return cls(write, None, roles, max_keys, verify_per_s)

    def check_address(self, address, now_ms, read=False):
        return (self._addr_r if read else self._addr_w).check(address, now_ms)

    def check_subject(self, subject, now_ms, read=False, role=None):
        lim = self.role_limits.get(role) if role is not None else None
        if lim is None:
            return (self._sub_r if read else self._sub_w).check(subject, now_ms)
        if not read:
            return self._sub_w.check(subject, now_ms, lim)
        rl = self._read_of.get(role)
        if rl is None:
            rl = lim.scaled(READ_FACTOR)
            self._read_of[role] = rl
        return self._sub_r.check(subject, now_ms, rl)

    def check_verification(self, now_ms):
        # one token verification (an HMAC) from the device-wide budget
        return self._verify.check(0, now_ms)

    def stats(self):
        # (rejected, evicted) over all tables, for /metrics
        ts = (self._addr_w, self._addr_r, self._sub_w, self._sub_r)
        return sum(t.rejected for t in ts), sum(t.evicted for t in ts)
