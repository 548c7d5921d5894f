"""Cross-checks Glia's zip archives with Python's zipfile (an independent implementation).

  zip_check.py read FILE OUTDIR     CRC-checks every member of FILE (testzip + a full read), writes
                                    OUTDIR/manifest.json ({"members": [{"name", "size", "method", "file"}]}
                                    in archive order) and each member's bytes to OUTDIR/<i>.bin
  zip_check.py write MANIFEST FILE  writes FILE from a manifest {"members": [{"name", "file", "deflate"}]},
                                    member files relative to the manifest's directory
"""
import json
import os
import sys
import zipfile
import zlib


def fail(msg):
    print("zip_check: " + msg)
    sys.exit(2)


def read(path, outdir):
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        if bad is not None:
            fail("CRC check failed for member %r" % bad)
        out = []
        for i, info in enumerate(z.infolist()):
            data = z.read(info)
            if len(data) != info.file_size:
                fail("member %r has %d bytes, declares %d" % (info.filename, len(data), info.file_size))
            if zlib.crc32(data) & 0xFFFFFFFF != info.CRC:
                fail("member %r: CRC mismatch" % info.filename)
            fname = "%d.bin" % i
            with open(os.path.join(outdir, fname), "wb") as f:
                f.write(data)
            out.append({"name": info.filename, "size": info.file_size, "method": info.compress_type, "file": fname})
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump({"members": out}, f)


def write(manifest, path):
    with open(manifest) as f:
        m = json.load(f)
    base = os.path.dirname(manifest)
    with zipfile.ZipFile(path, "w") as z:
        for e in m["members"]:
            with open(os.path.join(base, e["file"]), "rb") as f:
                data = f.read()
            method = zipfile.ZIP_DEFLATED if e["deflate"] else zipfile.ZIP_STORED
            z.writestr(zipfile.ZipInfo(e["name"]), data, compress_type=method)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        fail("usage: zip_check.py read FILE OUTDIR | write MANIFEST FILE")
