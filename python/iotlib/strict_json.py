# Strict JSON (RFC 8259) syntax check for what clients send. MicroPython's json.loads takes
# unterminated containers ('{"state": "HIGH"'), missing colons, trailing commas and leading
# zeros; a request body passes check() first, so only real JSON reaches it. Iterative, with
# a nesting limit, so a hostile body costs neither stack nor heap. A member name that appears
# twice in one object raises DuplicateKey: parsers disagree on which one wins.
import json

_WS = " \t\n\r"
_DIGITS = "0123456789"
_ESCAPES = '"\\/bfnrt'
_HEX = "0123456789abcdefABCDEF"


class DuplicateKey(ValueError):
    def __init__(self, key, i):
        super().__init__("duplicate member name at offset %d" % i)
        self.key = key


def _fail(i, what="syntax error"):
    raise ValueError("%s at offset %d" % (what, i))


def _skip(s, i):
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _string(s, i, plain=False):
    # s[i] is the opening quote; -> the offset after the closing one. plain: s holds no
    # control character, so a string without escapes ends at the next quote (found in C:
    # indexing s character by character costs far more on the board)
    if plain:
        q = s.find('"', i + 1)
        if q > 0 and s.find("\\", i + 1, q) < 0:
            return q + 1
    n = len(s)
    i += 1
    while i < n:
        c = s[i]
        if c == '"':
            return i + 1
        if c == "\\":
            e = s[i + 1] if i + 1 < n else ""
            if e == "u":
                for k in range(i + 2, i + 6):
                    if k >= n or s[k] not in _HEX:
                        _fail(i, "bad \\u escape")
                i += 6
                continue
            if not e or e not in _ESCAPES:
                _fail(i, "bad escape")
            i += 2
            continue
        if ord(c) < 0x20:
            _fail(i, "control character in string")
        i += 1
    _fail(i, "unterminated string")


def _digits(s, i):
    n = len(s)
    j = i
    while j < n and s[j] in _DIGITS:
        j += 1
    if j == i:
        _fail(i, "digit expected")
    return j


def _number(s, i):
    n = len(s)
    if s[i] == "-":
        i += 1
    if i < n and s[i] == "0":
        i += 1
    else:
        i = _digits(s, i)
    if i < n and s[i] == ".":
        i = _digits(s, i + 1)
    if i < n and s[i] in "eE":
        i += 1
        if i < n and s[i] in "+-":
            i += 1
        i = _digits(s, i)
    return i


def _key(s, i, seen, plain=False):
    # at a member: "name" : -> the offset of its value; seen: the object's names so far
    if i >= len(s) or s[i] != '"':
        _fail(i, "member name expected")
    j = _string(s, i, plain)
    name = s[i + 1:j - 1]
    if "\\" in name:
        name = json.loads(s[i:j])  # escapes: "st\\u0061te" is "state"
    if name in seen:
        raise DuplicateKey(name, i)
    seen.append(name)
    i = _skip(s, j)
    if i >= len(s) or s[i] != ":":
        _fail(i, "':' expected")
    return _skip(s, i + 1)


def check(s, max_depth=8):
    # raises ValueError unless s (str) is one JSON value, nested at most max_depth deep
    n = len(s)
    plain = not n or min(s.encode()) >= 0x20  # no control character anywhere
    stack = []
    names = []  # per open container: the member names seen (objects) or None (arrays)
    i = _skip(s, 0)
    while True:
        # a value starts at i
        if i >= n:
            _fail(i, "value expected")
        c = s[i]
        if c == "{" or c == "[":
            if len(stack) >= max_depth:
                _fail(i, "nested deeper than %d" % max_depth)
            close = "}" if c == "{" else "]"
            stack.append(close)
            names.append([] if c == "{" else None)
            i = _skip(s, i + 1)
            if i < n and s[i] == close:
                stack.pop()
                names.pop()
                i += 1
            else:
                if c == "{":
                    i = _key(s, i, names[-1], plain)
                continue
        elif c == '"':
            i = _string(s, i, plain)
        elif c == "-" or c in _DIGITS:
            i = _number(s, i)
        elif s.startswith("true", i):
            i += 4
        elif s.startswith("false", i):
            i += 5
        elif s.startswith("null", i):
            i += 4
        else:
            _fail(i, "value expected")
        # after a value: close containers, or a comma and the next value
        while True:
            i = _skip(s, i)
            if not stack:
                if i != n:
                    _fail(i, "text after the value")
                return
            if i >= n:
                _fail(i, "unterminated container")
            c = s[i]
            if c == stack[-1]:
                stack.pop()
                names.pop()
                i += 1
                continue
            if c != ",":
                _fail(i, "',' expected")
            i = _skip(s, i + 1)
            if stack[-1] == "}":
                i = _key(s, i, names[-1], plain)
            break
