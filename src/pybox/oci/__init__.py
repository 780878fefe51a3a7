"""The OCI runtime-spec, shared below the runtime: the config.json model and its
validation (spec.py), the default spec (defaults.py), the runtime's state files
(state.py) and a start-up-cheap JSON codec (fastjson.py).  Pure Python."""
