#!/usr/bin/env python3
"""gguf_types.py — an independent reader of GGUF tensor infos for the tests.

  gguf_types.py FILE                          prints "name ggml_type_id" per tensor, in file order
  gguf_types.py FILE --set-type NAME ID OUT   writes a copy of FILE whose tensor NAME claims type ID

Written from the GGUF spec (ggml docs/gguf.md), not from cinfer's reader.
"""
import struct
import sys

SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip_value(buf, pos, vtype):
    if vtype in SCALAR:
        return pos + SCALAR[vtype]
    if vtype == 8:  # string
        (n,) = struct.unpack_from("<Q", buf, pos)
        return pos + 8 + n
    if vtype == 9:  # array
        etype, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if etype in SCALAR:
            return pos + count * SCALAR[etype]
        for _ in range(count):
            pos = skip_value(buf, pos, etype)
        return pos
    raise ValueError(f"unknown value type {vtype}")


def tensor_infos(buf):
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    assert magic == b"GGUF" and version in (2, 3), "not a GGUF v2/v3 file"
    pos = 24
    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", buf, pos)
        pos += 8 + klen
        (vtype,) = struct.unpack_from("<I", buf, pos)
        pos = skip_value(buf, pos + 4, vtype)
    infos = []
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<Q", buf, pos)
        name = buf[pos + 8:pos + 8 + nlen].decode()
        pos += 8 + nlen
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
        pos += 4 + 8 * n_dims
        type_pos = pos
        (ttype,) = struct.unpack_from("<I", buf, pos)
        pos += 12  # type + offset
        infos.append((name, ttype, dims, type_pos))
    return infos


def main():
    data = bytearray(open(sys.argv[1], "rb").read())
    infos = tensor_infos(data)
    if len(sys.argv) == 2:
        for name, ttype, dims, _ in infos:
            print(name, ttype, "x".join(str(d) for d in dims))
        return
    assert sys.argv[2] == "--set-type" and len(sys.argv) == 6, __doc__
    target, new_type, out = sys.argv[3], int(sys.argv[4]), sys.argv[5]
    for name, _, _, type_pos in infos:
        if name == target:
            struct.pack_into("<I", data, type_pos, new_type)
            open(out, "wb").write(data)
            return
    sys.exit(f"no tensor {target}")


if __name__ == "__main__":
    main()
