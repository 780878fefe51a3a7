"""The CRI's metadata kept in the engine's container records.

A pod sandbox and a CRI container are engine containers (the sandbox's id is
the pod's id, a container's id its CRI id).  What the CRI must remember of
them -- the PodSandboxConfig or ContainerConfig kubelet sent, its pod, its
kind -- rides in the record's labels (Config.Labels), written with the record
at create in one atomic, durable write: a pyboxd that crashes at any point
finds a record either with all of it or not at all.  The config is kept as
its protobuf encoding (base64), so what is reported back (labels,
annotations, metadata, the image asked for) is exactly what kubelet sent.

The labels pyboxd sets (``io.pybox.cri.*``) mark the record as the CRI's: the
Docker API's container list hides such records unless a label filter is
given (engine/views.py), as containerd's k8s.io namespace keeps kubelet's
containers apart.  The pod's identity is also set as the labels cri-dockerd
and kubelet's docker days used (io.kubernetes.pod.name...), so
`docker ps --filter label=io.kubernetes.pod.name=web` finds a pod's parts.
"""

from __future__ import annotations

import base64
from typing import Any

from cri_api.v1 import api_pb2

from pybox.engine.engine import Engine
from pybox.engine.store import CRI_KIND_LABEL, Container
from pybox.errors import BadRequest, NotFound

KIND = CRI_KIND_LABEL  # "sandbox" | "container"
SANDBOX = "io.pybox.cri.sandbox"  # a container's pod id
CONFIG = "io.pybox.cri.config"  # the config kubelet sent, protobuf, base64
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
SANDBOX_KIND = "sandbox"
CONTAINER_KIND = "container"


def encode(message: Any) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def labels_of(c: Container) -> dict[str, str]:
    labels = c.config.get("Labels")
    return labels if isinstance(labels, dict) else {}


def kind(c: Container) -> str:
    """"sandbox", "container", or "" for a Docker API container."""
    value = labels_of(c).get(KIND, "")
    return value if value in (SANDBOX_KIND, CONTAINER_KIND) else ""


def find(engine: Engine, ref: str, wanted: str, empty: str, missing: str) -> Container:
    """The live CRI record of kind ``wanted`` named by ``ref`` (an id or a unique
    prefix): BadRequest ``empty`` for no ref, NotFound ``missing`` (containerd's
    words, given by the caller) for anything else -- a Docker container included."""
    if not ref:
        raise BadRequest(empty)
    try:
        c = engine.get(ref)
    except NotFound:
        raise NotFound(missing) from None
    if kind(c) != wanted or c.removed:
        raise NotFound(missing)
    return c


def all_of(engine: Engine, wanted: str) -> list[Container]:
    """Every live CRI record of kind ``wanted``."""
    return [c for c in engine.store.all() if kind(c) == wanted and not c.removed]


def pod_config(c: Container) -> Any:
    """The PodSandboxConfig a sandbox was run with."""
    config = api_pb2.PodSandboxConfig()
    config.ParseFromString(base64.b64decode(labels_of(c).get(CONFIG, "")))
    return config


def container_config(c: Container) -> Any:
    """The ContainerConfig a CRI container was created with."""
    config = api_pb2.ContainerConfig()
    config.ParseFromString(base64.b64decode(labels_of(c).get(CONFIG, "")))
    return config


def pod_of(c: Container) -> str:
    """A CRI container's pod id."""
    return labels_of(c).get(SANDBOX, "")


def sandbox_labels(config: Any) -> dict[str, str]:
    """The record's labels for a pod sandbox: the pod's own, then pybox's."""
    md = config.metadata
    return {**dict(config.labels), KIND: SANDBOX_KIND, CONFIG: encode(config),
            POD_NAME: md.name, POD_NAMESPACE: md.namespace, POD_UID: md.uid,
            CONTAINER_NAME: "POD"}


def container_labels(config: Any, pod_id: str, pod: Any) -> dict[str, str]:
    """The record's labels for a CRI container of the pod ``pod`` (its config)."""
    md = pod.metadata
    return {**dict(config.labels), KIND: CONTAINER_KIND, SANDBOX: pod_id,
            CONFIG: encode(config), POD_NAME: md.name, POD_NAMESPACE: md.namespace,
            POD_UID: md.uid, CONTAINER_NAME: config.metadata.name}


def sandbox_name(config: Any) -> str:
    """The record's name, cri-dockerd's: k8s_POD_<name>_<namespace>_<uid>_<attempt>."""
    md = config.metadata
    return f"k8s_POD_{md.name}_{md.namespace}_{md.uid}_{md.attempt}"


def container_name(config: Any, pod: Any) -> str:
    """k8s_<container>_<pod>_<namespace>_<uid>_<attempt>."""
    md = pod.metadata
    return (f"k8s_{config.metadata.name}_{md.name}_{md.namespace}_{md.uid}_"
            f"{config.metadata.attempt}")
