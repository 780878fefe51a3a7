"""The container's own view of the kernel: an lxcfs-like /proc, built in.

A FUSE filesystem (pyfuse3 on libfuse3) serves one file per virtualised kernel
file; the engine bind-mounts them over the container's copies:

    container path                      file in the mount (FILES)
    /proc/meminfo                        meminfo
    /proc/cpuinfo                        cpuinfo
    /proc/stat                           stat
    /proc/uptime                         uptime
    /proc/loadavg                        loadavg
    /proc/diskstats                      diskstats
    /proc/swaps                          swaps
    /sys/devices/system/cpu/online       cpu-online

Every open() is answered for the cgroup of the process that opens (the FUSE
request carries its pid, lxcfs's rule), from the host's file and the cgroup's
limits and counters, on cgroup v1, v2 and hybrid hosts.  See docs/procview.md.

Modules: ``model`` (values), ``render`` (pure renderers: host text + values ->
text), ``cgroupview`` (pid -> its cgroups -> values), ``server`` (the FUSE
process), ``inject`` (re-serving running containers after a restart),
``control`` (starting, finding and stopping the server; used by the engine).
"""

# name in the mount -> path in the container, in the order they are mounted
FILES = (
    ("meminfo", "/proc/meminfo"),
    ("cpuinfo", "/proc/cpuinfo"),
    ("stat", "/proc/stat"),
    ("uptime", "/proc/uptime"),
    ("loadavg", "/proc/loadavg"),
    ("diskstats", "/proc/diskstats"),
    ("swaps", "/proc/swaps"),
    ("cpu-online", "/sys/devices/system/cpu/online"),
)

# The FUSE mount's source ("fsname") and type ("fuse." + SUBTYPE) as mountinfo
# shows them: how a restarted server recognises its predecessor's mounts in
# running containers.
FSNAME = "pybox-procview"
SUBTYPE = "pybox-procview"

# The label that turns the view off for one container (``pybox run
# --proc-view=false`` sets it; docker CLI users can pass it with -l).
LABEL = "org.pybox.proc-view"
