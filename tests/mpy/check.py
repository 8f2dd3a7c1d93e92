# Assertions for the device-side tests (no unittest on MicroPython).


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def true(cond, what=""):
    if not cond:
        raise AssertionError(what or "condition is false")


def raises(exc_type, message, fn, *args, **kw):
    # fn(*args) must raise exc_type whose message is exactly message
    try:
        fn(*args, **kw)
    except exc_type as e:
        got = e.args[0] if e.args else ""
        if got != message:
            raise AssertionError("%s message: got %r, want %r" % (exc_type.__name__, got, message))
        return
    except Exception as e:
        raise AssertionError("want %s %r, got %s %r" % (exc_type.__name__, message, type(e).__name__, e))
    raise AssertionError("want %s %r, nothing raised" % (exc_type.__name__, message))
