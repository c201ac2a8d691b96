/* pidfd probe: can a process pidfd_open() a sibling (not its child), and can it
 * pidfd_getfd() a descriptor out of that sibling?  Run as is, then under
 * `setpriv --reuid=65534 --regid=65534 --clear-groups` (same unprivileged uid for both
 * siblings), and with argument `nondumpable` (the target calls PR_SET_DUMPABLE 0), and
 * `otheruid` (the target switches to uid 65534 while the caller stays root... or the
 * reverse when run unprivileged).  pidfd_getfd needs PTRACE_MODE_ATTACH_REALCREDS over
 * the target: Yama ptrace_scope=1 refuses it between siblings whatever the uid.
 * cc -O2 -o /tmp/pidfd_getfd pidfd_getfd.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "plain";
    FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "r");
    int scope = -1;
    if (f) { if (fscanf(f, "%d", &scope) != 1) scope = -1; fclose(f); }
    printf("uid %d, mode %s, yama ptrace_scope %s\n", getuid(), mode,
           scope < 0 ? "absent (no Yama)" : (char[]){'0' + scope, 0});
    int ready[2], go[2];
    if (pipe(ready) || pipe(go)) return 1;
    pid_t target = fork();
    if (target == 0) { /* sibling A: holds an eventfd at a known number */
        if (!strcmp(mode, "nondumpable")) prctl(PR_SET_DUMPABLE, 0);
        if (!strcmp(mode, "otheruid") && setresuid(65534, 65534, 65534)) { perror("setresuid"); _exit(1); }
        int efd = eventfd(0, EFD_CLOEXEC);
        if (write(ready[1], &efd, sizeof efd) != sizeof efd) _exit(1);
        char c;
        if (read(go[0], &c, 1) < 0) _exit(1);
        _exit(0);
    }
    int efd;
    if (read(ready[0], &efd, sizeof efd) != sizeof efd) return 1;
    pid_t caller = fork();
    if (caller == 0) { /* sibling B: not A's parent */
        int pfd = syscall(SYS_pidfd_open, target, 0);
        if (pfd < 0) { printf("pidfd_open(sibling %d): errno %d (%s)\n", target, errno, strerror(errno)); _exit(0); }
        printf("pidfd_open(sibling %d): ok\n", target);
        int got = syscall(SYS_pidfd_getfd, pfd, efd, 0);
        if (got < 0)
            printf("pidfd_getfd(sibling, fd %d): errno %d (%s)\n", efd, errno, strerror(errno));
        else
            printf("pidfd_getfd(sibling, fd %d): ok, got fd %d\n", efd, got);
        _exit(0);
    }
    waitpid(caller, NULL, 0);
    if (write(go[1], "x", 1) != 1) return 1;
    waitpid(target, NULL, 0);
    return 0;
}
