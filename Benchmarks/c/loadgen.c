/*
 * loadgen.c -- single-threaded epoll load generator for the Twine benchmarks.
 *
 *   loadgen echo    --port P --conns C --size S [--depth D] --duration SEC --warmup SEC
 *   loadgen stream  --port P --conns C [--size CHUNK] [--depth D] --duration SEC --warmup SEC
 *   loadgen connect --port P --inflight K --duration SEC --warmup SEC [--expect STRING]
 *   loadgen idle    --port P --conns N --hold SEC
 * common: [--host 127.0.0.1] [--unix PATH (instead of host and port)] [--server-pid PID] [--connect-timeout SEC]
 * echo, stream, connect: [--tls 1]
 *
 * echo:    C connections; each keeps D messages of S bytes in flight (D=1:
 *          send, wait for the whole echo, send the next).  Every echoed
 *          byte is checked against what was sent: message m of connection c
 *          is the slice pattern[off(c,m) .. off(c,m)+S) of one random
 *          pattern, where off() differs for consecutive messages and between
 *          connections, so corrupted, lost, duplicated or reordered bytes are
 *          caught.  Latency = first write of a message -> its last echoed byte.
 * stream:  the same engine used for bulk transfer: CHUNK-byte messages
 *          (default 64 KiB), D (default 8) in flight per connection, all
 *          verified; the figure is MB/s echoed back.
 * connect: K concurrent loops of connect -> read greeting to EOF -> close;
 *          the greeting must equal --expect (default the HD greeting, C
 *          escapes \r \n \\ accepted).  After EOF the client closes with
 *          SO_LINGER {1,0} (RST) so no TIME_WAIT sockets pile up.
 *          With --tls 1 (against a TLS echo server): connect -> full TLS
 *          handshake (a new session each time, no resumption) -> our
 *          close_notify -> read to the server's end of stream -> close; one
 *          completed connection per full handshake.
 * idle:    open N connections (at most 128 being set up at once), one small
 *          echo on each, print "ready N" once all are up, hold them until
 *          SIGTERM or --hold elapses, then report the server RSS growth.
 *
 * --tls 1: speak TLS (OpenSSL, TLS 1.2 or newer, the server's certificate is
 * not checked: a load generator, not a client to trust); the handshake is part
 * of connection set-up, before the warm-up.  Echoed bytes are verified after
 * decryption as usual.
 *
 * --server-pid PID: server CPU time over the measured period (after warm-up):
 * the sum of /proc/PID/task/{*}/schedstat run times (ns; all threads), or
 * utime+stime from /proc/PID/stat (clock ticks) where schedstat is missing;
 * and the server's VmRSS.
 *
 * Output: one line "RESULT {json}" and one human-readable line on stdout.
 * Exit status: 0 = no errors, 1 = errors (mismatch, unexpected EOF/reset,
 * connect failure, timeout), 2 = usage or setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define RBUF_SZ (256 * 1024)
#define MAXEV 1024
#define CONNECT_WINDOW 128 /* connections being set up at once */
#define PAT_SPREAD 251     /* number of distinct message offsets (prime) */
#define MAX_IOV 64

enum { MODE_ECHO, MODE_STREAM, MODE_CONNECT, MODE_IDLE };
static const char *mode_names[] = {"echo", "stream", "connect", "idle"};
enum { C_NEW, C_CONNECTING, C_ACTIVE, C_IDLE_UP, C_DEAD };
enum { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DONE };
enum { E_MISMATCH, E_EOF, E_RESET, E_CONNECT, E_TIMEOUT, E_IO, E_NKINDS };
static const char *err_names[] = {"mismatch", "eof", "reset", "connect", "timeout", "io"};

static const char DEFAULT_GREETING[] = "Hello This is HD's Test protocol\r\n";

/* ---------------------------------------------------------------- options */
static int mode = -1;
static const char *host = "127.0.0.1";
static int port = -1;
static long conns = 1;
static long msg_size = -1;
static long depth = -1;
static double duration = 5, warmup = 1, hold = 10, connect_timeout = 10;
static long inflight = 50;
static const char *expect_raw = NULL;
static char *expect;
static size_t expect_len;
static int server_pid = 0;
static int spin = 0; /* --spin 1: busy-poll epoll (never sleep) */
static int use_tls = 0; /* --tls 1: TLS over every connection */
static SSL_CTX *tls_ctx;

/* ---------------------------------------------------------------- state */
struct conn {
    int fd;
    uint8_t state;
    uint8_t want_out;
    uint32_t tx_off, rx_off; /* bytes of the current message written / read */
    uint64_t queued;         /* messages started */
    uint64_t sent;           /* messages fully written */
    uint64_t rx;             /* messages fully echoed */
    uint64_t *t_send;        /* ring of `depth` send times (ns) */
    uint16_t glen;           /* connect mode: greeting bytes so far */
    uint8_t handshaking;     /* --tls: TCP is up, the TLS handshake is not done */
    SSL *ssl;                /* --tls: the connection's TLS state */
};

