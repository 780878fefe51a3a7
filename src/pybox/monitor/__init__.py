"""The per-container monitor (conmon's role), by concern:

- monitor.py   the monitor process: creates and starts the container through the
               runtime library, holds its stdio or pty, serves attach/wait/resize
               on a unix socket, writes the exit file, reaps; survives pyboxd.
- jsonlog.py   docker's json-file log format, with rotation (writer and reader).
- protocol.py  the frames spoken on the monitor's socket (shared with the engine).
- client.py    pyboxd's side of that socket: requests, the exit wait, the exit
               file, attach connections (the engine's one door to its monitors).
- zygote.py    a warm, single-threaded process that forks monitors on request, so
               a monitor costs a fork, not an interpreter start, and shares its
               memory pages with every other monitor.
"""
