#!/bin/sh
# Stage 2 of the pybox cgroup v2 test VM: PID 1 after switch_root (busybox sh, from
# tmpfs /run, because the host's root need not have busybox).
#
# Why: it reports what the VM really is (kernel release, cgroup filesystem type and
# controllers) before running anything, so the host can refuse to count a run that
# was not on cgroup v2; then it runs the host's job script with its output going
# straight to the writable job share (the host streams it from there), records the
# exit status, and powers off.  While waiting, busybox sh reaps every child,
# including orphans the tests leave to PID 1.

BB=/run/pybox-v2vm/bin/busybox
JOB=/run/pybox-v2vm/job
PATH=/run/pybox-v2vm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
cd /

off() {
    $BB sync
    $BB poweroff -f
    $BB sleep 3600
}

$BB ip link set lo up 2>/dev/null

{
    echo "release=$($BB uname -r)"
    echo "fstype=$($BB awk '$2 == "/sys/fs/cgroup" {print $3}' /proc/self/mounts)"
    echo "controllers=$($BB cat /sys/fs/cgroup/cgroup.controllers)"
    echo "subtree_control=$($BB cat /sys/fs/cgroup/cgroup.subtree_control)"
    echo "uptime=$($BB cut -d' ' -f1 /proc/uptime)"
    echo "nproc=$($BB nproc)"
    echo "memtotal_kb=$($BB awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
} > $JOB/booted.tmp && $BB mv $JOB/booted.tmp $JOB/booted

if [ ! -r $JOB/job.sh ]; then
    echo "pybox-v2vm: FATAL: no job script in the job share"
    off
fi

echo "pybox-v2vm: running job after $($BB cut -d' ' -f1 /proc/uptime)s"
$BB sh $JOB/job.sh < /dev/null > $JOB/output 2>&1 &
wait $!
status=$?
echo "$status" > $JOB/rc.tmp && $BB mv $JOB/rc.tmp $JOB/rc
echo "pybox-v2vm: job exited $status after $($BB cut -d' ' -f1 /proc/uptime)s"
off
