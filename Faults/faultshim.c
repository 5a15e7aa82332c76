/*
 * faultshim.c -- an LD_PRELOAD shim that makes chosen calls fail at a seeded random rate,
 * for Twine's fault-injection run (Faults/run_faults.py, `make faults`).
 *
 *   TWINE_FAULTS="accept4:EMFILE,ENFILE:0.05;recv:EINTR,EAGAIN:0.02;recv:ECONNRESET:0.0005;..."
 *   TWINE_FAULT_SEED=42                   (default 1)
 *   TWINE_FAULTS_REPORT=/path/report.txt  (the injection table, written at exit)
 *   LD_PRELOAD=Faults/faultshim.so
 *
 * Each rule is CALL:ERROR[,ERROR...]:RATE; a call may have several rules (each rolls its own
 * dice, in order; the first that hits wins) and the error of a hit is picked uniformly from
 * the rule's list.  Calls and errors:
 *
 *   accept, accept4      EMFILE ENFILE ENOBUFS ECONNABORTED  (the real accept is not made:
 *                        the pending connection stays in the backlog, nothing leaks);
 *                        LEAKFD is a planted bug, to prove the driver catches a leak: the
 *                        real accept is made, its fd dropped, and ECONNABORTED returned
 *   recv, read, readv    ECONNRESET EINTR EAGAIN
 *   send, write, writev  EPIPE ECONNRESET EAGAIN, and SHORT (the real call with fewer bytes)
 *   epoll_ctl            ENOMEM   (ADD and MOD only, on a connected TCP socket)
 *   malloc, calloc       NULL     (only calls whose return address lies inside a mapped
 *                        libevent library: the Swift runtime, libc and OpenSSL are never failed)
 *   SSL_read, SSL_write  SSL (SSL_ERROR_SSL: a bad record MAC) and SYSCALL (SSL_ERROR_SYSCALL,
 *                        errno ECONNRESET), pushed on OpenSSL's error queue, return -1
 *
 * Only TCP sockets (AF_INET/AF_INET6, SO_TYPE SOCK_STREAM) are ever failed: pipes, files,
 * stdout, eventfds and UNIX-domain sockets pass untouched.  The dice are rolled first and the
 * fd is checked (getsockopt) only on a hit, so a call that is not failed costs a few
 * instructions and no syscall (and no per-fd cache can go stale when an fd number is reused).
 *
 * Every injection is counted per call and error, with the number of calls seen; the table
 * is written at exit (a destructor, so `exit` and a return from main both write it).
 * Build: cc -O2 -shared -fPIC -o faultshim.so faultshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* ------------------------------------------------------------------ calls and errors */
enum {
    C_ACCEPT, C_ACCEPT4, C_RECV, C_READ, C_READV, C_SEND, C_WRITE, C_WRITEV, C_EPOLL_CTL,
    C_MALLOC, C_CALLOC, C_SSL_READ, C_SSL_WRITE, C_N
};
static const char *call_names[C_N] = {"accept", "accept4", "recv", "read", "readv", "send", "write",
                                      "writev", "epoll_ctl", "malloc", "calloc", "SSL_read", "SSL_write"};

enum { E_SHORT = -1, E_NULL = -2, E_SSL = -3, E_SYSCALL = -4, E_LEAKFD = -5 };
struct errname { const char *name; int code; };
static const struct errname errnames[] = {
    {"EMFILE", EMFILE}, {"ENFILE", ENFILE}, {"ENOBUFS", ENOBUFS}, {"ECONNABORTED", ECONNABORTED},
    {"ECONNRESET", ECONNRESET}, {"EINTR", EINTR}, {"EAGAIN", EAGAIN}, {"EPIPE", EPIPE}, {"ENOMEM", ENOMEM},
    {"SHORT", E_SHORT}, {"NULL", E_NULL}, {"SSL", E_SSL}, {"SYSCALL", E_SYSCALL},
    {"LEAKFD", E_LEAKFD},
};
#define N_ERRNAMES (int)(sizeof errnames / sizeof errnames[0])

#define MAX_RULES 64
#define MAX_ERRS 8
struct rule {
    int call;
    int nerr;
    int err[MAX_ERRS];      /* index into errnames */
    uint64_t threshold;     /* hit when a 64-bit random number is below this */
};
static struct rule rules[MAX_RULES];
static int nrules;
static int has_rule[C_N];
static int ready;           /* rules parsed, libevent's range known */
static int stopping;        /* the report is being written: inject nothing more */
static uint64_t seed = 1;
static const char *report_path;

/* counters: calls seen per call; injections per call and error */
static unsigned long long seen[C_N];
static unsigned long long injected[C_N][N_ERRNAMES];

