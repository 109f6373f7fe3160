/*
 * fork-lazyfree: fork() drains no per-CPU folio batch; a COW fault on a folio
 * that is not on the LRU yet drains them all.  (issue 8; scenarios
 * fork-lazyfree-batch.scn and fork-cow-drain.scn)
 *
 *   gcc -O2 -Wall -Wextra -o fork-lazyfree fork-lazyfree.c
 *   ./fork-lazyfree quiet   # MADV_FREE, fork: LazyFree 0 kB, pglazyfree 0
 *   ./fork-lazyfree cow     # as quiet, then the parent writes a page it first
 *                           # wrote after the MADV_FREE: LazyFree 16, pglazyfree 4
 *   ./fork-lazyfree libc    # as quiet but glibc's fork(): varies between runs
 *
 * Pinned to CPU 1 (the per-CPU batches are per CPU).  Four pages of p written,
 * MADV_FREE (madvise_free_single_vma() drains first, then queues the four
 * folios in the lazyfree batch), then the fork system call; the parent prints
 * LazyFree of p (kB) from its smaps and pglazyfree since the start.  stdio and
 * the heap are warmed before the MADV_FREE, so reading smaps after fork only
 * COW-faults folios that are on the LRU.
 *
 * quiet: LazyFree 0, pglazyfree 0 after fork: dup_mmap() (kernel/fork.c, 6.18)
 * calls no lru_add_drain().
 *
 * cow: page q is written after the MADV_FREE, so its folio waits in the
 * lru_add batch, off the LRU, when fork() shares it.  The parent's write to q
 * after fork is a COW fault; wp_can_reuse_anon_folio() (mm/memory.c, 6.18)
 * finds the folio off the LRU with 3 references (2 PTEs, the batch) and calls
 * lru_add_drain(), which empties every batch of the CPU: the lazyfree one too.
 *
 * libc: glibc's fork() wrapper writes its own locks on both sides of the system
 * call (atfork handlers, the stdio list lock); when a first write to one of
 * those pages falls between the MADV_FREE and the fork, the second is exactly
 * the cow case, and the drain happens inside fork() as the caller sees it.
 * A harness that forks through glibc cannot tell "fork drains" from this.
 *
 * Figures on 6.18.44-fc-v1045 on a quiet machine: quiet 0 / 0; cow 0 / 0 after
 * fork, 16 / 4 after the write.  Any other process on CPU 1 that drains its
 * batches makes them vary (docs/kernel-notes.md, "Drains that come from
 * outside the scenario"); run it under flock /run/foliosim/lock, and several
 * times.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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

static long lazyfree(void *p)
{
	char line[256];
	unsigned long s, e;
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = s == (unsigned long)p;
		else if (in && strncmp(line, "LazyFree:", 9) == 0)
			kb = atol(line + 9);
	}
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "quiet";
	int cow = strcmp(mode, "cow") == 0, libc = strcmp(mode, "libc") == 0;
	long base, lf, n;
	cpu_set_t set;
	char *p, *q;
	pid_t c;

	CPU_ZERO(&set);
	CPU_SET(1, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return 1;
	p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || q == MAP_FAILED)
		return 1;
	madvise(p, 4 * 4096, MADV_NOHUGEPAGE);
	base = vmstat("pglazyfree");
	lazyfree(p);		/* stdio and heap warmed */
	memset(p, 1, 4 * 4096);
	madvise(p, 4 * 4096, MADV_FREE);
	if (cow)
		*(volatile char *)q = 1;	/* a fresh folio, in lru_add */
	c = libc ? fork() : (pid_t)syscall(SYS_fork);
	if (c == 0) {
		pause();
		_exit(0);
	}
	lf = lazyfree(p);
	n = vmstat("pglazyfree") - base;
	printf("%s: after fork: LazyFree %ld kB, pglazyfree %ld\n", mode, lf, n);
	if (cow) {
		*(volatile char *)q = 2;	/* COW fault on a folio off the LRU */
		lf = lazyfree(p);
		n = vmstat("pglazyfree") - base;
		printf("%s: after the write: LazyFree %ld kB, pglazyfree %ld\n", mode, lf, n);
	}
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	return 0;
}
