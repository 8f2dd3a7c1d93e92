# Heap use of the app's modules and of each relaygpio implementation's Bank on the MicroPython
# unix build (bench/memory.py): the caller defines MODS (module names to import) first.
import gc
# every global assigned below exists first: a growing globals dict would count
m = err = e = label = mod = rg = b = pins = None
f0 = f1 = f2 = q = 0
gc.collect()
print('boot', gc.mem_free(), gc.mem_alloc())
for m in MODS:
    gc.collect()
    f0 = gc.mem_free()
    try:
        __import__(m)
        err = ''
    except Exception as e:
        err = type(e).__name__
    gc.collect()
    print('import', m, f0 - gc.mem_free(), err)
gc.collect()
print('app', gc.mem_free())
for label, mod in (('relaygpio', 'relaygpio'), ('relaygpio_natmod', 'relaygpio_natmod'),
                   ('pyrelaygpio', 'pyrelaygpio')):
    pins = list(range(32))
    gc.collect()
    f0 = gc.mem_free()
    rg = __import__(mod)
    gc.collect()
    f1 = gc.mem_free()
    b = rg.Bank(pins)
    for q in range(32, 40):
        b.input(q)
    gc.collect()
    f2 = gc.mem_free()
    b.deinit()
    b = rg = None
    print('bank', label, f0 - f1, f1 - f2, f2)
