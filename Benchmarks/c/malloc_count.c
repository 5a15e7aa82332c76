/* malloc_count.so -- an LD_PRELOAD heap-allocation counter for the allocation rows.
 *
 * Counts every malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and valloc
 * the process makes (relaxed atomics, any thread), forwarding each to glibc's own
 * (__libc_* entry points, so no dlsym bootstrap is needed). On SIGUSR2 it writes the count
 * so far, in decimal, to the file named by $MALLOC_COUNT_FILE (async-signal-safe: open,
 * write, close). allocs.py reads it before and after a steady-state run of echoes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);

static atomic_ulong count;
static char path[4096];

static inline void note(void) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); }

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { note(); return __libc_calloc(n, size); }
void *realloc(void *old, size_t size) { note(); return __libc_realloc(old, size); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *valloc(size_t size) { note(); return __libc_valloc(size); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    note();
    void *p = __libc_memalign(alignment, size);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

static void dump(int sig) {
    (void)sig;
    char text[32];
    unsigned long n = atomic_load_explicit(&count, memory_order_relaxed);
    int len = 0;
    char digits[32];
    do { digits[len++] = (char)('0' + n % 10); n /= 10; } while (n);
    for (int i = 0; i < len; i++) text[i] = digits[len - 1 - i];
    text[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    ssize_t ignored = write(fd, text, (size_t)len);
    (void)ignored;
    close(fd);
}

__attribute__((constructor)) static void install(void) {
    const char *file = getenv("MALLOC_COUNT_FILE");
    if (!file || strlen(file) >= sizeof(path)) return;
    strcpy(path, file);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = dump;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, NULL);
}
