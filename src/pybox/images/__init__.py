"""Images and root filesystems.  Knows nothing about running containers.

For now: building a root filesystem from the host's own binaries (busybox-static),
the seed-004 recipe that needs no network (rootfs.py)."""
