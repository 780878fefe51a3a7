"""pybox: a Linux container engine built on namespaces, cgroups and pivot_root.

Layers (imports point down only; see docs/architecture.md):
    cli -> api -> engine -> {images, network, monitor} -> runtime -> {cgroups, linux}
with ``oci`` (the runtime-spec model and state) shared below the runtime, and a
floor every layer may use, client and daemon alike: ``formats`` (JSON, times,
sizes, durations), ``errors`` (one hierarchy, HTTP statuses included) and
``locations`` (the daemon's default paths).
This file stays import-free: it is on the runtime's start-up path.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.1.0"
