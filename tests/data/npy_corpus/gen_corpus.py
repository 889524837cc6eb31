#!/usr/bin/python3
"""Generates the NPY/NPZ test corpus (run once; the outputs are committed).

    cd tests/data/npy_corpus && /usr/bin/python3 gen_corpus.py

valid/      files written by numpy itself (plus hand-made headers and a ZIP64 archive that numpy
            loads); tests/data/test_npy.cpp checks their values, listed in README.md.
malformed/  files that erlmr::data must reject with FormatError.

Written with Python 3.11 and numpy 1.24.2 (Debian 12's python3-numpy).
"""
import io
import os
import struct
import zipfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VALID = os.path.join(HERE, "valid")
BAD = os.path.join(HERE, "malformed")


def clean(d):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy_bytes(arr, version=None):
    b = io.BytesIO()
    np.lib.format.write_array(b, arr, version=version, allow_pickle=False)
    return b.getvalue()


def raw_npy(header, payload=b"", version=(1, 0), hlen=None):
    """An NPY file with a hand-written header (no padding added)."""
    h = header.encode("latin1")
    n = len(h) if hlen is None else hlen
    ln = struct.pack("<H", n) if version[0] == 1 else struct.pack("<I", n)
    return b"\x93NUMPY" + bytes(version) + ln + h + payload


def deflate_raw(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def make_zip(entries, zip64=False, eocd=None, cd_count=None, zip64_locator_offset=None):
    """A minimal independent ZIP writer whose every field can be made to lie.

    entries: dicts with name, payload (uncompressed) and optional method, comp, crc, usize,
    csize, local_name, offset (central directory's local header offset), flags.
    """
    out = bytearray()
    cds = []
    for e in entries:
        name = e["name"].encode()
        raw = e["payload"]
        method = e.get("method", 0)
        comp = e.get("comp", raw if method == 0 else deflate_raw(raw))
        crc = e.get("crc", zlib.crc32(raw))
        usize = e.get("usize", len(raw))
        csize = e.get("csize", len(comp))
        flags = e.get("flags", 0)
        lname = e.get("local_name", e["name"]).encode()
        off = len(out)
        if zip64:
            lextra = struct.pack("<HHQQ", 1, 16, usize, csize)
            lcs = lus = 0xFFFFFFFF
        else:
            lextra = b""
            lcs, lus = csize & 0xFFFFFFFF, usize & 0xFFFFFFFF
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, flags, method, 0, 0x21,
                           crc, lcs, lus, len(lname), len(lextra)) + lname + lextra + comp
        cds.append((name, method, crc, usize, csize, e.get("offset", off), flags, e.get("cextra")))
    cd_off = len(out)
    for name, method, crc, usize, csize, off, flags, cextra in cds:
        if zip64:
            extra = struct.pack("<HHQQQ", 1, 24, usize, csize, off)
            cs = us = lo = 0xFFFFFFFF
        else:
            extra = b""
            cs, us, lo = csize & 0xFFFFFFFF, usize & 0xFFFFFFFF, off & 0xFFFFFFFF
        if cextra is not None:
            extra, cs = cextra  # (extra bytes, csize field)
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if zip64 else 20, 45 if zip64 else 20,
                           flags, method, 0, 0x21, crc, cs, us, len(name), len(extra), 0, 0, 0,
                           0o100644 << 16, lo) + name + extra
    cd_size = len(out) - cd_off
    n = len(cds) if cd_count is None else cd_count
    if zip64:
        rec = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_off)
        loc = rec if zip64_locator_offset is None else zip64_locator_offset
        out += struct.pack("<IIQI", 0x07064B50, 0, loc, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        f = dict(disk=0, cd_disk=0, n_disk=n, n_total=n, cd_size=cd_size, cd_off=cd_off)
        f.update(eocd or {})
        out += struct.pack("<IHHHHIIH", 0x06054B50, f["disk"], f["cd_disk"], f["n_disk"], f["n_total"],
                           f["cd_size"], f["cd_off"], 0)
    return bytes(out)


# ------------------------------------------------------------------------------------------
# valid
# ------------------------------------------------------------------------------------------
clean(VALID)
A = {  # name -> array (values documented in README.md)
    "f4_c.npy": np.arange(6, dtype="<f4").reshape(2, 3) * np.float32(0.5),
    "f8_be.npy": (np.arange(6).reshape(2, 3) * 1.25 - 2).astype(">f8"),
    "i8_le.npy": np.array([-(2**62), -1, 0, 1, 2**62 + 7], dtype="<i8"),
    "i8_be.npy": np.array([-(2**62), -1, 0, 1, 2**62 + 7], dtype=">i8"),
    "i4_be.npy": np.array([[-2147483648, 2147483647], [0, -5]], dtype=">i4"),
    "u1.npy": np.array([0, 1, 127, 128, 255], dtype="u1"),
    "b1.npy": np.array([[True, False, True], [False, False, True]]),
    "c8.npy": np.array([1 + 2j, -3.5 + 0.25j, -1j], dtype="<c8"),
    "c16_be.npy": np.array([[1e300 + 1j, -2 - 2j]], dtype=">c16"),
    "fortran_i4.npy": np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4)),
    "fortran_f8_be.npy": np.asfortranarray((np.arange(12).reshape(3, 4) + 0.5).astype(">f8")),
    "fortran_c8_be.npy": np.asfortranarray((np.arange(6) - 1j * np.arange(6)).reshape(2, 3).astype(">c8")),
    "scalar_f8.npy": np.array(-7.25),
    "scalar_c16_be.npy": np.array(1.5 - 2.5j, dtype=">c16"),
    "one_tuple.npy": np.arange(5, dtype="<i8"),
    "empty.npy": np.zeros((0, 3), dtype="<f4"),
}
for name, arr in A.items():
    put(VALID, name, npy_bytes(arr))