/* ------------------------------------------------------------------ random numbers */
/* splitmix64 per thread, seeded from TWINE_FAULT_SEED and the thread's arrival order, so a
 * single-threaded server sees the same sequence on every run with the same seed. */
static __thread uint64_t rng_state __attribute__((tls_model("initial-exec")));
static __thread int rng_ready __attribute__((tls_model("initial-exec")));
static unsigned thread_counter;

static uint64_t next_random(void) {
    if (!rng_ready) {
        unsigned k = __atomic_fetch_add(&thread_counter, 1, __ATOMIC_RELAXED);
        rng_state = seed * 0x9E3779B97F4A7C15ull + k * 0xBF58476D1CE4E5B9ull + 1;
        rng_ready = 1;
    }
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Rolls the dice for `call`: the errnames index to inject, or -1. Counts the call. */
static int roll(int call) {
    if (!ready || stopping || !has_rule[call]) return -1;
    __atomic_fetch_add(&seen[call], 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nrules; i++) {
        if (rules[i].call != call) continue;
        uint64_t r = next_random();
        if (r < rules[i].threshold) return rules[i].err[(next_random() >> 11) % (uint64_t)rules[i].nerr];
    }
    return -1;
}

static void count(int call, int e) { __atomic_fetch_add(&injected[call][e], 1, __ATOMIC_RELAXED); }

/* ------------------------------------------------------------------ real functions */
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);
static int (*real_SSL_read)(void *, void *, int);
static int (*real_SSL_write)(void *, const void *, int);
static void (*ossl_ERR_new)(void);
static void (*ossl_ERR_set_debug)(const char *, int, const char *);
static void (*ossl_ERR_set_error)(int, int, const char *, ...);

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);

