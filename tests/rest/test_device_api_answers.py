"""What the device API's answers carry: the real reason phrase in the status line, Allow on
405, member names given twice refused naming the name, no byte in an error answer that is not
printable UTF-8 whatever the request held, and action_failed texts masked like log lines."""

import pytest

from rest_harness import KEY, refused, refused_raw, token

OP = token("alice", "operator")
ADMIN = token("root", "admin")
R1 = "/gpio/r1"


def status_line(api, data):
    _, _, out = api.raw(data)
    return out.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("data, line", [
    (b"GET /health HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK"),
    (b"GET /gpio HTTP/1.0\r\n\r\n", b"HTTP/1.0 401 Unauthorized"),
    (b"GET /nope HTTP/1.0\r\n\r\n", b"HTTP/1.0 404 Not Found"),
    (b"DELETE /gpio HTTP/1.0\r\n\r\n", b"HTTP/1.0 405 Method Not Allowed"),
    (b"GARBAGE\r\n\r\n", b"HTTP/1.0 400 Bad Request"),
    (b"GET /gpio HTTP/1.0\r\nX: " + b"a" * 7000 + b"\r\n\r\n",
     b"HTTP/1.0 431 Request Header Fields Too Large"),
    (b"POST /gpio/r1 HTTP/1.0\r\nContent-Length: 20000\r\n\r\n",
     b"HTTP/1.0 413 Content Too Large"),
])
def test_the_status_line_carries_the_reason_phrase(api, data, line):
    assert status_line(api, data) == line


def test_405_names_the_allowed_methods(api):
    a = refused(api, "protocol", "DELETE", R1, 405, "method_not_allowed", token=OP)
    assert set(a.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}, a.headers
    a = refused(api, "protocol", "PUT", "/health", 405, "method_not_allowed")
    assert set(a.headers["Allow"].split(", ")) == {"GET", "HEAD"}, a.headers
    a = refused(api, "protocol", "GET", "/ota/check", 405, "method_not_allowed", token=ADMIN)
    assert a.headers["Allow"] == "POST"


def test_a_member_name_given_twice_is_refused_naming_it(api):
    # json.loads would keep the last one: LOW then HIGH would switch the relay on
    refused(api, "body", "POST", R1, 400, "bad_json", "state",
            raw=b'{"state":"LOW","state":"HIGH"}', token=OP)
    refused(api, "body", "POST", R1, 400, "bad_json", "state",
            raw=b'{"state":"LOW","st\\u0061te":"HIGH"}', token=OP)
    refused(api, "body", "POST", "/gpio", 400, "bad_json", "r1",
            raw=b'{"relays": {"r1": "HIGH", "r2": "LOW", "r1": "LOW"}}', token=OP)
    assert api.board()["states"]["r1"] is False


@pytest.mark.parametrize("body, field", [
    (b'{"\\ud800": 1, "state": "HIGH"}', "?"),               # a lone surrogate
    (b'{"x\\ud83d\\ude00y": 1}', "x??y"),                    # a pair, as MicroPython splits it
    (b'{"\\u0001\\u001b[31m": 1}', "??[31m"),                # control codes
    (b'{"caf\\u00e9": 1}', "caf?"),
])
def test_error_answers_echo_only_printable_text(api, body, field):
    a = refused(api, "body", "POST", R1, 400, "unknown_field", field, raw=body, token=OP)
    a.raw.decode("utf-8")  # strict: raises on any invalid byte
    assert all(32 <= b < 127 for b in a.raw), a.raw


@pytest.mark.parametrize("data", [
    b'POST /gpio/r1 HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 18\r\n'
    b'Authorization: Bearer ' + OP.encode() + b'\r\n\r\n{"st\xffate": "HIGH"}',
    b"GET /gpio/\xff\xfe HTTP/1.0\r\n\r\n",
    b"GET /gpio/%ff%fe HTTP/1.0\r\nAuthorization: Bearer " + OP.encode() + b"\r\n\r\n",
    b"GET /gpio HTTP/1.0\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
    b"GET /gpio HTTP/1.0\r\nX-\xff: \xfe\r\n\r\n",
])
def test_invalid_utf8_in_a_request_never_comes_back(api, data):
    before = api.relays()
    st, doc, out = api.raw(data)
    assert st is not None and 400 <= st < 500, out[:300]
    out.decode("utf-8")
    assert b"\xff" not in out and b"\xfe" not in out
    assert doc is not None and doc["error"], out[:300]
    assert api.relays() == before


def test_action_failed_messages_are_masked_like_log_lines(api):
    api.sim(ota="leak")
    try:
        a = api.post("/ota/check", {}, ADMIN)
        assert a.status == 500 and a.json["error"] == "action_failed", a
        assert KEY.decode() not in a.text and KEY.decode()[:12] not in a.text, a.text
        assert "***" in a.json["message"], a.json
    finally:
        api.sim(ota="ok")
