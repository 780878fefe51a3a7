"""The engine (pyboxd's core): engine.py is the facade the API calls, over rooms by
concern -- the typed container record (store.py) and its state machine (state.py),
lifecycle, restart policies, views, namespaces (a NamespaceHolder a pod sandbox can
be), the container's /etc files, events, exec, health, attach, logs, observe,
commit, distribution (pull/push/login), recovery -- and runner.py, the one door to
the runtime and the monitors.  Docker's Config/HostConfig -> OCI spec is spec.py.
docs/architecture.md draws it."""
