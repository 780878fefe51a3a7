"""pybox-runtime's library: turns an OCI bundle into a container, as runc does.

Files by concern (crun's libcrun shape): container.py (lifecycle and state),
launch.py (the fork/namespace protocol), init.py (inside the container, up to
execve), rootfs.py (mounts, devices, pivot_root, masked/read-only paths),
process.py (user, capabilities, rlimits), hooks.py, userns.py, signals.py,
sync.py (parent/child messages), log.py (--log in text or JSON).
"""

from __future__ import annotations