static struct conn *cs;
static char *gbufs; /* connect mode: greeting buffers, GBUF_SZ each */
#define GBUF_SZ 256
static uint64_t *tsend_all;
static unsigned char *pattern;
static unsigned char *rbuf;
static int epfd;
static struct sockaddr_storage dst; /* the server: IPv4 (--host/--port) or AF_UNIX (--unix) */
static socklen_t dst_len;
static const char *unix_path;
static int phase = PH_SETUP;
static volatile sig_atomic_t got_signal;

static long next_to_open;   /* next connection index to open */
static long setting_up;     /* connections opened but not yet up */
static long up;             /* connections fully set up */
static long dead;           /* connections lost */
static uint64_t completed;  /* messages (or connections) completed while measuring */
static uint64_t rx_bytes;   /* bytes echoed back while measuring */
static uint64_t errors, err_kind[E_NKINDS];
static int reported_errors;

/* latency histogram: log-linear, 32 sub-buckets per power of two (~3%) */
#define H_SUB 5
#define H_BUCKETS (64 + 58 * 32)
static uint64_t hist[H_BUCKETS];
static uint64_t hist_n, hist_max;
static double hist_sum;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_self_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void hist_add(uint64_t v) {
    int idx;
    if (v < 64) {
        idx = (int)v;
    } else {
        int e = 63 - __builtin_clzll(v); /* >= 6 */
        idx = 64 + (e - 6) * 32 + (int)((v >> (e - H_SUB)) & 31);
        if (idx >= H_BUCKETS) idx = H_BUCKETS - 1;
    }
    hist[idx]++;
    hist_n++;
    hist_sum += (double)v;
    if (v > hist_max) hist_max = v;
}

static double hist_bucket_mid(int idx) {
    if (idx < 64) return idx;
    int e = (idx - 64) / 32 + 6, sub = (idx - 64) % 32;
    double lo = (double)((uint64_t)(32 + sub) << (e - H_SUB));
    double w = (double)(1ull << (e - H_SUB));
    return lo + w / 2;
}

static double hist_pct_us(double q) {
    if (!hist_n) return 0;
    uint64_t target = (uint64_t)ceil(q * (double)hist_n);
    if (target < 1) target = 1;
    uint64_t acc = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        acc += hist[i];
        if (acc >= target) {
            double v = hist_bucket_mid(i);
            if (v > (double)hist_max) v = (double)hist_max;
            return v / 1000.0;
        }
    }
    return hist_max / 1000.0;
}

/* ---------------------------------------------------------------- server stats */
struct srv_snap {
    int ok;
    double cpu_stat_s;  /* utime+stime, clock ticks -> s */
    double cpu_sched_s; /* sum of per-thread schedstat run time */
    int sched_ok;
    long rss_kb;
    double sys_busy_s; /* all CPUs' non-idle time from /proc/stat */
};

static int read_file(const char *path, char *buf, size_t cap);

static double sys_busy_s(void) {
    char buf[512];
    if (read_file("/proc/stat", buf, sizeof buf) <= 0) return -1;
    unsigned long long v[8] = {0};
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7]) < 7)
        return -1;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static int read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return (int)n;
}

static long proc_rss_kb(int pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (read_file(path, buf, sizeof buf) < 0) return -1;
    char *p = strstr(buf, "VmRSS:");
    return p ? strtol(p + 6, NULL, 10) : -1;
}

static struct srv_snap srv_snapshot(void) {
    struct srv_snap s;
    memset(&s, 0, sizeof s);
    s.sys_busy_s = sys_busy_s();
    if (!server_pid) return s;
    char path[96], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", server_pid);
    if (read_file(path, buf, sizeof buf) > 0) {
        char *p = strrchr(buf, ')'); /* comm may contain spaces */
        if (p) {
            /* after ')': field 3 is state; utime is field 14, stime 15 */
            unsigned long ut = 0, st = 0;
            int field = 2;
            char *tok = p + 1;
            while (*tok && field < 15) {
                while (*tok == ' ') tok++;
                field++;
                if (field == 14) ut = strtoul(tok, NULL, 10);
                if (field == 15) st = strtoul(tok, NULL, 10);
                while (*tok && *tok != ' ') tok++;
            }
            s.cpu_stat_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
            s.ok = 1;
        }
    }
    snprintf(path, sizeof path, "/proc/%d/task", server_pid);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        double sum = 0;
        int any = 0;
        while ((de = readdir(d))) {
            if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
            char tpath[320];
            snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/schedstat", server_pid, de->d_name);
            if (read_file(tpath, buf, sizeof buf) > 0) {
                sum += strtod(buf, NULL) / 1e9;
                any = 1;
            }
        }
        closedir(d);
        s.cpu_sched_s = sum;
        s.sched_ok = any;
    }
    s.rss_kb = proc_rss_kb(server_pid);
    return s;
}

