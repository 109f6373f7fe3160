/*
 * thp-lazyfree-split: is a clean lazyfree PMD-mapped THP discarded whole by
 * reclaim, or split first?  (issue 8; scenarios thp-lazyfree-discard.scn,
 * thp-lazyfree-reclaim.scn)
 *
 *   gcc -O2 -Wall -Wextra -o thp-lazyfree-split thp-lazyfree-split.c
 *   ./thp-lazyfree-split          # needs THP "madvise" or "always"
 *
 * Pinned to CPU 1.  A 2M-aligned 2M mapping, MADV_HUGEPAGE, written whole (one
 * PMD-mapped THP), MADV_FREE (PMD cleaned, the folio loses PG_swapbacked at
 * once: large folios skip the per-CPU batch), then MADV_PAGEOUT.  Prints the
 * vmstat deltas.
 *
 * Upstream 6.18: shrink_folio_list() calls try_to_unmap() with
 * TTU_SPLIT_HUGE_PMD, and try_to_unmap_one() (mm/rmap.c) meets the PMD mapping
 * (pvmw.pte == NULL) of an anonymous !swapbacked folio first, before any
 * split: unmap_huge_pmd_locked() -> __discard_anon_folio_pmd_locked()
 * (mm/huge_memory.c) discards it at PMD level.  Expected: thp_split_pmd 0,
 * pglazyfreed 512.
 *
 * 6.18.44-fc-*: thp_split_pmd 1, thp_split_page 0, pglazyfreed 512 (three
 * runs of three): the PMD is split before the lazyfree decision, which then
 * discards the 512 PTEs in one batch.  Run under the tlb:tlb_flush tracepoint
 * with a stacktrace trigger (tracing_cpumask 2), the split's flush shows its
 * caller: pmdp_invalidate <- __split_huge_pmd_locked <- try_to_unmap_one <-
 * rmap_walk_anon <- try_to_unmap <- shrink_folio_list <- reclaim_pages <-
 * madvise_cold_or_pageout_pte_range: this build's try_to_unmap_one() takes
 * the TTU_SPLIT_HUGE_PMD branch for a lazyfree PMD, although
 * unmap_huge_pmd_locked is compiled in (/proc/kallsyms).  The build's source
 * is not available here.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SZ (2UL << 20)

static const char *keys[] = { "thp_fault_alloc", "thp_split_pmd", "thp_split_page",
			      "pglazyfree", "pglazyfreed", "pswpout" };
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void vmstat(long *out)
{
	char key[64];
	long v;
	FILE *f = fopen("/proc/vmstat", "r");

	for (size_t i = 0; i < NKEYS; i++)
		out[i] = -1;
	while (f && fscanf(f, "%63s %ld", key, &v) == 2)
		for (size_t i = 0; i < NKEYS; i++)
			if (strcmp(key, keys[i]) == 0)
				out[i] = v;
	if (f)
		fclose(f);
}

int main(void)
{
	long a[NKEYS], b[NKEYS];
	cpu_set_t set;
	char *raw, *p;

	CPU_ZERO(&set);
	CPU_SET(1, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return 1;
	raw = mmap(NULL, 2 * SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return 1;
	p = (char *)(((unsigned long)raw + SZ - 1) & ~(SZ - 1));
	madvise(p, SZ, MADV_HUGEPAGE);
	vmstat(a);
	memset(p, 1, SZ);
	madvise(p, SZ, MADV_FREE);
	madvise(p, SZ, MADV_PAGEOUT);
	vmstat(b);
	for (size_t i = 0; i < NKEYS; i++)
		printf("%s %ld%s", keys[i], b[i] - a[i], i + 1 < NKEYS ? ", " : "\n");
	return 0;
}
