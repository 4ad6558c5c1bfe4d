/*
 * memhot: keep some of a guest's memory hot and report how long touching
 * it takes (bench/zap_cost.py runs it in the inner guest of the nested KVM
 * host). When KVM deletes a memslot, x86 before Linux 6.12 zaps the page
 * tables of the whole VM: every page here faults back in, and the passes
 * over it get slower.
 *
 * Usage: memhot MIB. Writes one byte per 4 KiB page of MIB MiB of
 * anonymous memory, over and over; once a second prints
 * "HOT: passes=N total_us=T max_us=M wall_us=W" for the passes of that
 * second: their time, the slowest, and the wall-clock time since the
 * previous report (printing included).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static long long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    size_t len, i;
    long long start, t0, pass, total = 0, max = 0;
    unsigned long passes = 0;
    volatile char *mem;

    if (argc != 2 || atol(argv[1]) <= 0) {
        fprintf(stderr, "usage: memhot MIB\n");
        return 2;
    }
    len = (size_t)atol(argv[1]) << 20;
    mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        perror("memhot: mmap");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    start = now_us();
    for (;;) {
        t0 = now_us();
        for (i = 0; i < len; i += 4096) {
            mem[i]++;
        }
        pass = now_us() - t0;
        passes++;
        total += pass;
        max = pass > max ? pass : max;
        if (now_us() - start >= 1000000) {
            t0 = now_us();
            printf("HOT: passes=%lu total_us=%lld max_us=%lld wall_us=%lld\n",
                   passes, total, max, t0 - start);
            passes = 0;
            total = max = 0;
            start = t0;
        }
    }
}
