/*
 * exit-lazyfree: does a process's exit drain the per-CPU lazyfree batch?
 * (issue 8; the model's exit_mmap())
 *
 *   gcc -O2 -Wall -Wextra -o exit-lazyfree exit-lazyfree.c
 *   ./exit-lazyfree
 *
 * Parent and child pinned to CPU 1.  The child maps 4 pages, writes them,
 * MADV_FREEs them (they wait in the lazyfree batch) and exits; the parent,
 * on the same CPU, reaps it and reads pglazyfree, then MADV_COLDs an
 * untouched page of its own (madvise_cold() starts with lru_add_drain()) and
 * reads it again.
 *
 * 6.18: "after exit: pglazyfree 0", "after MADV_COLD: pglazyfree 4".
 * exit_mmap() (mm/mmap.c) calls no lru_add_drain() in 6.18 (Rik van Riel's
 * "mm: remove unnecessary calls to lru_add_drain" removed it), and exit runs on
 * the exiting task's CPU anyway, so the runner's CPU does not matter.  The
 * batch holds a reference on each folio, so the next drain still moves them
 * and counts them in pglazyfree although nothing maps them any more.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static long vmstat(const char *name)
{
	char key[64];
	long v, found = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	while (f && fscanf(f, "%63s %ld", key, &v) == 2)
		if (strcmp(key, name) == 0)
			found = v;
	if (f)
		fclose(f);
	return found;
}

int main(void)
{
	cpu_set_t set;
	long base, n;
	char *q;
	pid_t c;

	CPU_ZERO(&set);
	CPU_SET(1, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return 1;
	q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q == MAP_FAILED)
		return 1;
	base = vmstat("pglazyfree");
	c = fork();
	if (c == 0) {
		char *p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(1);
		madvise(p, 4 * 4096, MADV_NOHUGEPAGE);
		memset(p, 1, 4 * 4096);
		madvise(p, 4 * 4096, MADV_FREE);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	n = vmstat("pglazyfree") - base;
	printf("after exit: pglazyfree %ld\n", n);
	madvise(q, 4096, MADV_COLD);
	n = vmstat("pglazyfree") - base;
	printf("after MADV_COLD: pglazyfree %ld\n", n);
	return 0;
}
