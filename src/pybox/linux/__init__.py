"""Thin wrappers over Linux system calls and /proc: no policy lives here.

``pybox.linux.syscalls`` holds the one ctypes module (behind an interface that tests
replace); the other modules decode kernel data (capabilities, /proc files).
"""

from __future__ import annotations
