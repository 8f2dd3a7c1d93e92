# iotlib.strict_json: what the REST API takes as a JSON body. The refused texts are ones
# MicroPython's own json.loads accepts; the accepted ones must parse to the same value.
import json

from check import eq, raises, true
from iotlib import strict_json

GOOD = (
    '{"state": "HIGH"}',
    ' {"state":"LOW","pulse_ms":150} \n',
    '{"relays": {"r1": "HIGH", "r2": "LOW"}}',
    '{}', '[]', '[{}, [], ""]', '0', '-0.5e+3', '1E9', 'true', 'false', 'null',
    '"\\u00e9\\n\\"\\\\\\/"', '{"a": [1, 2.5, -3, {"b": null}]}', '"caf\u00e9"',
)

BAD = (
    ('{"state": "HIGH"', "unterminated container at offset 16"),
    ('[1, 2', "unterminated container at offset 5"),
    ('{"a":', "value expected at offset 5"),
    ('{"a": 1,', "member name expected at offset 8"),
    ('{"a" 1}', "':' expected at offset 5"),
    ('{"a": 1,}', "member name expected at offset 8"),
    ('[1,]', "value expected at offset 3"),
    ('{"a": 01}', "',' expected at offset 7"),
    ('{"a": "\x01"}', "control character in string at offset 7"),
    ('{"a": "b}', "unterminated string at offset 9"),
    ('{"a": "\\x"}', "bad escape at offset 7"),
    ('{"a": "\\u12"}', "bad \\u escape at offset 7"),
    ('{a: 1}', "member name expected at offset 1"),
    ("{'a': 1}", "member name expected at offset 1"),
    ('{"a": 1} x', "text after the value at offset 9"),
    ('{"a":1}{"b":2}', "text after the value at offset 7"),
    ('NaN', "value expected at offset 0"),
    ('-', "digit expected at offset 1"),
    ('1.', "digit expected at offset 2"),
    ('1e', "digit expected at offset 2"),
    ('tru', "value expected at offset 0"),
    ('', "value expected at offset 0"),
    ('  ', "value expected at offset 2"),
)


def test_accepts_json():
    for s in GOOD:
        strict_json.check(s)
        json.loads(s)


def test_refuses_what_json_loads_lets_through():
    for s, msg in BAD:
        raises(ValueError, msg, strict_json.check, s)


def test_nesting_limit():
    strict_json.check("[" * 8 + "]" * 8)
    raises(ValueError, "nested deeper than 8 at offset 8", strict_json.check, "[" * 9 + "]" * 9)
    raises(ValueError, "nested deeper than 2 at offset 12", strict_json.check, '{"a": {"b": []}}', 2)
    # a deep hostile body stops at the limit, long before its end
    raises(ValueError, "nested deeper than 8 at offset 8", strict_json.check, "[" * 5000)


def test_same_value_as_json_loads():
    doc = '{"relays": {"r1": "HIGH", "r2": "LOW"}, "n": [1, -2.5, true, null]}'
    strict_json.check(doc)
    eq(json.loads(doc)["relays"]["r2"], "LOW")
    true(json.loads(doc)["n"][2] is True)


def _duplicate(s):
    try:
        strict_json.check(s)
    except strict_json.DuplicateKey as e:
        return e.key, e.args[0]
    raise AssertionError("no DuplicateKey for %r" % s)


def test_a_member_name_twice_in_one_object_is_refused():
    # MicroPython's json.loads keeps the last one: the body would mean "HIGH" to it
    eq(json.loads('{"state":"LOW","state":"HIGH"}')["state"], "HIGH")
    eq(_duplicate('{"state":"LOW","state":"HIGH"}'), ("state", "duplicate member name at offset 15"))
    eq(_duplicate('{"relays": {"r1": "HIGH", "r2": "LOW", "r1": "LOW"}}')[0], "r1")
    # the same name spelled with an escape is the same name
    eq(_duplicate('{"state": "LOW", "st\\u0061te": "HIGH"}')[0], "state")
    true(isinstance(strict_json.DuplicateKey("k", 0), ValueError))


def test_the_same_name_in_different_objects_is_fine():
    strict_json.check('{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}')
    strict_json.check('[{"state": "LOW"}, {"state": "HIGH"}]')
    strict_json.check('{"a": 1, "A": 2, "a ": 3}')
