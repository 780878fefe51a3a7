"""The per-container monitor (conmon's role; per pod for the CRI's containers, as
containerd's shim), by concern:

- monitor.py   the monitor process: creates and starts the container through the
               runtime library, holds its stdio or pty, serves attach/wait/resize
               on a unix socket, writes the exit file, reaps; survives pyboxd.  One
               process may hold a pod's containers (a group: it adopts the next
               ones on its group socket), each with its own socket and files.
- jsonlog.py   docker's json-file log format (the writer; pyboxd reads in
               engine/logs.py).
- crilog.py    the CRI log format kubelet reads (the cri driver: pyboxd's CRI
               only), reopened after kubelet's rotation.
- locallog.py  docker's local format (protobuf-framed entries) and moby's copier
               (lines, partial pieces) feeding the drivers below.
- syslog.py    the syslog driver (srslog's formats, unix/udp/tcp/tcp+tls).
- logfile.py   dockerd's rotation of a log file (gzip of rotated files).
- logdrivers.py the writer of a container's log from pyboxd's settings.
- protocol.py  the frames spoken on the monitor's socket (shared with the engine).
- client.py    pyboxd's side of that socket: requests, the exit wait, the exit
               file, attach connections (the engine's one door to its monitors).
- zygote.py    a warm, single-threaded process that forks monitors on request, so
               a monitor costs a fork, not an interpreter start, and shares its
               memory pages with every other monitor.
"""
