/* What the liveness lock can and cannot say about a pid: an OFD lock's holder is
 * reported by F_OFD_GETLK as l_pid = -1 (no pid at all), and a forked child shares the
 * open file description, so the lock outlives the process that took it.
 * cc -O2 -o /tmp/ofd_lock_pid ofd_lock_pid.c; /tmp/ofd_lock_pid DIR */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void probe(const char *path, const char *when) {
    int fd = open(path, O_RDWR);
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    fcntl(fd, F_OFD_GETLK, &l);
    printf("%s: F_OFD_GETLK says %s, l_pid %d\n", when, l.l_type == F_UNLCK ? "unlocked" : "locked", l.l_pid);
    close(fd);
}

int main(int argc, char **argv) {
    char path[512];
    snprintf(path, sizeof path, "%s/seg.lock", argc > 1 ? argv[1] : "/tmp");
    close(open(path, O_CREAT | O_RDWR, 0600));
    setvbuf(stdout, NULL, _IONBF, 0);
    int go[2];
    if (pipe(go)) return 1;
    pid_t owner = fork();
    if (owner == 0) {
        int fd = open(path, O_RDWR);
        struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        if (fcntl(fd, F_OFD_SETLK, &l)) { perror("F_OFD_SETLK"); _exit(1); }
        printf("owner pid %d holds the OFD lock\n", getpid());
        pid_t child = fork();              /* inherits fd: the same open file description */
        if (child == 0) { pause(); _exit(0); }
        if (write(go[1], &child, sizeof child) != sizeof child) _exit(1);
        pause();
    }
    pid_t child;
    if (read(go[0], &child, sizeof child) != sizeof child) return 1;
    probe(path, "owner alive");
    kill(owner, SIGKILL);
    waitpid(owner, NULL, 0);
    probe(path, "owner SIGKILLed, its forked child alive");
    kill(child, SIGKILL);
    usleep(100000);                        /* the child is reparented; not ours to reap */
    probe(path, "forked child killed too");
    unlink(path);
    return 0;
}
