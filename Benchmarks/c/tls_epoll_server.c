/*
 * tls_epoll_server.c -- the TLS benchmark "floor": a single-threaded,
 * level-triggered epoll echo server driving OpenSSL by hand, with the least
 * work per request we can write.
 *
 *   tls_epoll_server echo --port P --cert CERT.pem --key KEY.pem [--interface 127.0.0.1]
 *
 * Each accepted socket gets an SSL on the socket itself (SSL_set_fd),
 * TCP_NODELAY, read-ahead on and a 64 KiB OpenSSL read buffer.  Readable:
 * SSL_read into one shared 64 KiB buffer (again while OpenSSL holds read-ahead
 * bytes: SSL_has_pending; the socket itself is read once per wake-up, as
 * level-triggered epoll calls again while it has more), each piece written
 * straight back with SSL_write (SSL_MODE_ENABLE_PARTIAL_WRITE |
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).  What OpenSSL did not take is copied to
 * a per-connection pending buffer; the connection then waits for EPOLLOUT and
 * stops reading (back-pressure).  TLS 1.2 or newer, OpenSSL's defaults
 * otherwise (TLS 1.3 with AES-256-GCM against OpenSSL's client), as twine's
 * and libevent_tls_server's contexts.  The peer's close_notify is answered
 * with ours.
 *
 * Prints exactly one line "listening on HOST:PORT" once listening.
 * Exits 0 on SIGTERM/SIGINT.  Link: -lssl -lcrypto.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SZ (64 * 1024)

/* One connection: its SSL and, after a partial write, the rest to send. */
struct conn {
    SSL *ssl;
    int handshaking;
    int want_out; /* EPOLLOUT armed (reading stopped) */
    size_t plen, poff;
    unsigned char *pending; /* BUF_SZ bytes, allocated on the first partial write */
};

static int epfd = -1, lfd = -1;
static struct conn **conns; /* indexed by descriptor */
static size_t nconns;
static unsigned char rbuf[BUF_SZ];
static SSL_CTX *ctx;
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void close_conn(int fd, int notify) {
    struct conn *c = conns[fd];
    if (c) {
        if (notify && !c->handshaking) SSL_shutdown(c->ssl); /* one close_notify, best effort */
        SSL_free(c->ssl);
        free(c->pending);
        free(c);
        conns[fd] = NULL;
    }
    close(fd); /* removes it from epoll */
}

static void set_out(int fd, struct conn *c, int out) {
    if (c->want_out == out) return;
    c->want_out = out;
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* SSL_write until all is taken; 1 when done, 0 when the rest waits (pending), -1 on error. */
static int write_all(int fd, struct conn *c, const unsigned char *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        ERR_clear_error();
        int w = SSL_write(c->ssl, buf + off, (int)(n - off));
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        int e = SSL_get_error(c->ssl, w);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return -1;
        if (buf != c->pending) { /* keep the rest (it starts with what OpenSSL holds) */
            if (!c->pending && !(c->pending = malloc(BUF_SZ))) return -1;
            memcpy(c->pending, buf + off, n - off);
            c->plen = n - off;
        } else {
            c->poff += off; /* retried from pending: the rest stays there */
        }
        set_out(fd, c, 1);
        return 0;
    }
    if (buf == c->pending) c->plen = c->poff = 0;
    return 1;
}

static void handshake(int fd, struct conn *c) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshaking = 0;
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        set_out(fd, c, 0);
    } else if (e == SSL_ERROR_WANT_WRITE) {
        set_out(fd, c, 1);
    } else {
        close_conn(fd, 0);
    }
}

static void handle_read(int fd, struct conn *c) {
    if (c->handshaking) {
        handshake(fd, c);
        if (conns[fd] == NULL || c->handshaking) return;
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, rbuf, BUF_SZ);
        if (r > 0) {
            int w = write_all(fd, c, rbuf, (size_t)r);
            if (w < 0) return close_conn(fd, 0);
            if (w == 0) return; /* back-pressure: reading resumes once pending is sent */
            /* Read-ahead: records already read from the socket wait inside OpenSSL, where
               epoll cannot see them; bytes still in the socket wake us again (level-triggered). */
            if (!SSL_has_pending(c->ssl)) return;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) return;
        if (e == SSL_ERROR_WANT_WRITE) return set_out(fd, c, 1);
        return close_conn(fd, e == SSL_ERROR_ZERO_RETURN);
    }
}

static void handle_write(int fd, struct conn *c) {
    if (c->handshaking) {
        handshake(fd, c);
        return;
    }
    if (c->plen > c->poff) {
        size_t len = c->plen - c->poff;
        memmove(c->pending, c->pending + c->poff, len); /* OpenSSL accepts a moved buffer */
        c->plen = len;
        c->poff = 0;
        int w = write_all(fd, c, c->pending, len);
        if (w < 0) return close_conn(fd, 0);
        if (w == 0) return;
    }
    set_out(fd, c, 0);
    handle_read(fd, c); /* records may wait decrypted inside OpenSSL (read-ahead) */
}

static void handle_accept(void) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            return; /* EAGAIN, or out of descriptors (level-triggered: tried again) */
        }
        if ((size_t)fd >= nconns) {
            size_t n = nconns ? nconns : 1024;
            while (n <= (size_t)fd) n *= 2;
            struct conn **grown = realloc(conns, n * sizeof *conns);
            if (!grown) die("realloc");
            memset(grown + nconns, 0, (n - nconns) * sizeof *conns);
            conns = grown;
            nconns = n;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c || !(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, fd) != 1) {
            if (c && c->ssl) SSL_free(c->ssl);
            free(c);
            close(fd);
            continue;
        }
        SSL_set_accept_state(c->ssl);
        c->handshaking = 1;
        conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close_conn(fd, 0);
            continue;
        }
    }
}

static void usage(void) {
    fprintf(stderr, "usage: tls_epoll_server echo --port P --cert CERT.pem --key KEY.pem [--interface 127.0.0.1]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "echo") != 0) usage();
    const char *iface = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--interface") && i + 1 < argc)
            iface = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else
            usage();
    }
    if (port < 0 || port > 65535 || !cert || !key) usage();

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "tls_epoll_server: cannot set up TLS with %s and %s\n", cert, key);
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, BUF_SZ);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, iface, &addr.sin_addr) != 1) {
        fprintf(stderr, "tls_epoll_server: bad --interface %s (IPv4 address expected)\n", iface);
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("tls_epoll_server: bind");
    if (listen(lfd, 4096) < 0) die("listen");
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl");

    printf("listening on %s:%d\n", iface, ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event evs[256];
    while (!stop_flag) {
        int n = epoll_wait(epfd, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            if (fd == lfd) {
                handle_accept();
                continue;
            }
            struct conn *c = (size_t)fd < nconns ? conns[fd] : NULL;
            if (!c) continue;
            if (evs[k].events & EPOLLOUT)
                handle_write(fd, c);
            else
                handle_read(fd, c);
        }
    }
    close(lfd);
    close(epfd);
    SSL_CTX_free(ctx);
    return 0;
}
