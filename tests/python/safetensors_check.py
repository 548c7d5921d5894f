"""An independent safetensors reader and writer, written from Hugging Face's specification with
struct + json + numpy only (not the safetensors package), to cross-check Glia's implementation.

  safetensors_check.py read FILE OUTDIR   validates FILE, writes OUTDIR/manifest.json and one .npy per tensor
  safetensors_check.py write MANIFEST FILE  writes FILE from the .npy files MANIFEST lists

A manifest is {"tensors": [{"name", "dtype", "shape", "npy"}], "metadata": {...}}, tensors in data
order. BF16 and F16 travel as int32 .npy files of their 16-bit patterns.
"""
import json
import os
import struct
import sys

import numpy as np

NP = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1", "BOOL": "u1", "BF16": "<u2", "F16": "<u2"}
SIZE = {"F32": 4, "F64": 8, "I32": 4, "I64": 8, "U8": 1, "BOOL": 1, "BF16": 2, "F16": 2}


def fail(msg):
    print("safetensors_check: " + msg)
    sys.exit(2)


def read(path, outdir):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail("short file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        fail("header length too large")
    if n % 8 != 0:
        fail("header length %d not a multiple of 8 (the reference writer pads to 8)" % n)
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    area = data[8 + n :]
    meta = header.pop("__metadata__", {})
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    pos = 0
    out = []
    for i, (name, e) in enumerate(entries):
        if set(e) != {"dtype", "shape", "data_offsets"}:
            fail("entry %r has keys %r" % (name, sorted(e)))
        b, end = e["data_offsets"]
        if b != pos:
            fail("tensor %r starts at %d, expected %d" % (name, b, pos))
        count = int(np.prod(e["shape"], dtype=np.int64))
        if end - b != count * SIZE[e["dtype"]]:
            fail("tensor %r has %d bytes" % (name, end - b))
        a = np.frombuffer(area[b:end], dtype=NP[e["dtype"]]).reshape(e["shape"])
        if e["dtype"] == "BOOL":
            a = a.astype(bool)
        elif e["dtype"] in ("BF16", "F16"):
            a = a.astype("<i4")
        fname = "%d.npy" % i
        np.save(os.path.join(outdir, fname), np.array(a, order="C"))
        out.append({"name": name, "dtype": e["dtype"], "shape": e["shape"], "npy": fname})
        pos = end
    if pos != len(area):
        fail("data area has %d bytes, tensors cover %d" % (len(area), pos))
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump({"tensors": out, "metadata": meta}, f)


def write(manifest, path):
    with open(manifest) as f:
        m = json.load(f)
    base = os.path.dirname(manifest)
    header = {}
    if m.get("metadata"):
        header["__metadata__"] = m["metadata"]
    # Data in reverse manifest order while the header lists tensors in manifest order, so that the
    # reader must go by data_offsets, not by header order.
    blobs = {}
    for t in m["tensors"]:
        a = np.load(os.path.join(base, t["npy"]))
        if t["dtype"] in ("BF16", "F16"):
            a = a.astype("<u2")
        a = np.array(a.astype(NP[t["dtype"]]), order="C")  # ascontiguousarray would make 0-d 1-d
        blobs[t["name"]] = a.tobytes()
        header[t["name"]] = {"dtype": t["dtype"], "shape": list(a.shape)}
    pos = 0
    for t in reversed(m["tensors"]):
        n = len(blobs[t["name"]])
        header[t["name"]]["data_offsets"] = [pos, pos + n]
        pos += n
    text = json.dumps(header).encode("utf-8")  # ensure_ascii: non-ASCII names as \u escapes
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for t in reversed(m["tensors"]):
            f.write(blobs[t["name"]])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        fail("usage: safetensors_check.py read FILE OUTDIR | write MANIFEST FILE")
