"""Image builds: dockerd's classic builder (``docker build`` with DOCKER_BUILDKIT=0).

Sits between ``api`` and ``engine``.  The Dockerfile language (``dockerfile``,
``expand``, ``dockerignore``) is pure: it imports only ``formats`` and ``errors``,
so it can be tested without root and reused by the API to filter a context.
The builder modules drive the engine to run the steps and commit the layers.
"""