/* ---------------------------------------------------------------- helpers */
static void usage(void) {
    fprintf(stderr,
            "usage: loadgen echo    --port P --conns C --size S [--depth D] --duration SEC --warmup SEC\n"
            "       loadgen stream  --port P --conns C [--size CHUNK] [--depth D] --duration SEC --warmup SEC\n"
            "       loadgen connect --port P --inflight K --duration SEC --warmup SEC [--expect STRING]\n"
            "       loadgen idle    --port P --conns N --hold SEC\n"
            "common: [--host 127.0.0.1] [--unix PATH] [--server-pid PID] [--connect-timeout SEC]\n"
            "echo, stream, connect: [--tls 1]\n");
    exit(2);
}

static void fail_setup(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void note_error(int kind, const char *fmt, ...) {
    errors++;
    err_kind[kind]++;
    if (reported_errors < 5) {
        reported_errors++;
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "loadgen: error (%s): ", err_names[kind]);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    } else if (reported_errors == 5) {
        reported_errors++;
        fprintf(stderr, "loadgen: further errors not shown\n");
    }
}

static char *unescape(const char *s, size_t *len) {
    char *out = malloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 'r' ? '\r' : *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
        } else {
            *o++ = *s;
        }
    }
    *len = (size_t)(o - out);
    return out;
}

static inline const unsigned char *pat_for(uint32_t c, uint64_t m) {
    return pattern + (((uint64_t)c * 977u + m * 131u) % PAT_SPREAD);
}

static void set_out(struct conn *c, uint32_t idx, int on) {
    if (c->want_out == on) return;
    c->want_out = (uint8_t)on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = idx};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct conn *c) {
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    c->handshaking = 0;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static void open_more(void);

static void conn_fail(struct conn *c, int kind, const char *what) {
    uint32_t idx = (uint32_t)(c - cs);
    if (phase != PH_DONE) note_error(kind, "connection %u: %s", idx, what);
    if (c->state == C_CONNECTING || (mode == MODE_IDLE && c->state == C_ACTIVE)) setting_up--;
    if (c->state == C_IDLE_UP || (mode != MODE_IDLE && c->state == C_ACTIVE)) up--;
    c->state = C_DEAD;
    dead++;
    conn_close(c);
    open_more();
}

/* ---------------------------------------------------------------- echo engine */
static void queue_msg(struct conn *c, uint64_t t) {
    c->t_send[c->queued % (uint64_t)depth] = t;
    c->queued++;
}

/* ---------------------------------------------------------------- TLS (--tls 1) */
/* SSL_write each iovec in turn; like writev: bytes taken, or -1 with errno (EAGAIN when it would block). */
static ssize_t tls_writev(struct conn *c, const struct iovec *iov, int n) {
    size_t done = 0;
    for (int i = 0; i < n; i++) {
        ERR_clear_error();
        int r = SSL_write(c->ssl, iov[i].iov_base, (int)iov[i].iov_len);
        if (r > 0) {
            done += (size_t)r;
            if ((size_t)r < iov[i].iov_len) break;
            continue;
        }
        if (done) break;
        int e = SSL_get_error(c->ssl, r);
        errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : e == SSL_ERROR_SYSCALL && errno ? errno : EIO;
        return -1;
    }
    return (ssize_t)done;
}

/* SSL_read like read(2): bytes, 0 at the end of the stream, or -1 with errno. */
static ssize_t tls_read(struct conn *c, void *buf, size_t len) {
    ERR_clear_error();
    int r = SSL_read(c->ssl, buf, (int)len);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return 0;
    if (e != SSL_ERROR_SYSCALL || !errno) errno = EIO;
    return -1;
}

static void conn_up(struct conn *c, uint32_t idx);

/* Drives the handshake; the connection is up (conn_up) when it completes. */
static void tls_handshake(struct conn *c, uint32_t idx) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshaking = 0;
        conn_up(c, idx);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        set_out(c, idx, e == SSL_ERROR_WANT_WRITE);
        return;
    }
    char what[256];
    ERR_error_string_n(ERR_get_error(), what, sizeof what);
    conn_fail(c, E_CONNECT, e == SSL_ERROR_SYSCALL ? "TLS handshake: connection closed" : what);
}

/* TCP connected: start the TLS handshake. */
static void tls_start(struct conn *c, uint32_t idx) {
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ssl = SSL_new(tls_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_fail(c, E_CONNECT, "SSL_new failed");
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->handshaking = 1;
    tls_handshake(c, idx);
}

static int flush_tx(struct conn *c, uint32_t idx) {
    while (c->sent < c->queued) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        size_t total = 0;
        uint32_t off = c->tx_off;
        for (uint64_t m = c->sent; m < c->queued && n < MAX_IOV; m++, n++) {
            iov[n].iov_base = (void *)(pat_for(idx, m) + off);
            iov[n].iov_len = (size_t)msg_size - off;
            total += iov[n].iov_len;
            off = 0;
        }
        ssize_t w = c->ssl ? tls_writev(c, iov, n)
                    : n == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len)
                             : writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_out(c, idx, 1);
                return 0;
            }
            conn_fail(c, errno == ECONNRESET || errno == EPIPE ? E_RESET : E_IO, strerror(errno));
            return -1;
        }
        size_t left = (size_t)w;
        while (left > 0) {
            size_t rem = (size_t)msg_size - c->tx_off;
            if (left >= rem) {
                left -= rem;
                c->tx_off = 0;
                c->sent++;
            } else {
                c->tx_off += (uint32_t)left;
                left = 0;
            }
        }
        if ((size_t)w < total) { /* socket buffer full: wait for EPOLLOUT */
            set_out(c, idx, 1);
            return 0;
        }
    }
    set_out(c, idx, 0);
    return 0;
}

