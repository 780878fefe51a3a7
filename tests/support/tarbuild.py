"""Build tarballs: layers member by member, including the malformed and
malicious ones a real tool would never write (tests/unit, tests/images), and
plain archives of a few files (image archives, request bodies)."""

import io
import tarfile


def member(name, kind="file", data=b"", *, mode=None, link=None, uid=0, gid=0,
           mtime=1_700_000_000, dev=(0, 0), xattrs=None):
    """(TarInfo, bytes-or-None) for one entry.  kind: file dir symlink hardlink
    char block fifo."""
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.mtime = uid, gid, mtime
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE,
             "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    info.type = types[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    if link is not None:
        info.linkname = link
    if kind in ("char", "block"):
        info.devmajor, info.devminor = dev
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if kind == "file":
        info.size = len(data)
        return info, data
    return info, None


def tar_of(files, links=()):
    """Bytes of a tar of ``files`` ({name: bytes}: regular files) and
    ``links`` ((name, target) pairs: symlinks)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def make_tar(members, compression=None):
    """Bytes of a tar of ``members`` (from member()); compression None, 'gzip' or
    'zstd'."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    if compression == "gzip":
        import gzip

        return gzip.compress(raw)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    return raw