assert np.load(os.path.join(VALID, "fortran_i4.npy")).flags.f_contiguous
put(VALID, "v2.npy", npy_bytes(np.arange(5, dtype="<f8") / 4, version=(2, 0)))
put(VALID, "v3.npy", npy_bytes(np.array([[1, -2], [3, -4]], dtype="<i4"), version=(3, 0)))
put(VALID, "hdr_reordered.npy",
    raw_npy("{'shape': (2, 2), 'fortran_order': False, 'descr': '<i4'}\n",
            np.array([[7, 8], [9, 10]], "<i4").tobytes()))
put(VALID, "hdr_spaces.npy",
    raw_npy('{ "descr" :\'<f8\' ,\'fortran_order\':True,\'shape\':( 3 , 2 , ) , }  \n',
            np.array([[1, 2], [3, 4], [5, 6]], "<f8").tobytes(order="F")))
for f in ("hdr_reordered.npy", "hdr_spaces.npy"):
    np.load(os.path.join(VALID, f))  # numpy accepts them
assert np.load(os.path.join(VALID, "hdr_spaces.npy")).tolist() == [[1, 2], [3, 4], [5, 6]]

Z = {
    "a": np.arange(6, dtype="<i4").reshape(2, 3),
    "param/w": np.array([[0.5, -1.5], [2.25, 1e-300]]),
    "flag": np.array(True),
    "z": np.array([1 - 1j, 2.5 + 0j], dtype="<c8"),
}
np.savez(os.path.join(VALID, "savez.npz"), **Z)
# 160 kB of float64 that deflates to ~1 kB: inflated in several chunks.
np.savez_compressed(os.path.join(VALID, "savez_compressed.npz"), big=(np.arange(20000) % 7).astype("<f8"), **Z)
zip64 = make_zip([{"name": "x.npy", "payload": npy_bytes(np.array([1.0, 2.0, 3.0]))},
                  {"name": "y.npy", "payload": npy_bytes(np.array([4, 5], "<i8")), "method": 8}], zip64=True)
put(VALID, "zip64.npz", zip64)
with np.load(os.path.join(VALID, "zip64.npz")) as z:
    assert z["x"].tolist() == [1.0, 2.0, 3.0] and z["y"].tolist() == [4, 5]

# ------------------------------------------------------------------------------------------
# malformed .npy
# ------------------------------------------------------------------------------------------
clean(BAD)
good = npy_bytes(np.arange(6, dtype="<f8").reshape(2, 3))
H = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }\n"
bad_npy = {
    "empty.npy": b"",
    "bad_magic.npy": b"\x93NUMPX" + good[6:],
    "short_preamble.npy": good[:7],
    "bad_version.npy": good[:6] + b"\x04\x00" + good[8:],
    "bad_minor_version.npy": good[:6] + b"\x01\x01" + good[8:],
    "header_len_too_large.npy": raw_npy(H % "(2, 3)", hlen=0xFFFF),
    "header_len_too_large_v2.npy": raw_npy(H % "(2, 3)", version=(2, 0), hlen=0xFFFFFFFF),
    "truncated_header.npy": good[:40],
    "truncated_data.npy": good[:-5],
    "absurd_dims.npy": raw_npy(H % "(4611686018427387904, 4611686018427387904)", b"\0" * 64),
    "huge_dims.npy": raw_npy(H % "(1099511627776,)", b"\0" * 64),
    "overflow_bytes.npy": raw_npy(H % "(4611686018427387903,)", b"\0" * 64),
    "overflow_count.npy": raw_npy("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n"),
    "negative_dim.npy": raw_npy(H % "(-1, 3)", b"\0" * 64),
    "dim_too_large.npy": raw_npy(H % "(99999999999999999999,)", b"\0" * 64),
    "unsupported_f2.npy": raw_npy("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }\n", b"\0" * 6),
    "unsupported_structured.npy": raw_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n",
                                          b"\0" * 4),
    "unsupported_object.npy": raw_npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n", b"\0" * 8),
    "unsupported_pipe_f8.npy": raw_npy("{'descr': '|f8', 'fortran_order': False, 'shape': (1,), }\n", b"\0" * 8),
    "missing_shape.npy": raw_npy("{'descr': '<f8', 'fortran_order': False, }\n", b"\0" * 8),
    "unknown_key.npy": raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", b"\0" * 8),
    "duplicate_key.npy": raw_npy("{'descr': '<f8', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n",
                                 b"\0" * 8),
    "fortran_not_bool.npy": raw_npy("{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }\n", b"\0" * 8),
    "shape_not_tuple.npy": raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': 6, }\n", b"\0" * 48),
    "shape_paren_int.npy": raw_npy(H % "(6)", b"\0" * 48),
    "unterminated_string.npy": raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'desc"),
    "trailing_garbage.npy": raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), } x\n", b"\0" * 8),
    "header_not_dict.npy": raw_npy("[1, 2, 3]\n"),
    "unclosed_dict.npy": raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), "),
    "too_many_dims.npy": raw_npy(H % ("(" + "1, " * 65 + ")"), b"\0" * 8),
}
for name, data in bad_npy.items():
    put(BAD, name, data)

