"""The Kubernetes Container Runtime Interface (CRI, ``runtime.v1``) served by pyboxd.

A peer of pybox.api: where the API maps the Docker Engine API onto the engine,
this package maps kubelet's gRPC RuntimeService and ImageService onto the same
engine (one image store, runtime, monitors, cgroup manager and /proc view).
It imports engine, images, network, formats and errors, never api.

    server.py           the gRPC server on a unix socket (pyboxd starts it)
    errors.py           pybox errors -> gRPC status codes, for every servicer
    runtime_service.py  RuntimeService: version, status, pods, containers
    sandbox.py          pod sandboxes: the pybox pause, netns pin, CNI, DNS
    containers.py       CRI container configs -> engine creates
    meta.py             the CRI metadata kept in the engine's records
    pause.py            the pybox pause program and its local image
    streaming.py, spdy.py, wschannel.py  exec/attach/port-forward (C3)
    images.py           ImageService (C4)

See docs/kubernetes.md.
"""