static void conn_up(struct conn *c, uint32_t idx) {
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_ACTIVE;
    if (mode != MODE_IDLE) {
        setting_up--;
        up++;
    }
    uint64_t t = now_ns();
    long first = mode == MODE_IDLE ? 1 : depth;
    for (long k = 0; k < first; k++) queue_msg(c, t);
    flush_tx(c, idx);
    open_more();
}

/* verify echoed bytes; returns -1 if the connection was failed */
static int consume(struct conn *c, uint32_t idx, const unsigned char *buf, size_t n, uint64_t t) {
    uint64_t rxpos = c->rx * (uint64_t)msg_size + c->rx_off + n;
    uint64_t txpos = c->sent * (uint64_t)msg_size + c->tx_off;
    if (rxpos > txpos) {
        conn_fail(c, E_MISMATCH, "received more bytes than were sent");
        return -1;
    }
    if (phase == PH_MEASURE) rx_bytes += n;
    while (n) {
        size_t k = (size_t)msg_size - c->rx_off;
        if (k > n) k = n;
        const unsigned char *exp = pat_for(idx, c->rx) + c->rx_off;
        if (memcmp(buf, exp, k) != 0) {
            size_t at = 0;
            while (at < k && buf[at] == exp[at]) at++;
            char what[160];
            snprintf(what, sizeof what, "echoed byte mismatch in message %llu at offset %lu: got 0x%02x, sent 0x%02x",
                     (unsigned long long)c->rx, (unsigned long)(c->rx_off + at), buf[at], exp[at]);
            conn_fail(c, E_MISMATCH, what);
            return -1;
        }
        buf += k;
        n -= k;
        c->rx_off += (uint32_t)k;
        if (c->rx_off == (uint32_t)msg_size) {
            c->rx_off = 0;
            uint64_t t0 = c->t_send[c->rx % (uint64_t)depth];
            c->rx++;
            if (phase == PH_MEASURE) {
                completed++;
                hist_add(t - t0);
            }
            if (mode == MODE_IDLE) {
                if (c->state == C_ACTIVE) {
                    c->state = C_IDLE_UP;
                    setting_up--;
                    up++;
                    open_more();
                }
            } else if (phase != PH_DONE) {
                queue_msg(c, t);
            }
        }
    }
    return 0;
}

static void on_readable(struct conn *c, uint32_t idx) {
    for (int iter = 0; iter < 8; iter++) {
        ssize_t n = c->ssl ? tls_read(c, rbuf, RBUF_SZ) : read(c->fd, rbuf, RBUF_SZ);
        if (n > 0) {
            if (consume(c, idx, rbuf, (size_t)n, now_ns()) < 0) return;
            if (n < RBUF_SZ && !c->ssl) break; /* TLS: one record per call; read until it would block */
            continue;
        }
        if (n == 0) {
            conn_fail(c, E_EOF, "server closed the connection");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        conn_fail(c, errno == ECONNRESET ? E_RESET : E_IO, strerror(errno));
        return;
    }
    if (c->sent < c->queued && !c->want_out) flush_tx(c, idx);
}

static void open_conn(uint32_t idx) {
    struct conn *c = &cs[idx];
    c->fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = C_CONNECTING;
        setting_up++;
        conn_fail(c, E_CONNECT, strerror(errno));
        return;
    }
    c->state = C_CONNECTING;
    setting_up++;
    int r = connect(c->fd, (struct sockaddr *)&dst, dst_len);
    if (r < 0 && errno != EINPROGRESS) {
        conn_fail(c, E_CONNECT, strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = idx};
    c->want_out = 1;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(c, E_IO, strerror(errno));
        return;
    }
}

static void open_more(void) {
    if (mode == MODE_CONNECT || phase == PH_DONE) return;
    while (next_to_open < conns && setting_up < CONNECT_WINDOW) open_conn((uint32_t)next_to_open++);
}

static void echo_event(uint32_t idx, uint32_t ev) {
    struct conn *c = &cs[idx];
    if (c->state == C_DEAD || c->fd < 0) return;
    if (c->handshaking) {
        tls_handshake(c, idx);
        return;
    }
    if (c->state == C_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            conn_fail(c, E_CONNECT, err ? strerror(err) : "connect failed");
            return;
        }
        if (use_tls) {
            tls_start(c, idx);
            return;
        }
        conn_up(c, idx);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(c, idx);
        if (c->state == C_DEAD) return;
    }
    if ((ev & EPOLLOUT) && c->want_out) flush_tx(c, idx);
}

