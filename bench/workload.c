/*
 * workload: the classic anonymous-reclaim workload, on the live kernel.
 *
 *   workload CPU PAGES free|keep
 *
 * Pins itself to CPU, maps PAGES 4K pages private anonymous (2M-aligned, as the
 * scenario contract's placement), stores one non-zero word to every page (a page
 * that stays all zero would be counted as swpout_zero, not pswpout), then
 * MADV_FREE the whole range if asked, then MADV_PAGEOUT the whole range, then
 * loads one word of every page (`read A all`: zero pages after lazyfree, swap-ins
 * after swap-out), checking each holds what was stored or zero (exit 3 if not).
 *
 * Prints one line per phase, "phase NAME SECONDS", on stdout.  bench/run.py
 * times the whole process (spawn to exit) and checks /proc/vmstat deltas.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGE_SIZE 4096UL
#define SLOT_ALIGN (2UL << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "workload: %s: %s\n", what, strerror(errno));
	exit(1);
}

int main(int argc, char **argv)
{
	cpu_set_t set;
	unsigned long pages, len, i;
	char *raw, *p;
	int cpu, do_free;
	double t0, t1;

	if (argc != 4 || (strcmp(argv[3], "free") && strcmp(argv[3], "keep"))) {
		fprintf(stderr, "usage: workload CPU PAGES free|keep\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	pages = strtoul(argv[2], NULL, 0);
	do_free = !strcmp(argv[3], "free");
	len = pages * PAGE_SIZE;

	/* Die with the runner: it must be able to swapoff after a signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("prctl(PR_SET_PDEATHSIG)");
	if (getppid() == 1)
		return 1;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity");

	/* A 2M-aligned slot, as the scenario contract places every mmap. */
	raw = mmap(NULL, len + SLOT_ALIGN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap");
	p = (char *)(((uintptr_t)raw + SLOT_ALIGN - 1) & ~(SLOT_ALIGN - 1));
	if (p > raw && munmap(raw, p - raw) < 0)
		die("munmap head");
	if (munmap(p + len, raw + len + SLOT_ALIGN - (p + len)) < 0)
		die("munmap tail");

	t0 = now();
	for (i = 0; i < pages; i++)
		*(volatile uint64_t *)(p + i * PAGE_SIZE) = 0x5a5a000000000000ULL | i;
	t1 = now();
	printf("phase write %.6f\n", t1 - t0);

	if (do_free) {
		t0 = now();
		if (madvise(p, len, MADV_FREE) < 0)
			die("madvise(MADV_FREE)");
		t1 = now();
		printf("phase free %.6f\n", t1 - t0);
	}

	t0 = now();
	if (madvise(p, len, MADV_PAGEOUT) < 0)
		die("madvise(MADV_PAGEOUT)");
	t1 = now();
	printf("phase pageout %.6f\n", t1 - t0);

	t0 = now();
	for (i = 0; i < pages; i++) {
		uint64_t v = *(volatile uint64_t *)(p + i * PAGE_SIZE);

		if (v != 0 && v != (0x5a5a000000000000ULL | i)) {
			fprintf(stderr, "workload: page %lu holds %#llx\n", i,
				(unsigned long long)v);
			return 3;
		}
	}
	t1 = now();
	printf("phase read %.6f\n", t1 - t0);
	return 0;
}
