#!/bin/sh
# Re-runs every probe of benches/notes/2026-12-06-readiness-probes.md.
# Usage: benches/notes/probes/run.sh [TRIALS]   (needs cc; Linux; run as a normal user
# too: pidfd_getfd and unshare(CLONE_NEWPID) answer differently as root)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/shmring-probes
trials=${1:-200}
mkdir -p "$out/dir"
for p in io_uring_futex pidfd_getfd fifo_doorbell ofd_lock_pid pingpong; do
    cc -O2 -Wall -Wno-unused-result -Wno-stringop-truncation -pthread -o "$out/$p" "$here/$p.c"
done
echo "== machine"; uname -r; nproc
printf 'yama ptrace_scope: '; cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo absent
grep Seccomp /proc/self/status || true
echo "== io_uring"; "$out/io_uring_futex"
echo "== pidfd"; "$out/pidfd_getfd"; "$out/pidfd_getfd" nondumpable
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    setpriv --reuid=65534 --regid=65534 --clear-groups "$out/pidfd_getfd"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$out/pidfd_getfd" nondumpable
fi
echo "== FIFO checks"; "$out/fifo_doorbell" checks "$out/dir"
echo "== OFD lock"; "$out/ofd_lock_pid" "$out/dir"
echo "== kill -> readiness"
for m in 1 2 4 8 7; do "$out/fifo_doorbell" kill "$out/dir" "$trials" $m; done
for mb in 16 64 256; do echo "notifier touched $mb MiB:"; NOTIFIER_MB=$mb "$out/fifo_doorbell" kill "$out/dir" 50 1; done
echo "== ping-pong (parent on CPU 0, child on CPU 1)"
for r in 1 2 3; do for m in eventfd eventfd-poll fifo fifo-poll futex; do "$out/pingpong" $m 100000; done; done