#define RESOLVE(name) \
    do { if (!real_##name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name); } while (0)

/* ------------------------------------------------------------------ which fds */
/* A TCP socket: the only kind of fd ever failed. Checked only when the dice hit. */
static int is_tcp_socket(int fd) {
    int domain = 0, type = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return 0;
    if (domain != AF_INET && domain != AF_INET6) return 0;
    len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return 0;
    return type == SOCK_STREAM;
}

static int is_listening(int fd) {
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* ------------------------------------------------------------------ libevent's range */
#define MAX_RANGES 32
static uintptr_t range_lo[MAX_RANGES], range_hi[MAX_RANGES];
static int nranges;

static int collect_ranges(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size, (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libevent")) return 0;
    for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        range_lo[nranges] = info->dlpi_addr + ph->p_vaddr;
        range_hi[nranges] = range_lo[nranges] + ph->p_memsz;
        nranges++;
    }
    return 0;
}

static int inside_libevent(const void *pc) {
    uintptr_t p = (uintptr_t)pc;
    for (int i = 0; i < nranges; i++)
        if (p >= range_lo[i] && p < range_hi[i]) return 1;
    return 0;
}

/* ------------------------------------------------------------------ set-up and report */
static void die(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) { RESOLVE(write); real_write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1); }
    _exit(97);
}

static int find_call(const char *s, size_t n) {
    for (int i = 0; i < C_N; i++)
        if (strlen(call_names[i]) == n && !strncmp(call_names[i], s, n)) return i;
    return -1;
}

static int find_err(const char *s, size_t n) {
    for (int i = 0; i < N_ERRNAMES; i++)
        if (strlen(errnames[i].name) == n && !strncmp(errnames[i].name, s, n)) return i;
    return -1;
}

static void parse(const char *spec) {
    char *copy = strdup(spec), *save = NULL;
    for (char *r = strtok_r(copy, ";", &save); r; r = strtok_r(NULL, ";", &save)) {
        while (*r == ' ') r++;
        if (!*r) continue;
        char *c1 = strchr(r, ':'), *c2 = c1 ? strrchr(r, ':') : NULL;
        if (!c1 || c2 == c1) die("faultshim: rule '%s' is not CALL:ERRORS:RATE\n", r);
        if (nrules == MAX_RULES) die("faultshim: more than %d rules\n", MAX_RULES);
        struct rule *ru = &rules[nrules];
        ru->call = find_call(r, (size_t)(c1 - r));
        if (ru->call < 0) die("faultshim: unknown call in '%s'\n", r);
        for (char *e = c1 + 1; e < c2;) {
            char *end = e;
            while (end < c2 && *end != ',') end++;
            int k = find_err(e, (size_t)(end - e));
            if (k < 0 || ru->nerr == MAX_ERRS) die("faultshim: unknown error (or too many) in '%s'\n", r);
            ru->err[ru->nerr++] = k;
            e = end + 1;
        }
        char *endp;
        double rate = strtod(c2 + 1, &endp);
        if (endp == c2 + 1 || rate < 0 || rate > 1 || ru->nerr == 0) die("faultshim: bad rate in '%s'\n", r);
        ru->threshold = rate >= 1 ? UINT64_MAX : (uint64_t)(rate * 18446744073709551616.0);
        has_rule[ru->call] = 1;
        nrules++;
    }
    free(copy);
}

static void write_report(void) {
    if (!ready || stopping) return;
    stopping = 1;
    if (!report_path) return;
    FILE *f = fopen(report_path, "w");
    if (!f) return;
    fprintf(f, "# faultshim report: pid %d seed %llu\n", (int)getpid(), (unsigned long long)seed);
    fprintf(f, "# call error injected calls\n");
    for (int c = 0; c < C_N; c++) {
        if (!has_rule[c]) continue;
        for (int i = 0; i < nrules; i++) {
            if (rules[i].call != c) continue;
            for (int k = 0; k < rules[i].nerr; k++) {
                int e = rules[i].err[k];
                /* a rule listing an error twice, or two rules naming it: print it once */
                int dup = 0;
                for (int j = 0; j <= i && !dup; j++)
                    for (int m = 0; m < rules[j].nerr && !dup; m++)
                        if (rules[j].call == c && rules[j].err[m] == e && (j < i || m < k)) dup = 1;
                if (!dup) fprintf(f, "%s %s %llu %llu\n", call_names[c], errnames[e].name, injected[c][e], seen[c]);
            }
        }
    }
    fclose(f);
}

__attribute__((constructor)) static void faultshim_init(void) {
    RESOLVE(accept); RESOLVE(accept4); RESOLVE(recv); RESOLVE(read); RESOLVE(readv); RESOLVE(send);
    RESOLVE(write); RESOLVE(writev); RESOLVE(epoll_ctl);
    const char *s = getenv("TWINE_FAULT_SEED");
    if (s && *s) seed = strtoull(s, NULL, 10);
    report_path = getenv("TWINE_FAULTS_REPORT");
    const char *spec = getenv("TWINE_FAULTS");
    if (spec) parse(spec);
    dl_iterate_phdr(collect_ranges, NULL);
    ready = 1;
}

__attribute__((destructor)) static void faultshim_fini(void) { write_report(); }

/* ------------------------------------------------------------------ the wrappers */
/* Socket calls: roll; on a hit that applies to this fd, set errno and fail. */
#define SOCKET_FAIL(call, fd)                                                      \
    do {                                                                           \
        int e_ = roll(call);                                                       \
        if (e_ >= 0 && errnames[e_].code > 0 && is_tcp_socket(fd)) {               \
            count(call, e_);                                                       \
            errno = errnames[e_].code;                                             \
            return -1;                                                             \
        }                                                                          \
        short_ = e_ >= 0 && errnames[e_].code == E_SHORT && is_tcp_socket(fd);     \
        leak_ = e_ >= 0 && errnames[e_].code == E_LEAKFD ? e_ : -1;                \
        (void)short_, (void)leak_;                                                 \
    } while (0)

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    int short_, leak_;
    RESOLVE(accept);
    SOCKET_FAIL(C_ACCEPT, fd);
    (void)short_, (void)leak_;
    int got = real_accept(fd, addr, len);
    if (got >= 0 && leak_ >= 0) { /* the planted bug: the new fd is dropped, never closed */
        count(C_ACCEPT, leak_);
        errno = ECONNABORTED;
        return -1;
    }
    return got;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    int short_, leak_;
    RESOLVE(accept4);
    SOCKET_FAIL(C_ACCEPT4, fd);
    (void)short_, (void)leak_;
    int got = real_accept4(fd, addr, len, flags);
    if (got >= 0 && leak_ >= 0) { /* the planted bug: the new fd is dropped, never closed */
        count(C_ACCEPT4, leak_);
        errno = ECONNABORTED;
        return -1;
    }
    return got;
}

ssize_t recv(int fd, void *buf, size_t n, int flags) {
    int short_, leak_;
    RESOLVE(recv);
    SOCKET_FAIL(C_RECV, fd);
    (void)short_, (void)leak_;
    return real_recv(fd, buf, n, flags);
}

ssize_t read(int fd, void *buf, size_t n) {
    int short_, leak_;
    RESOLVE(read);
    SOCKET_FAIL(C_READ, fd);
    (void)short_, (void)leak_;
    return real_read(fd, buf, n);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt) {
    int short_, leak_;
    RESOLVE(readv);
    SOCKET_FAIL(C_READV, fd);
    (void)short_, (void)leak_;
    return real_readv(fd, iov, cnt);
}