# ------------------------------------------------------------------------------------------
# malformed .npz
# ------------------------------------------------------------------------------------------
P = npy_bytes(np.arange(64, dtype="<f8"))  # 640 bytes
Q = npy_bytes(np.arange(3, dtype="<i4"))
E = lambda **kw: dict({"name": "a.npy", "payload": P}, **kw)  # noqa: E731
sav = open(os.path.join(VALID, "savez_compressed.npz"), "rb").read()
comp = deflate_raw(P)
bad_npz = {
    "empty.npz": b"",
    "not_a_zip.npz": b"this is not a zip archive, just text that is long enough\n",
    "eocd_missing.npz": sav[:-22],
    "truncated_half.npz": sav[: len(sav) // 2],
    "bad_crc_stored.npz": make_zip([E(crc=0x12345678)]),
    "bad_crc_deflate.npz": make_zip([E(method=8, crc=0x12345678)]),
    "truncated_deflate.npz": make_zip([E(method=8, comp=comp[: len(comp) // 2])]),
    "empty_deflate.npz": make_zip([E(method=8, comp=b"")]),
    "corrupt_deflate.npz": make_zip([E(method=8, comp=b"\xff" * 32)]),
    "usize_impossible.npz": make_zip([E(method=8, usize=0xFFFFFFF0)]),
    "usize_impossible_zip64.npz": make_zip([E(method=8, usize=1 << 40)], zip64=True),
    "usize_too_small.npz": make_zip([E(method=8, usize=len(P) - 10)]),
    "usize_too_large.npz": make_zip([E(method=8, usize=len(P) + 10)]),
    "stored_size_mismatch.npz": make_zip([E(usize=len(P) + 8)]),
    "csize_past_end.npz": make_zip([E(csize=1_000_000_000)]),
    "csize_into_cd.npz": make_zip([E(csize=len(P) + 20)]),
    "local_offset_past_end.npz": make_zip([E(offset=0x7FFFFFFF)]),
    "local_offset_into_data.npz": make_zip([E(offset=100)]),
    "cd_offset_past_end.npz": make_zip([E()], eocd={"cd_off": 0x7FFFFFF0}),
    "cd_size_past_end.npz": make_zip([E()], eocd={"cd_size": 0x7FFFFFF0}),
    "entry_count_lie.npz": make_zip([E()], eocd={"n_disk": 60000, "n_total": 60000}),
    "multi_disk.npz": make_zip([E()], eocd={"disk": 1}),
    "overlapping_entries.npz": make_zip([E(), E(name="b.npy", offset=0)]),
    "local_name_mismatch.npz": make_zip([E(local_name="b.npy")]),
    "duplicate_names.npz": make_zip([E(), E(payload=Q)]),
    "duplicate_keys.npz": make_zip([E(), E(name="a", payload=Q)]),
    "encrypted.npz": make_zip([E(flags=1)]),
    "method_bzip2.npz": make_zip([E(method=12, comp=P)]),
    "zip64_locator_lie.npz": make_zip([E()], zip64=True, zip64_locator_offset=1 << 40),
    "zip64_extra_missing.npz": make_zip([E(cextra=(b"", 0xFFFFFFFF))]),
    "zip64_extra_short.npz": make_zip([E(cextra=(struct.pack("<HHI", 1, 4, 7), 0xFFFFFFFF))]),
    "inner_bad_magic.npz": make_zip([E(payload=b"not an npy file at all")]),
    "inner_truncated.npz": make_zip([E(payload=P[:-8])]),
}
numpy_accepts = []
for name, data in bad_npz.items():
    put(BAD, name, data)
    try:  # for the README: which lies Python's zipfile + numpy do not notice
        with np.load(io.BytesIO(data)) as z:
            for k in z.files:
                z[k]
        numpy_accepts.append(name)
    except Exception:
        pass
print("numpy.load accepts:", " ".join(numpy_accepts))
print("valid:", len(os.listdir(VALID)), "malformed:", len(os.listdir(BAD)))
