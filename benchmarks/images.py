#!/usr/bin/env python3
"""Image store speed: import+unpack throughput next to ``umoci unpack``, and the
time to prepare a container rootfs from an unpacked image.

    /opt/pybox/bin/python benchmarks/images.py [-n 3] [--prepare-rounds 50]

The image: one OCI layout (gzip layers) of four layers made from host files -
busybox-static with its applet links, /usr/lib/python3.11 (many small files),
/usr/share/perl, and a top layer that adds files and deletes some below
(whiteouts).  Both tools read the same layout from the page cache:

  pybox   Images.load(layout) into an empty data root: every blob copied into
          the content store and verified (sha256), every layer decompressed,
          its diff-id verified, unpacked once with whiteouts translated to
          overlayfs's form, the image recorded.
  umoci   ``umoci unpack --image LAYOUT:TAG BUNDLE``: the layers applied into
          one rootfs directory (plus its mtree manifest and config.json).

Throughput is the image's uncompressed layer bytes divided by the wall time
(median of -n rounds).  Then ``prepare_rootfs`` (one overlay mount of the four
layers plus a fresh upper/work, no copying) and ``release_rootfs`` are timed
--prepare-rounds times.  Target: prepare under 10 ms.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from pybox.images.layers import write_tree  # noqa: E402
from pybox.images.rootfs import build_busybox_rootfs  # noqa: E402
from pybox.images.service import Images  # noqa: E402

TREES = ("/usr/lib/python3.11", "/usr/share/perl")


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tree_layer(path):
    buf = io.BytesIO()

    def reset(info):
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path, arcname=path.lstrip("/"), filter=reset)
    return buf.getvalue()


def _top_layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("srv/app/main.py", b"print('hi')\n" * 1000),
                           ("usr/lib/python3.11/.wh.turtle.py", b""),
                           ("usr/lib/python3.11/idlelib/.wh..wh..opq", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_layout(path):
    """An OCI layout with four gzip layers; returns (layout, uncompressed bytes)."""
    with tempfile.TemporaryDirectory(prefix="pybox-bench-bb-") as tmp:
        root = build_busybox_rootfs(os.path.join(tmp, "rootfs"))
        out = io.BytesIO()
        write_tree(root, out)
        plain_layers = [out.getvalue()]
    plain_layers += [_tree_layer(t) for t in TREES if os.path.isdir(t)]
    plain_layers.append(_top_layer())
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        with open(os.path.join(blobs, _sha(data)[7:]), "wb") as f:
            f.write(data)
        return {"digest": _sha(data), "size": len(data)}

    layers = [dict(put(gzip.compress(p, 6)),
                   mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
              for p in plain_layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [_sha(p) for p in plain_layers]}}).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": dict(put(config), mediaType=
                                          "application/vnd.oci.image.config.v1+json"),
                           "layers": layers}).encode()
    index = {"schemaVersion": 2, "manifests": [dict(
        put(manifest), mediaType="application/vnd.oci.image.manifest.v1+json",
        annotations={"org.opencontainers.image.ref.name": "bench"})]}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    compressed = sum(layer["size"] for layer in layers)
    return path, sum(len(p) for p in plain_layers), compressed, len(plain_layers)


def _umount_all_under(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(path + "/")), key=len,
                        reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3, help="import rounds per tool")
    parser.add_argument("--prepare-rounds", type=int, default=50)
    parser.add_argument("--dir", default="/var/tmp",
                        help="where the data roots go (a disk, or a tmpfs to see CPU cost)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (overlay mounts, ownership)")
    work = tempfile.mkdtemp(prefix="pybox-bench-images-", dir=args.dir)
    try:
        layout, plain_bytes, gz_bytes, n_layers = build_layout(os.path.join(work, "layout"))
        mb = plain_bytes / 1e6
        print(f"image: {n_layers} layers, {mb:.1f} MB uncompressed, "
              f"{gz_bytes / 1e6:.1f} MB gzip")
        pybox_times, umoci_times = [], []
        for i in range(args.n):
            root = os.path.join(work, f"pybox-{i}")
            os.sync()  # the previous round's writeback must not slow this one
            t0 = time.perf_counter()
            Images.open(root).load(layout, name="pybox-bench/image")
            pybox_times.append(time.perf_counter() - t0)
            shutil.rmtree(root)
            if shutil.which("umoci"):
                bundle = os.path.join(work, f"umoci-{i}")
                os.sync()
                t0 = time.perf_counter()
                subprocess.run(["umoci", "unpack", "--image", f"{layout}:bench", bundle],
                               check=True, stdout=subprocess.DEVNULL)
                umoci_times.append(time.perf_counter() - t0)
                shutil.rmtree(bundle)
        print("\n| tool | import+unpack (median) | throughput |")
        print("|---|---|---|")
        for name, times in (("pybox", pybox_times), ("umoci unpack", umoci_times)):
            if times:
                med = statistics.median(times)
                print(f"| {name} | {med:.2f} s | {mb / med:.0f} MB/s |")

        root = os.path.join(work, "pybox-prepare")
        images = Images.open(root)
        images.load(layout, name="pybox-bench/image")
        os.sync()
        prepare, release = [], []
        for i in range(args.prepare_rounds):
            cid = f"pybox-bench-{i}"
            t0 = time.perf_counter()
            images.prepare_rootfs(cid, "pybox-bench/image:bench")
            prepare.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            images.release_rootfs(cid)
            release.append((time.perf_counter() - t0) * 1000)
        print(f"\n| rootfs op ({args.prepare_rounds} rounds) | median | p90 | max |")
        print("|---|---|---|---|")
        for name, times in (("prepare_rootfs", prepare), ("release_rootfs", release)):
            times.sort()
            p90 = times[int(len(times) * 0.9) - 1]
            print(f"| {name} | {statistics.median(times):.2f} ms | {p90:.2f} ms | "
                  f"{times[-1]:.2f} ms |")
    finally:
        _umount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
