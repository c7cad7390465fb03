"""Fails when a compiled module in a built virtualenv needs a shared library the
runtime image lacks.

deploy/Dockerfile's runtime stage is python:3.11-slim-bookworm plus the virtualenv and
nothing else, so every library an extension (or a library bundled beside it, as
manylinux wheels do in <package>.libs/) needs must be either in the virtualenv or
in that base image. Usage: check-native-libs.py <virtualenv or build dir>...
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

# Libraries python:3.11-slim-bookworm has: glibc and the toolchain runtime, and what
# the interpreter's own modules link (zlib, bz2, lzma, ssl, ffi, sqlite, uuid, ...).
BASE_IMAGE = {
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libm.so.6",
    # glibc's vector math library (package libc6, like libm): pillow-heif's x265 links it.
    "libmvec.so.1",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libcrypt.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
    "libbz2.so.1.0",
    "liblzma.so.5",
    "libffi.so.8",
    "libssl.so.3",
    "libcrypto.so.3",
    "libsqlite3.so.0",
    "libuuid.so.1",
    "libexpat.so.1",
}

_DT_NEEDED = 1
_SHT_DYNAMIC = 6


def needed(path: Path) -> list[str]:
    """DT_NEEDED entries of an x86-64 ELF shared object (empty for anything else)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    names: list[str] = []
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if kind != _SHT_DYNAMIC:
            continue
        strtab_offset = sections[link][4]
        for pos in range(offset, offset + size, entsize or 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == _DT_NEEDED:
                end = data.index(b"\0", strtab_offset + value)
                names.append(data[strtab_offset + value : end].decode())
    return names


def main(roots: list[str]) -> int:
    missing: dict[str, set[str]] = {}
    checked = 0
    for root in map(Path, roots):
        objects = [p for p in root.rglob("*.so*") if p.is_file() and not p.is_symlink()]
        bundled = {p.name for p in objects}
        for obj in objects:
            checked += 1
            for lib in needed(obj):
                if lib not in bundled and lib not in BASE_IMAGE:
                    missing.setdefault(lib, set()).add(str(obj.relative_to(root)))
    for lib, users in sorted(missing.items()):
        print(
            f"check-native-libs: {lib} is in neither the virtualenv nor the base image;"
            f" needed by {', '.join(sorted(users)[:3])}",
            file=sys.stderr,
        )
    if missing:
        return 1
    print(f"check-native-libs: {checked} shared objects, every library they need is present")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