/* ---------------------------------------------------------------- connect engine */
static uint64_t cm_done_total;

static void cm_start(uint32_t slot) {
    struct conn *c = &cs[slot];
    c->glen = 0;
    c->t_send[0] = now_ns();
    c->fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_error(E_CONNECT, "socket: %s", strerror(errno));
        c->state = C_DEAD;
        return;
    }
    int r = connect(c->fd, (struct sockaddr *)&dst, dst_len);
    if (r < 0 && errno != EINPROGRESS) {
        note_error(E_CONNECT, "connect: %s", strerror(errno));
        conn_close(c);
        c->state = C_DEAD; /* retried from the main loop */
        return;
    }
    struct epoll_event ev = {.events = use_tls ? EPOLLOUT : EPOLLIN, .data.u32 = slot}; /* TLS: wait for the connect */
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->state = C_ACTIVE;
}

static void cm_abort(struct conn *c, int kind, const char *what) {
    if (phase != PH_DONE) note_error(kind, "%s", what);
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_close(c);
    c->state = C_DEAD;
}

static void cm_done(struct conn *c, uint64_t bytes) {
    uint64_t t = now_ns();
    struct linger lg = {1, 0}; /* close with RST: no TIME_WAIT */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_close(c);
    c->state = C_DEAD;
    cm_done_total++;
    if (phase == PH_MEASURE) {
        completed++;
        rx_bytes += bytes;
        hist_add(t - c->t_send[0]);
    }
}

/* --tls 1: the TCP connect completed (or failed), the handshake runs, then both close_notify and EOF. */
static void cm_tls_event(uint32_t slot) {
    struct conn *c = &cs[slot];
    if (!c->ssl) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) return cm_abort(c, err == ECONNREFUSED ? E_CONNECT : E_IO, strerror(err));
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!(c->ssl = SSL_new(tls_ctx)) || SSL_set_fd(c->ssl, c->fd) != 1) return cm_abort(c, E_CONNECT, "SSL_new failed");
        SSL_set_connect_state(c->ssl);
        c->handshaking = 1;
    }
    ERR_clear_error();
    int r;
    if (c->handshaking) {
        r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            c->handshaking = 0;
            ERR_clear_error();
            SSL_shutdown(c->ssl); /* our close_notify; the server answers with its end of stream */
        }
    }
    while (!c->handshaking) {
        ERR_clear_error();
        r = SSL_read(c->ssl, rbuf, RBUF_SZ);
        if (r > 0) continue;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        return cm_done(c, 0); /* the server's close_notify or EOF: done */
    }
    int e = SSL_get_error(c->ssl, r);
    if (c->handshaking && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        char what[256];
        ERR_error_string_n(ERR_get_error(), what, sizeof what);
        return cm_abort(c, E_CONNECT, e == SSL_ERROR_SYSCALL ? "TLS handshake: connection closed" : what);
    }
    struct epoll_event ev = {.events = e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN, .data.u32 = slot};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void cm_event(uint32_t slot) {
    struct conn *c = &cs[slot];
    if (c->state != C_ACTIVE) return;
    if (use_tls) {
        cm_tls_event(slot);
        if (c->state == C_DEAD && phase != PH_DONE) cm_start(slot);
        return;
    }
    char *g = gbufs + (size_t)slot * GBUF_SZ;
    for (;;) {
        ssize_t n = read(c->fd, g + c->glen, GBUF_SZ - c->glen);
        if (n > 0) {
            c->glen += (uint16_t)n;
            if (c->glen >= GBUF_SZ) {
                cm_abort(c, E_MISMATCH, "greeting longer than expected");
                break;
            }
            continue;
        }
        if (n == 0) { /* EOF: the greeting is complete */
            uint64_t t = now_ns();
            if (c->glen != expect_len || memcmp(g, expect, expect_len) != 0) {
                char what[GBUF_SZ + 64];
                snprintf(what, sizeof what, "greeting mismatch (%u bytes): %.*s", c->glen, (int)c->glen, g);
                cm_abort(c, E_MISMATCH, what);
                break;
            }
            struct linger lg = {1, 0}; /* close with RST: no TIME_WAIT */
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            conn_close(c);
            c->state = C_DEAD;
            cm_done_total++;
            if (phase == PH_MEASURE) {
                completed++;
                rx_bytes += c->glen;
                hist_add(t - c->t_send[0]);
            }
            break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        cm_abort(c, errno == ECONNRESET ? E_RESET : errno == ECONNREFUSED ? E_CONNECT : E_IO, strerror(errno));
        break;
    }
    if (phase != PH_DONE) cm_start(slot);
}

/* ---------------------------------------------------------------- main */
static void on_signal(int sig) {
    (void)sig;
    got_signal = 1;
}

static double parse_d(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*end || v < 0) usage();
    return v;
}

