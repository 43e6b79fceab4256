"""The inputs of a benchmark run's shapes, drawn once each here (not by every worker) and kept on disk."""
from __future__ import annotations

import os
import shutil
import tempfile

from impls import bench as worker_bench

INPUT_STORE_BYTES = 4 << 30  # the default grid's inputs take about 3.1 GiB, the full grid's about 36 GiB


class InputStore:
    """The inputs of a run's specs, drawn once each and kept for the run's later passes; none for a
    spec that fewer than two workers will load (one worker draws them itself).  Forward and
    forward+backward of a shape share them.  A shape's folder goes after its last step
    (:meth:`release`), and while the kept folders take more than ``INPUT_STORE_BYTES`` the oldest go
    too: they are drawn again if needed (the same seed, the same inputs).  In the system's temporary
    folder (``TMPDIR``)."""

    def __enter__(self):
        self.root = tempfile.TemporaryDirectory(prefix="conformance-bench-")
        self.folders = {}  # key -> (folder, bytes), oldest first; folder None when it cannot be written
        self.written = 0
        return self

    def __exit__(self, *exc):
        self.root.cleanup()

    @staticmethod
    def key(spec):
        return tuple(sorted((k, v) for k, v in spec.items() if k != "mode"))

    def folder(self, spec, sessions):
        """The folder of ``spec``'s inputs for these sessions (drawn now if need be), or None."""
        if len(sessions) < 2:
            return None
        key = self.key(spec)
        if key not in self.folders:
            self.written += 1
            folder = os.path.join(self.root.name, str(self.written))
            try:
                worker_bench.write_inputs(spec, folder)
            except (ValueError, OSError):  # a bad spec, or no room: each worker draws them (or reports the error)
                shutil.rmtree(folder, ignore_errors=True)
                folder = None
            self.folders[key] = (folder, _folder_bytes(folder))
            for old in [k for k in self.folders if k != key]:  # the oldest first
                if sum(size for _, size in self.folders.values()) <= INPUT_STORE_BYTES:
                    break
                self._drop(old)
        return self.folders[key][0]

    def release(self, spec):
        self._drop(self.key(spec))

    def _drop(self, key):
        folder, _ = self.folders.pop(key, (None, 0))
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def _folder_bytes(folder) -> int:
    if not folder:
        return 0
    return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())