/* A short write: between 1 and n-1 bytes of n (n >= 2). */
static size_t short_length(size_t n) { return 1 + (size_t)(next_random() % (uint64_t)(n - 1)); }

ssize_t send(int fd, const void *buf, size_t n, int flags) {
    int short_, leak_;
    RESOLVE(send);
    SOCKET_FAIL(C_SEND, fd);
    if (short_ && n >= 2) {
        count(C_SEND, find_err("SHORT", 5));
        n = short_length(n);
    }
    return real_send(fd, buf, n, flags);
}

ssize_t write(int fd, const void *buf, size_t n) {
    int short_, leak_;
    RESOLVE(write);
    SOCKET_FAIL(C_WRITE, fd);
    if (short_ && n >= 2) {
        count(C_WRITE, find_err("SHORT", 5));
        n = short_length(n);
    }
    return real_write(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    int short_, leak_;
    RESOLVE(writev);
    SOCKET_FAIL(C_WRITEV, fd);
    if (short_ && cnt > 0 && cnt <= 1024) {
        size_t total = 0;
        for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
        if (total >= 2) {
            size_t want = short_length(total);
            struct iovec cut[1024];
            int k = 0;
            for (; k < cnt && want > 0; k++) {
                cut[k] = iov[k];
                if (cut[k].iov_len > want) cut[k].iov_len = want;
                want -= cut[k].iov_len;
            }
            count(C_WRITEV, find_err("SHORT", 5));
            return real_writev(fd, cut, k);
        }
    }
    return real_writev(fd, iov, cnt);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    RESOLVE(epoll_ctl);
    if (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) {
        int e = roll(C_EPOLL_CTL);
        if (e >= 0 && errnames[e].code > 0 && is_tcp_socket(fd) && !is_listening(fd)) {
            count(C_EPOLL_CTL, e);
            errno = errnames[e].code;
            return -1;
        }
    }
    return real_epoll_ctl(epfd, op, fd, ev);
}

void *malloc(size_t n) {
    if (ready && has_rule[C_MALLOC] && inside_libevent(__builtin_return_address(0))) {
        int e = roll(C_MALLOC);
        if (e >= 0) {
            count(C_MALLOC, e);
            errno = ENOMEM;
            return NULL;
        }
    }
    return __libc_malloc(n);
}

void *calloc(size_t k, size_t n) {
    if (ready && has_rule[C_CALLOC] && inside_libevent(__builtin_return_address(0))) {
        int e = roll(C_CALLOC);
        if (e >= 0) {
            count(C_CALLOC, e);
            errno = ENOMEM;
            return NULL;
        }
    }
    return __libc_calloc(k, n);
}

/* OpenSSL: push an error on the queue (as a failed record would), so SSL_get_error says so. */
static int ssl_fail(int call, int e) {
    if (!ossl_ERR_new) {
        ossl_ERR_new = (void (*)(void))dlsym(RTLD_DEFAULT, "ERR_new");
        ossl_ERR_set_debug = (void (*)(const char *, int, const char *))dlsym(RTLD_DEFAULT, "ERR_set_debug");
        ossl_ERR_set_error = (void (*)(int, int, const char *, ...))dlsym(RTLD_DEFAULT, "ERR_set_error");
    }
    if (!ossl_ERR_new || !ossl_ERR_set_debug || !ossl_ERR_set_error) return 0;
    count(call, e);
    ossl_ERR_new();
    ossl_ERR_set_debug("faultshim.c", __LINE__, call_names[call]);
    if (errnames[e].code == E_SSL) {
        ossl_ERR_set_error(20 /* ERR_LIB_SSL */, 281 /* SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC */, NULL);
    } else {
        ossl_ERR_set_error(2 /* ERR_LIB_SYS */, ECONNRESET, NULL);
        errno = ECONNRESET;
    }
    return 1;
}

int SSL_read(void *ssl, void *buf, int n) {
    RESOLVE(SSL_read);
    int e = roll(C_SSL_READ);
    if (e >= 0 && errnames[e].code < 0 && ssl_fail(C_SSL_READ, e)) return -1;
    return real_SSL_read(ssl, buf, n);
}

int SSL_write(void *ssl, const void *buf, int n) {
    RESOLVE(SSL_write);
    int e = roll(C_SSL_WRITE);
    if (e >= 0 && errnames[e].code < 0 && ssl_fail(C_SSL_WRITE, e)) return -1;
    return real_SSL_write(ssl, buf, n);
}

/* Written last so an `exit` from anywhere (atexit runs before destructors) still reports. */
__attribute__((constructor(200))) static void faultshim_atexit(void) { atexit(write_report); }