static long parse_l(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0) usage();
    return v;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    for (int m = 0; m < 4; m++)
        if (!strcmp(argv[1], mode_names[m])) mode = m;
    if (mode < 0) usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--port")) port = (int)parse_l(v);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--unix")) unix_path = v;
        else if (!strcmp(a, "--conns")) conns = parse_l(v);
        else if (!strcmp(a, "--size")) msg_size = parse_l(v);
        else if (!strcmp(a, "--depth")) depth = parse_l(v);
        else if (!strcmp(a, "--duration")) duration = parse_d(v);
        else if (!strcmp(a, "--warmup")) warmup = parse_d(v);
        else if (!strcmp(a, "--hold")) hold = parse_d(v);
        else if (!strcmp(a, "--inflight")) inflight = parse_l(v);
        else if (!strcmp(a, "--expect")) expect_raw = v;
        else if (!strcmp(a, "--server-pid")) server_pid = (int)parse_l(v);
        else if (!strcmp(a, "--connect-timeout")) connect_timeout = parse_d(v);
        else if (!strcmp(a, "--spin")) spin = (int)parse_l(v);
        else if (!strcmp(a, "--tls")) use_tls = (int)parse_l(v);
        else usage();
    }
    if (!unix_path && (port <= 0 || port > 65535)) fail_setup("--port (or --unix) is required");
    if (msg_size < 0) msg_size = mode == MODE_STREAM ? 65536 : mode == MODE_IDLE ? 16 : 64;
    if (depth < 0) depth = mode == MODE_STREAM ? 8 : 1;
    if (mode == MODE_IDLE) depth = 1;
    if (msg_size < 1 || msg_size > (1L << 30)) fail_setup("--size out of range");
    if (depth < 1 || depth > 4096) fail_setup("--depth out of range");
    if (conns < 1 || inflight < 1) fail_setup("--conns/--inflight must be >= 1");
    if (duration <= 0 && mode != MODE_IDLE) fail_setup("--duration must be > 0");
    expect = unescape(expect_raw ? expect_raw : DEFAULT_GREETING, &expect_len);
    if (use_tls) {
        if (mode != MODE_ECHO && mode != MODE_STREAM && mode != MODE_CONNECT) fail_setup("--tls is for echo, stream and connect");
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx || SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) != 1) fail_setup("SSL_CTX_new failed");
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    if (expect_len >= GBUF_SZ) fail_setup("--expect too long");

    memset(&dst, 0, sizeof dst);
    if (unix_path) {
        struct sockaddr_un *un = (struct sockaddr_un *)&dst;
        if (strlen(unix_path) >= sizeof un->sun_path) fail_setup("--unix path too long");
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, unix_path);
        dst_len = sizeof *un;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&dst;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1) fail_setup("bad --host %s (IPv4 address expected)", host);
        dst_len = sizeof *in;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    long nslots = mode == MODE_CONNECT ? inflight : conns;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)nslots + 16 > rl.rlim_cur)
        fail_setup("%ld connections need more descriptors than RLIMIT_NOFILE allows (%lu)", nslots,
                   (unsigned long)rl.rlim_cur);

    /* random pattern: any message is a slice at one of PAT_SPREAD offsets */
    size_t plen = (size_t)msg_size + PAT_SPREAD;
    pattern = malloc(plen);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < plen; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = (unsigned char)(x >> 24);
    }
    rbuf = malloc(RBUF_SZ);
    cs = calloc((size_t)nslots, sizeof *cs);
    tsend_all = calloc((size_t)nslots * (size_t)(mode == MODE_CONNECT ? 1 : depth), sizeof(uint64_t));
    if (!pattern || !rbuf || !cs || !tsend_all) fail_setup("out of memory");
    for (long i = 0; i < nslots; i++) {
        cs[i].fd = -1;
        cs[i].t_send = tsend_all + (size_t)i * (size_t)(mode == MODE_CONNECT ? 1 : depth);
    }
    if (mode == MODE_CONNECT) gbufs = malloc((size_t)nslots * GBUF_SZ);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) fail_setup("epoll_create1: %s", strerror(errno));

    struct srv_snap s_base = srv_snapshot(); /* idle: server RSS before any connection */
    uint64_t t_start = now_ns(), t_measure = 0, t_end = 0, t_ready = 0;
    uint64_t setup_deadline = t_start + (uint64_t)(connect_timeout * 1e9);
    double cpu0 = 0, cpu1 = 0;
    struct srv_snap s0, s1;
    memset(&s0, 0, sizeof s0);
    memset(&s1, 0, sizeof s1);

    if (mode == MODE_CONNECT) {
        phase = PH_WARMUP;
        t_measure = t_start + (uint64_t)(warmup * 1e9);
        for (long i = 0; i < nslots; i++) cm_start((uint32_t)i);
    } else {
        open_more();
    }

    struct epoll_event evs[MAXEV];
    while (phase != PH_DONE) {
        uint64_t t = now_ns();
        /* phase transitions */
        if (phase == PH_SETUP) {
            if (up + dead >= conns) {
                if (mode == MODE_IDLE) {
                    t_ready = t;
                    printf("ready %ld connections in %.2f s\n", up, (t - t_start) / 1e9);
                    fflush(stdout);
                    phase = PH_MEASURE;
                    t_end = t + (uint64_t)(hold * 1e9);
                } else {
                    phase = PH_WARMUP;
                    t_measure = t + (uint64_t)(warmup * 1e9);
                }
            } else if (t > setup_deadline) {
                note_error(E_TIMEOUT, "only %ld of %ld connections up after %.1f s", up, conns, connect_timeout);
                phase = PH_DONE;
                break;
            }
        }
        if (phase == PH_WARMUP && t >= t_measure) {
            phase = PH_MEASURE;
            t_measure = t;
            t_end = t + (uint64_t)(duration * 1e9);
            cpu0 = cpu_self_s();
            s0 = srv_snapshot();
        }
        if (phase == PH_MEASURE && t >= t_end) {
            if (mode != MODE_IDLE) {
                cpu1 = cpu_self_s();
                s1 = srv_snapshot();
            }
            t_end = t;
            phase = PH_DONE;
            break;
        }
        if (got_signal) {
            if (phase == PH_MEASURE && mode != MODE_IDLE) {
                cpu1 = cpu_self_s();
                s1 = srv_snapshot();
            }
            t_end = t;
            if (phase != PH_MEASURE) note_error(E_TIMEOUT, "interrupted before the measurement");
            phase = PH_DONE;
            break;
        }
        if (mode != MODE_CONNECT && mode != MODE_IDLE && dead >= conns && phase != PH_SETUP) {
            note_error(E_IO, "all connections lost");
            cpu1 = cpu_self_s();
            s1 = srv_snapshot();
            t_end = t;
            phase = PH_DONE;
            break;
        }
        if (mode == MODE_CONNECT) { /* restart slots whose connect failed (bounded by errors) */
            for (long i = 0; i < nslots; i++)
                if (cs[i].state == C_DEAD && cs[i].fd < 0) cm_start((uint32_t)i);
        }

        uint64_t next = phase == PH_SETUP ? setup_deadline : phase == PH_WARMUP ? t_measure : t_end;
        int timeout = next > t ? (int)((next - t) / 1000000 + 1) : 0;
        if (timeout > 100) timeout = 100;
        if (spin) timeout = 0;
        int n = epoll_wait(epfd, evs, MAXEV, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_setup("epoll_wait: %s", strerror(errno));
        }
        for (int k = 0; k < n; k++) {
            if (mode == MODE_CONNECT)
                cm_event(evs[k].data.u32);
            else
                echo_event(evs[k].data.u32, evs[k].events);
        }
        if (mode == MODE_CONNECT && errors > 100000) {
            fprintf(stderr, "loadgen: too many errors, giving up\n");
            t_end = now_ns();
            if (phase == PH_MEASURE) {
                cpu1 = cpu_self_s();
                s1 = srv_snapshot();
            }
            phase = PH_DONE;
        }
    }

    if (mode != MODE_IDLE && completed == 0 && !got_signal)
        note_error(E_TIMEOUT, "no %s completed in the measured period", mode == MODE_CONNECT ? "connection" : "message");

    /* close what is still open with RST (SO_LINGER {1,0}): the client side
       closes first here, and a plain close would leave one TIME_WAIT socket
       per connection holding an ephemeral port */
    long idle_rss_kb = mode == MODE_IDLE && server_pid ? proc_rss_kb(server_pid) : -1;
    struct linger lg0 = {1, 0};
    for (long i = 0; i < nslots; i++) {
        if (cs[i].fd >= 0) {
            setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg0, sizeof lg0);
            conn_close(&cs[i]);
        }
    }

    /* ------------------------------------------------ report */
    double secs;
    long rss_base_kb = -1, rss_kb = -1;
    double server_cpu = -1;
    const char *cpu_src = "none";
    double client_cpu_pct = 0;
    double other_cpu_pct = -1; /* CPU used by everything but us and the server */
    if (mode == MODE_IDLE) {
        /* the server's memory with all N connections still open */
        secs = t_ready ? (t_end - t_ready) / 1e9 : 0;
        if (server_pid) {
            rss_base_kb = s_base.rss_kb;
            rss_kb = idle_rss_kb; /* read while all connections were still open */
        }
        completed = (uint64_t)up;
    } else {
        secs = t_measure && t_end > t_measure && cpu1 > 0 ? (t_end - t_measure) / 1e9 : 0;
        if (secs > 0) client_cpu_pct = 100.0 * (cpu1 - cpu0) / secs;
        if (secs > 0 && s0.sys_busy_s >= 0 && s1.sys_busy_s >= 0)
            other_cpu_pct = 100.0 * (s1.sys_busy_s - s0.sys_busy_s - (cpu1 - cpu0)) / secs;
        if (server_pid && s0.ok && s1.ok && secs > 0) {
            if (s0.sched_ok && s1.sched_ok && s1.cpu_sched_s >= s0.cpu_sched_s) {
                server_cpu = s1.cpu_sched_s - s0.cpu_sched_s;
                cpu_src = "schedstat";
            } else {
                server_cpu = s1.cpu_stat_s - s0.cpu_stat_s;
                cpu_src = "stat";
            }
            rss_base_kb = s0.rss_kb;
            rss_kb = s1.rss_kb;
            if (other_cpu_pct != -1) other_cpu_pct -= 100.0 * server_cpu / secs;
        } else if (server_pid) {
            rss_kb = proc_rss_kb(server_pid);
        }
    }
    double rps = secs > 0 ? completed / secs : 0;
    double mbps = secs > 0 ? rx_bytes / secs / 1e6 : 0;
    double per_req_us = server_cpu >= 0 && completed ? server_cpu * 1e6 / (double)completed : -1;
    double server_pct = server_cpu >= 0 && secs > 0 ? 100.0 * server_cpu / secs : -1;
    double rss_per_conn = -1;
    if (mode == MODE_IDLE && rss_base_kb >= 0 && rss_kb >= 0 && up > 0)
        rss_per_conn = (double)(rss_kb - rss_base_kb) * 1024.0 / (double)up;
    long wanted = mode == MODE_CONNECT ? inflight : conns;

    if (other_cpu_pct != -1 && other_cpu_pct < 0) other_cpu_pct = 0; /* softirq counted twice */
    printf("RESULT {\"mode\": \"%s\", \"conns\": %ld, \"size\": %ld, \"depth\": %ld, \"inflight\": %ld, "
           "\"requests\": %llu, \"seconds\": %.4f, \"rps\": %.1f, \"mbps\": %.3f, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, \"mean_us\": %.2f, \"max_us\": %.2f, "
           "\"errors\": %llu, \"error_kinds\": {\"mismatch\": %llu, \"eof\": %llu, \"reset\": %llu, "
           "\"connect\": %llu, \"timeout\": %llu, \"io\": %llu}, "
           "\"client_cpu_pct\": %.1f, \"other_cpu_pct\": %.1f, \"server_cpu_s\": %.6f, \"server_cpu_src\": \"%s\", "
           "\"server_cpu_pct\": %.1f, \"server_cpu_per_req_us\": %.4f, "
           "\"server_rss_kb\": %ld, \"server_rss_base_kb\": %ld, \"server_rss_delta_kb\": %ld, "
           "\"rss_per_conn_bytes\": %.1f, \"conns_up\": %ld}\n",
           mode_names[mode], mode == MODE_CONNECT ? inflight : conns,
           mode == MODE_CONNECT ? (long)expect_len : msg_size, depth, mode == MODE_CONNECT ? inflight : 0,
           (unsigned long long)completed, secs, rps, mbps, hist_pct_us(0.50), hist_pct_us(0.99),
           hist_pct_us(0.999), hist_n ? hist_sum / hist_n / 1000.0 : 0, hist_max / 1000.0,
           (unsigned long long)errors, (unsigned long long)err_kind[E_MISMATCH],
           (unsigned long long)err_kind[E_EOF], (unsigned long long)err_kind[E_RESET],
           (unsigned long long)err_kind[E_CONNECT], (unsigned long long)err_kind[E_TIMEOUT],
           (unsigned long long)err_kind[E_IO], client_cpu_pct, other_cpu_pct, server_cpu, cpu_src, server_pct, per_req_us,
           rss_kb, rss_base_kb, rss_kb >= 0 && rss_base_kb >= 0 ? rss_kb - rss_base_kb : -1, rss_per_conn,
           mode == MODE_CONNECT ? inflight : up);
    if (mode == MODE_IDLE) {
        printf("idle: %ld/%ld connections held %.1f s; server RSS %ld -> %ld KiB = %.0f bytes/conn; errors %llu\n",
               up, wanted, secs, rss_base_kb, rss_kb, rss_per_conn, (unsigned long long)errors);
    } else {
        printf("%s conns=%ld size=%ld depth=%ld: %.0f %s/s, %.2f MB/s, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, "
               "errors %llu, loadgen CPU %.0f%%",
               mode_names[mode], wanted, mode == MODE_CONNECT ? (long)expect_len : msg_size, depth, rps,
               mode == MODE_CONNECT ? "conn" : "req", mbps, hist_pct_us(0.50), hist_pct_us(0.99),
               hist_pct_us(0.999), (unsigned long long)errors, client_cpu_pct);
        if (per_req_us >= 0)
            printf(", server CPU %.3f us/req (%.0f%% of a core, %s), RSS %ld KiB", per_req_us, server_pct, cpu_src,
                   rss_kb);
        printf("\n");
    }
    fflush(stdout);
    return errors ? 1 : 0;
}
