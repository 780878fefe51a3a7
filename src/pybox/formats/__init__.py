"""The bottom floor: docker's value formats, one parser and one formatter each.

Client and daemon alike read and write the same values -- ``64m``, ``1m30s``,
``2024-01-02T03:04:05.123456789Z``, ``1.99MB``, ``About a minute``, JSON, the
``X-Registry-Auth`` header -- and each has exactly one implementation here, so
``pybox run -m 64m`` and a log-opt ``max-size=64m`` cannot drift apart.

    sizes       go-units: RAMInBytes (binary), FromHumanSize (decimal),
                HumanSize, BytesSize
    durations   Go's time.ParseDuration, go-units' HumanDuration
    times       RFC 3339 (Go's RFC3339Nano, moby's RFC3339NanoFixed), docker's
                --since/--until values (timetypes)
    fastjson    JSON on the C accelerator alone (the runtime's start-up path)
    gojson      JSON as Go's encoding/json decodes it into typed values, in Go's
                words (the daemon's request bodies and plugin configs)
    registryauth  registry credentials, the X-Registry-Auth header, config.json keys

Standard library only, importing nothing else of pybox: the runtime and the
monitor import these on their hot paths, so each module is cheap to import (no
``re``, ``json``, ``datetime`` at module level where it can be avoided).  Bad
input is a ValueError with docker's words; callers turn it into their own error
(a flag error in the CLI, a 400 in the daemon).  This file stays import-free.
"""
