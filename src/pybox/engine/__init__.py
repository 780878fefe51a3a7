"""The engine (pyboxd's core): containers and their state machine (engine.py),
records on disk (store.py), docker config -> OCI spec (spec.py), attach and exec
sessions, logs, events, and the image service it uses."""
