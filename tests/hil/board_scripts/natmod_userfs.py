# Mounts the natmod sent before this runs (its base64-decoded chunks in the global list
# `_chunks`) as /userfs/relaygpio_sio.mpy on an in-RAM user VFS, imports it and prints its IMPL.
import io, os, sys
class _File(io.IOBase):
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0
    def readinto(self, buf):
        n = min(len(buf), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n
    def ioctl(self, req, arg):
        return 0 if req == 4 else -1
class _UserFS:
    def __init__(self, files):
        self.files = files
    def mount(self, readonly, mkfs):
        pass
    def umount(self):
        pass
    def ilistdir(self, path):
        for name, data in self.files.items():
            yield (name[1:], 0x8000, 0, len(data))
    def stat(self, path):
        if path in self.files:
            return (0x8000, 0, 0, 0, 0, 0, len(self.files[path]), 0, 0, 0)
        raise OSError(2)
    def open(self, path, mode):
        if path not in self.files:
            raise OSError(2)
        return _File(self.files[path])
os.mount(_UserFS({'/relaygpio_sio.mpy': b''.join(_chunks)}), '/userfs')
sys.path.append('/userfs')
del _chunks
import relaygpio_sio
print(relaygpio_sio.IMPL)
