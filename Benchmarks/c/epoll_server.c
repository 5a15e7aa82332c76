/*
 * epoll_server.c -- the benchmark "floor": a plain single-threaded,
 * level-triggered epoll server with the least work per request we can write.
 *
 *   epoll_server echo|hello|corrupt --port P [--interface 127.0.0.1] [--every N]
 *
 * echo:    every byte read is written straight back from the read handler,
 *          from one shared read buffer.  Only when a write is partial is the
 *          rest copied into a per-connection pending buffer; the connection
 *          then waits for EPOLLOUT (and stops reading: back-pressure).
 * hello:   on accept write "Hello This is HD's Test protocol\r\n" and close.
 * corrupt: echo, but flip one byte every N echoed bytes (default 10000,
 *          counted over all connections) -- proves the load generator's byte
 *          check works.  bin/corrupt_server is this program with corrupt as
 *          its default mode (see corrupt_server.c).
 *
 * Idle cost per connection: no user-space state at all beyond one pointer
 * slot in a descriptor-indexed table (the epoll data is the descriptor).
 *
 * Prints exactly one line "listening on HOST:PORT" (the real port when
 * --port 0) once listening.  Exits 0 on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef DEFAULT_MODE
#define DEFAULT_MODE NULL
#endif
#ifndef PROG_NAME
#define PROG_NAME "epoll_server"
#endif

static const char GREETING[] = "Hello This is HD's Test protocol\r\n";

enum mode { M_ECHO, M_HELLO, M_CORRUPT };

/* Unsent remainder of a partial write (allocated only when needed). */
struct pending {
    size_t len, off;
    int close_after; /* hello: close once flushed */
    unsigned char data[];
};

static enum mode mode;
static int epfd = -1, lfd = -1, spare_fd = -1;
static struct pending **pend; /* indexed by descriptor */
static size_t npend;
static unsigned char rbuf[256 * 1024]; /* > the largest message: one read per wake-up */
static unsigned long corrupt_every = 10000;
static unsigned long corrupt_acc;
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void ensure_slot(int fd) {
    if ((size_t)fd < npend) return;
    size_t n = npend ? npend : 1024;
    while (n <= (size_t)fd) n *= 2;
    struct pending **p = realloc(pend, n * sizeof *p);
    if (!p) die("realloc");
    memset(p + npend, 0, (n - npend) * sizeof *p);
    pend = p;
    npend = n;
}

static void close_conn(int fd) {
    if ((size_t)fd < npend && pend[fd]) {
        free(pend[fd]);
        pend[fd] = NULL;
    }
    close(fd); /* also removes it from the epoll set */
}

static void set_events(int fd, uint32_t events, int add) {
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)fd};
    if (epoll_ctl(epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0) {
        perror("epoll_ctl");
        close_conn(fd);
    }
}

/*
 * Write buf[0..n) now; keep what does not fit and wait for EPOLLOUT.
 * Returns 0 if all was written, 1 if the rest is pending, -1 if the
 * connection was closed.
 */
static int send_or_queue(int fd, const unsigned char *buf, size_t n, int close_after, int registered) {
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        close_conn(fd); /* EPIPE, ECONNRESET, ... */
        return -1;
    }
    if (off == n) return 0;
    struct pending *p = malloc(sizeof *p + (n - off));
    if (!p) {
        close_conn(fd);
        return -1;
    }
    p->len = n - off;
    p->off = 0;
    p->close_after = close_after;
    memcpy(p->data, buf + off, n - off);
    ensure_slot(fd);
    pend[fd] = p;
    set_events(fd, EPOLLOUT, !registered); /* stop reading until drained */
    return 1;
}

static void corrupt(unsigned char *buf, size_t n) {
    /* flip one byte each time the running byte count passes a multiple of N */
    size_t i = 0;
    while (i < n) {
        size_t need = corrupt_every - corrupt_acc;
        if (n - i < need) {
            corrupt_acc += n - i;
            return;
        }
        i += need - 1;
        buf[i] ^= 0x5a;
        i += 1;
        corrupt_acc = 0;
    }
}

static void handle_read(int fd) {
    for (int iter = 0; iter < 16; iter++) {
        ssize_t n = read(fd, rbuf, sizeof rbuf);
        if (n > 0) {
            if (mode == M_CORRUPT) corrupt(rbuf, (size_t)n);
            if (send_or_queue(fd, rbuf, (size_t)n, 0, 1) != 0) return;
            if ((size_t)n < sizeof rbuf) return; /* drained (level-triggered anyway) */
            continue;
        }
        if (n == 0) { /* EOF */
            close_conn(fd);
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        close_conn(fd); /* ECONNRESET etc. */
        return;
    }
}

static void handle_write(int fd) {
    struct pending *p = pend[fd];
    while (p->off < p->len) {
        ssize_t w = write(fd, p->data + p->off, p->len - p->off);
        if (w > 0) {
            p->off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        close_conn(fd);
        return;
    }
    int close_after = p->close_after;
    free(p);
    pend[fd] = NULL;
    if (close_after)
        close(fd);
    else
        set_events(fd, EPOLLIN, 0);
}

static void handle_accept(void) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
                /* out of descriptors: accept and drop one, so the listener
                   does not spin level-triggered */
                close(spare_fd);
                fd = accept(lfd, NULL, NULL);
                if (fd >= 0) close(fd);
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                continue;
            }
            perror("accept4");
            return;
        }
        if (mode == M_HELLO) {
            if (send_or_queue(fd, (const unsigned char *)GREETING, sizeof GREETING - 1, 1, 0) == 0)
                close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ensure_slot(fd);
        set_events(fd, EPOLLIN, 1);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: " PROG_NAME " echo|hello|corrupt --port P [--interface 127.0.0.1] [--every N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *mode_s = DEFAULT_MODE;
    const char *iface = "127.0.0.1";
    int port = -1;
    int i = 1;
    if (i < argc && argv[i][0] != '-') mode_s = argv[i++];
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--interface") && i + 1 < argc)
            iface = argv[++i];
        else if (!strcmp(argv[i], "--every") && i + 1 < argc)
            corrupt_every = strtoul(argv[++i], NULL, 10);
        else
            usage();
    }
    if (!mode_s || port < 0 || port > 65535 || corrupt_every < 1) usage();
    if (!strcmp(mode_s, "echo"))
        mode = M_ECHO;
    else if (!strcmp(mode_s, "hello"))
        mode = M_HELLO;
    else if (!strcmp(mode_s, "corrupt"))
        mode = M_CORRUPT;
    else
        usage();

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ensure_slot(1023);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    /* SIGTERM/SIGINT are blocked except while waiting in epoll_pwait */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, iface, &addr.sin_addr) != 1) {
        fprintf(stderr, PROG_NAME ": bad --interface %s (IPv4 address expected)\n", iface);
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 4096) < 0) die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = (uint64_t)lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl");

    printf("listening on %s:%d\n", iface, ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event evs[512];
    while (!stop_flag) {
        int n = epoll_pwait(epfd, evs, 512, -1, &waitmask);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int fd = (int)evs[k].data.u64;
            uint32_t e = evs[k].events;
            if (fd == lfd) {
                handle_accept();
            } else if ((size_t)fd < npend && pend[fd]) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) handle_write(fd);
            } else if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                handle_read(fd); /* read reports EOF / the error */
            }
        }
    }
    return 0;
}
