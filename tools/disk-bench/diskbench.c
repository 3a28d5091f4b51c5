/*
 * The guest side of tools/bench-disk: I/O on a raw block device with
 * O_DIRECT (no page cache), timed with the guest's own monotonic clock.
 *
 *   diskbench DEVICE OFFSET_MIB SIZE_MIB RANDOM_READS
 *
 * In the SIZE_MIB region starting OFFSET_MIB into DEVICE: sequential
 * writes of 1 MiB blocks (then fdatasync), sequential reads of 1 MiB
 * blocks, then RANDOM_READS reads of 4 KiB at random 4 KiB-aligned places.
 * Prints one `DISKBENCH <test> <figure> <unit>` line per test; the last
 * line is `DISKBENCH-DONE`, or `DISKBENCH-ERROR ...` on a failed call.
 * Built statically by tools/bench-disk (aarch64-linux-gnu-gcc -static).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    printf("DISKBENCH-ERROR %s\n", what);
    fflush(stdout);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 5)
        fail("usage: diskbench DEVICE OFFSET_MIB SIZE_MIB RANDOM_READS");
    long offset = atol(argv[2]) * MIB, size = atol(argv[3]) * MIB, reads = atol(argv[4]);
    int fd = open(argv[1], O_RDWR | O_DIRECT);
    if (fd < 0)
        fail("open");
    char *buf;
    if (posix_memalign((void **)&buf, 4096, MIB))
        fail("memory");
    memset(buf, 0x5a, MIB);

    double t = now();
    for (long at = 0; at < size; at += MIB)
        if (pwrite(fd, buf, MIB, offset + at) != MIB)
            fail("write");
    if (fdatasync(fd))
        fail("fdatasync");
    double elapsed = now() - t;
    printf("DISKBENCH seq-write %.2f MiB/s\n", size / MIB / elapsed);

    t = now();
    for (long at = 0; at < size; at += MIB)
        if (pread(fd, buf, MIB, offset + at) != MIB)
            fail("read");
    elapsed = now() - t;
    printf("DISKBENCH seq-read %.2f MiB/s\n", size / MIB / elapsed);

    uint64_t x = 0x9e3779b97f4a7c15ULL;
    long blocks = size / 4096;
    t = now();
    for (long i = 0; i < reads; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (pread(fd, buf, 4096, offset + (long)(x % blocks) * 4096) != 4096)
            fail("random read");
    }
    elapsed = now() - t;
    printf("DISKBENCH rand-read-4k %.1f IOPS\n", reads / elapsed);
    printf("DISKBENCH-DONE\n");
    return 0;
}
