# Selects the relaygpio implementation under test: "c", "natmod" or "python".
rg = None  # the module under test, set by load()


def load(name):
    global rg
    if name == "c":
        import relaygpio as m
    elif name == "natmod":
        import relaygpio_natmod as m  # the x64 .mpy, found on sys.path
    elif name == "python":
        import pyrelaygpio as m
    else:
        raise ValueError("unknown implementation %s (c, natmod or python)" % name)
    if m.IMPL != name:
        raise ValueError("asked for %s, module says IMPL %s" % (name, m.IMPL))
    rg = m
    return m
