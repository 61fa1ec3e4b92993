/* probe SYSCALL: make one raw syscall and print "ok" or the errno name, for the seccomp tests. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(long rc) {
    if (rc >= 0) { puts("ok"); return 0; }
    printf("%s\n", errno == EPERM ? "EPERM" : errno == ENOSYS ? "ENOSYS" : strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *what = argv[1];
    if (!strcmp(what, "unshare")) return report(unshare(CLONE_NEWNS));
    if (!strcmp(what, "unshare-user")) return report(unshare(CLONE_NEWUSER));
    if (!strcmp(what, "mount")) return report(mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(what, "keyctl")) return report(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    if (!strcmp(what, "io_uring_setup")) {
        char params[120]; memset(params, 0, sizeof params);
        return report(syscall(SYS_io_uring_setup, 1, params));
    }
    if (!strcmp(what, "vsock")) return report(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    if (!strcmp(what, "alg")) return report(socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    if (!strcmp(what, "inet")) return report(socket(AF_INET, SOCK_STREAM, 0));
    if (!strcmp(what, "getpid")) return report(getpid());
    if (!strcmp(what, "session")) { /* the description's last field is the session keyring's name */
        char buf[256] = {0};
        long n = syscall(SYS_keyctl, 6 /* KEYCTL_DESCRIBE */, -3 /* KEY_SPEC_SESSION_KEYRING */, buf, sizeof buf - 1);
        if (n < 0) return report(n);
        char *name = strrchr(buf, ';');
        puts(name ? name + 1 : buf);
        return 0;
    }
    return 2;
}
