"""The OCI runtime-spec, shared below the runtime: the config.json model and its
validation (spec.py), the default spec (defaults.py), the runtime's state files
(state.py).  Pure Python.  (The start-up-cheap JSON codec is pybox.formats.fastjson.)"""
