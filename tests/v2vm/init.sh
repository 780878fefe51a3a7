#!/bin/sh
# Stage 1 of the pybox cgroup v2 test VM: PID 1 inside the initramfs (busybox sh).
#
# Why it is shaped like this: the VM must run the host's own Python on the host's
# own files, on a kernel where nothing but cgroup2 is mounted.  So it loads the
# virtio/9p/overlay modules, mounts the host's / read-only over virtio-9p with a
# tmpfs overlay on top (writes land in guest RAM, never on the host), mounts the
# API filesystems and cgroup2 inside that new root, enables every controller in
# the root's cgroup.subtree_control, then switch_roots into it so that the test
# processes see an ordinary root (pivot_root works, mountinfo is complete).
# Any failure powers the VM off at once; the host reads the reason from the
# serial console.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
/bin/busybox --install -s

JOB=/newroot/run/pybox-v2vm
MSIZE=512000

say() { echo "pybox-v2vm: $*"; }
die() {
    say "FATAL: $*"
    echo o > /proc/sysrq-trigger 2>/dev/null
    poweroff -f
    sleep 3600
}

mount -t proc proc /proc || die "mount /proc"
mount -t sysfs sysfs /sys || die "mount /sys"
mount -t devtmpfs devtmpfs /dev || die "mount /dev"
say "stage1 up after $(cut -d' ' -f1 /proc/uptime)s; kernel $(uname -r)"

for module in $(cat /modules/boot.order); do
    insmod "/modules/$module.ko" || die "insmod $module"
done
for module in $(cat /modules/extra.order); do
    insmod "/modules/$module.ko" || say "warning: insmod $module failed (not needed to boot)"
done

mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=$MSIZE,cache=loose hostroot /lower \
    || die "mount the host's / over virtio-9p (tag hostroot)"
mount -t tmpfs -o mode=0755 rw /rw || die "mount the overlay's tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \
    || die "mount the overlay over the host's /"

mount -t proc proc /newroot/proc || die "mount proc"
mount -t sysfs sysfs /newroot/sys || die "mount sysfs"
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /newroot/sys/fs/cgroup \
    || mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup || die "mount cgroup2"
mount -t devtmpfs devtmpfs /newroot/dev || die "mount devtmpfs"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /newroot/dev/pts || die "mount devpts"
mount -t tmpfs -o mode=1777 shm /newroot/dev/shm || die "mount /dev/shm"
mount -t tmpfs -o mode=0755 run /newroot/run || die "mount /run"
mount -t tmpfs -o mode=1777 tmp /newroot/tmp || die "mount /tmp"

# Every controller the kernel offers goes to the root's children, as systemd does on
# a pure v2 host, so the tests can create limited cgroups anywhere below.
for controller in $(cat /newroot/sys/fs/cgroup/cgroup.controllers); do
    echo "+$controller" > /newroot/sys/fs/cgroup/cgroup.subtree_control \
        || say "warning: cannot enable controller $controller"
done

mkdir -p $JOB/bin $JOB/job
cp /bin/busybox $JOB/bin/busybox
cp /stage2.sh $JOB/stage2.sh
mount -t 9p -o trans=virtio,version=9p2000.L,msize=$MSIZE,cache=none pyboxjob $JOB/job \
    || die "mount the job share (tag pyboxjob)"

# Host directories the job needs (its cwd, its Python) that the fresh tmpfs /tmp or
# /run would hide are bound back from the read-only 9p view, at the same path.
if [ -f $JOB/job/binds ]; then
    while IFS= read -r path; do
        [ -n "$path" ] || continue
        mkdir -p "/newroot$path" && mount --bind "/lower$path" "/newroot$path" \
            || say "warning: cannot show the host's $path inside"
    done < $JOB/job/binds
fi

hostname pybox-v2vm
say "stage1 done after $(cut -d' ' -f1 /proc/uptime)s"
umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /run/pybox-v2vm/bin/busybox sh /run/pybox-v2vm/stage2.sh
die "switch_root failed"
