/*@HEADER@*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define FS_PAGE 4096UL
#define FS_UNUSED __attribute__((unused))
#define FS_FN static __attribute__((unused))
/* Pages faulted one at a time after a fork until the lru_add batch (31 folios) drains. */
#define FS_BALLAST_PER_FORK 64

struct fs_map {			/* one scenario mapping: its slot is fixed at export time */
	const char *name;	/* JSON-quoted */
	uint64_t addr;
	uint64_t pages;
	int droppable;
	int prot;		/* PROT_* of its mmap */
};

/*@TABLES@*/

/* ------------------------------------------------------------------------ */
/* Both sides: whole reads and writes on the pipes between the processes.  */

FS_FN int fs_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

FS_FN int fs_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

/* strlcpy: a bounded copy that always ends the string. */
FS_FN void fs_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = 0;
}

/* What the orchestrator asks of a scenario process; what the process answers. */
enum { FS_GO_LINE, FS_GO_SETTLE };
struct fs_turn_msg { int32_t line; int32_t op; int64_t arg; };
struct fs_reply_msg {
	int32_t line; int32_t err; int64_t val; int64_t n;
	int64_t harness_min, harness_maj;	/* the process's own faults so far (fs_harness_*) */
};

/* Channels: orchestrator -> process i (fs_ctl[i]), process i -> orchestrator (fs_res[i]).
 * Index FS_NPROC is the poke helper.  All are made before the first process starts. */
static int fs_ctl[FS_NPROC + 1][2], fs_res[FS_NPROC + 1][2];
/* One pipe per gup reference; the orchestrator holds the read ends and drains them. */
static int fs_gup[FS_NREF + 1][2] FS_UNUSED;
static int fs_gup_err[FS_NREF + 1] FS_UNUSED;

/* ------------------------------------------------------------------------ */
/* Scenario-process side.  Once started, a process touches only the         */
/* scenario's pages: no malloc, no stdio, every own page populated up front. */

static int fs_self;
static char fs_tok[FS_PAGE] __attribute__((aligned(4096)));
static char fs_pagebuf[FS_PAGE] __attribute__((aligned(4096)));
static uint16_t fs_codes[FS_MAX_READ + 1];
static uint64_t fs_codes_n;
static uint64_t fs_own_start[512], fs_own_end[512];
static int fs_n_own;
static uint64_t fs_ro_start[512], fs_ro_end[512];	/* own readable, not private-writable */
static int fs_n_ro;
static char *fs_scratch, *fs_ballast;
static int fs_kpageflags = -1;	/* opened at the start: the pfn space is not per-mm */
static uint64_t fs_ballast_next;
static char fs_maps_text[1 << 17];
static sigjmp_buf fs_fault_jmp;
static volatile sig_atomic_t fs_fault_armed;
static volatile sig_atomic_t fs_fault_sig;
/* A load or store that ended in a caught signal is the error FS_SIG_BASE + signal;
 * fs_stop_page is the mapping's page where a write, read, poke or splice stopped. */
#define FS_SIG_BASE 4096
static int64_t fs_stop_page;
static char fs_altstack[1 << 16];

/* The content of page INDEX of MAP written as LABEL: "fsim:LABEL:MAP:INDEX\n" over the page. */
FS_FN void fs_token(char *dst, const char *label, const char *map, uint64_t index)
{
	char line[192], digits[24];
	size_t n = 0, l;
	int d = 0;

	do {
		digits[d++] = (char)('0' + index % 10);
		index /= 10;
	} while (index);
	memcpy(line, "fsim:", 5);
	n = 5;
	l = strlen(label);
	memcpy(line + n, label, l);
	n += l;
	line[n++] = ':';
	l = strlen(map);
	memcpy(line + n, map, l);
	n += l;
	line[n++] = ':';
	while (d)
		line[n++] = digits[--d];
	line[n++] = '\n';
	for (size_t off = 0; off < FS_PAGE; off += n)
		memcpy(dst + off, line, FS_PAGE - off < n ? FS_PAGE - off : n);
}

static void fs_on_fault(int sig)
{
	if (fs_fault_armed) {
		fs_fault_sig = sig;
		siglongjmp(fs_fault_jmp, 1);
	}
	_exit(128 + sig);
}

/* Wait until the orchestrator says it is this process's turn for `line`. */
FS_FN struct fs_turn_msg fs_turn_op(int line)
{
	struct fs_turn_msg t;

	if (fs_read_full(fs_ctl[fs_self][0], &t, sizeof(t)))
		_exit(0);	/* the orchestrator is gone: so are we */
	if (t.line != line)
		_exit(70);	/* out of step: a generator bug */
	return t;
}

FS_FN int64_t fs_turn(int line)
{
	return fs_turn_op(line).arg;
}

/*
 * The faults a scenario process takes for the harness, not for the scenario: its start
 * (populating its own memory), COW breaking and ballast after fork.  /proc/PID/stat
 * counts them with the scenario's (mm_account_fault() charges current); every reply
 * carries them and the orchestrator takes them off.  getrusage(RUSAGE_SELF) reads the
 * same task counters and faults nothing.
 */
static int64_t fs_harness_min, fs_harness_maj;

static void fs_harness_add(const struct rusage *since)
{
	struct rusage now;

	getrusage(RUSAGE_SELF, &now);
	fs_harness_min += now.ru_minflt - since->ru_minflt;
	fs_harness_maj += now.ru_majflt - since->ru_majflt;
}

/* Every fault so far was the harness's (at the start, or in a child before its first line). */
static void fs_harness_all(void)
{
	struct rusage now;

	getrusage(RUSAGE_SELF, &now);
	fs_harness_min = now.ru_minflt;
	fs_harness_maj = now.ru_majflt;
}

FS_FN void fs_reply(int line, int err, int64_t val)
{
	struct fs_reply_msg r = { line, err, val, 0, fs_harness_min, fs_harness_maj };
	if (fs_write_full(fs_res[fs_self][1], &r, sizeof(r)))
		_exit(0);
}

/* The reply of a read: the outcome, then one code per page read (0 zero, 1 garbage, 2+k label k). */
FS_FN void fs_reply_read(int line, int err)
{
	struct fs_reply_msg r = { line, err, err ? fs_stop_page : 0, (int64_t)fs_codes_n, fs_harness_min, fs_harness_maj };
	if (fs_write_full(fs_res[fs_self][1], &r, sizeof(r))
	    || fs_write_full(fs_res[fs_self][1], fs_codes, fs_codes_n * sizeof(fs_codes[0])))
		_exit(0);
	fs_codes_n = 0;
}

FS_FN int fs_err(long ret)
{
	return ret < 0 ? errno : 0;
}

FS_FN int fs_mmap(int m)
{
	int flags = (fs_map[m].droppable ? MAP_DROPPABLE : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
	void *p = mmap((void *)fs_map[m].addr, fs_map[m].pages * FS_PAGE, fs_map[m].prot, flags, -1, 0);

	if (p == MAP_FAILED)
		return errno;
	if (p != (void *)fs_map[m].addr) {	/* a kernel without MAP_FIXED_NOREPLACE */
		munmap(p, fs_map[m].pages * FS_PAGE);
		return EEXIST;
	}
	return 0;
}

FS_FN int fs_munmap(int m)
{
	return fs_err(munmap((void *)fs_map[m].addr, fs_map[m].pages * FS_PAGE));
}

FS_FN void *fs_at(int m, uint64_t page)
{
	return (void *)(fs_map[m].addr + page * FS_PAGE);
}

FS_FN int fs_madvise(int m, uint64_t first, uint64_t last, int advice)
{
	return fs_err(madvise(fs_at(m, first), (last - first + 1) * FS_PAGE, advice));
}

FS_FN int fs_mlock(int m, uint64_t first, uint64_t last)
{
	return fs_err(mlock(fs_at(m, first), (last - first + 1) * FS_PAGE));
}

FS_FN int fs_munlock(int m, uint64_t first, uint64_t last)
{
	return fs_err(munlock(fs_at(m, first), (last - first + 1) * FS_PAGE));
}

/* -- mlock2(MLOCK_ONFAULT), mlockall, munlockall -- */

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

FS_FN int fs_mlock_onfault(int m, uint64_t first, uint64_t last)
{
	return fs_err(syscall(SYS_mlock2, fs_at(m, first), (last - first + 1) * FS_PAGE, MLOCK_ONFAULT));
}

static void fs_ballast_present(uint8_t *present);
static void fs_mlockall_restore(const uint8_t *was_present);

/* mlockall(MCL_CURRENT) locks and populates every VMA, this process's own too
 * (apply_mlockall_flags(), then mm_populate(0, TASK_SIZE): mm/mlock.c); put them back. */
FS_FN int fs_mlockall(int flags)
{
	static uint8_t was_present[FS_BALLAST_PER_FORK * (FS_NFORK + 1)];
	int r;

	if (flags & MCL_CURRENT)
		fs_ballast_present(was_present);
	r = fs_err(mlockall(flags));
	if (!r && (flags & MCL_CURRENT))
		fs_mlockall_restore(was_present);
	return r;
}

FS_FN int fs_munlockall(void)
{
	return fs_err(munlockall());
}

/* One page copied with a SIGSEGV/SIGBUS caught (an access the protection or a hole
 * refuses): FS_SIG_BASE + the signal. */
__attribute__((noinline)) static int fs_copy_page(void *dst, const void *src)
{
	fs_fault_armed = 1;
	if (sigsetjmp(fs_fault_jmp, 1)) {
		fs_fault_armed = 0;
		return FS_SIG_BASE + fs_fault_sig;
	}
	/* The barriers keep the access inside the armed window. */
	__asm__ volatile("" ::: "memory");
	memcpy(dst, src, FS_PAGE);
	__asm__ volatile("" ::: "memory");
	fs_fault_armed = 0;
	return 0;
}

/* Store each page's token: one memcpy from a buffer touched long ago, so a write fault. */
FS_FN int fs_write(int m, uint64_t first, uint64_t last, int label)
{
	for (uint64_t i = first; i <= last; i++) {
		int e;

		fs_token(fs_tok, fs_label[label], fs_map_bare[m], i);
		if ((e = fs_copy_page(fs_at(m, i), fs_tok))) {
			fs_stop_page = (int64_t)i;
			return e;
		}
	}
	return 0;
}

/* Load each page (a read fault where none is mapped) and say what it holds. */
FS_FN int fs_read(int m, uint64_t first, uint64_t last)
{
	for (uint64_t i = first; i <= last; i++) {
		uint16_t code = 1;
		int zero = 1, e;

		if ((e = fs_copy_page(fs_pagebuf, fs_at(m, i)))) {
			fs_stop_page = (int64_t)i;
			return e;
		}
		for (size_t j = 0; j < FS_PAGE / 8 && zero; j++)
			zero = ((uint64_t *)fs_pagebuf)[j] == 0;
		if (zero) {
			code = 0;
		} else if (memcmp(fs_pagebuf, "fsim:", 5) == 0) {
			/* Only this mapping's and this index's token of a known label counts. */
			for (int k = 0; k < FS_NLABEL; k++) {
				size_t l = strlen(fs_label[k]);
				if (memcmp(fs_pagebuf + 5, fs_label[k], l) || fs_pagebuf[5 + l] != ':')
					continue;
				fs_token(fs_tok, fs_label[k], fs_map_bare[m], i);
				if (memcmp(fs_tok, fs_pagebuf, FS_PAGE) == 0)
					code = (uint16_t)(2 + k);
				break;
			}
		}
		fs_codes[fs_codes_n++] = code;
	}
	return 0;
}

/* Take a reference on the pages without writing them: vmsplice them into the ref's pipe. */
FS_FN int fs_vmsplice(int ref, int m, uint64_t first, uint64_t last)
{
	uint64_t off = 0, len = (last - first + 1) * FS_PAGE;

	while (off < len) {
		struct iovec iov = { (char *)fs_at(m, first) + off, len - off };
		ssize_t n = vmsplice(fs_gup[ref][1], &iov, 1, SPLICE_F_NONBLOCK);
		fs_stop_page = (int64_t)(first + off / FS_PAGE);
		if (n < 0)
			return errno;
		if (n == 0)
			return EAGAIN;
		off += n;
	}
	return 0;
}

/* The helper writes another process's pages through GUP: process_vm_writev, page by page. */
FS_FN int fs_poke(pid_t pid, int m, uint64_t first, uint64_t last, int label)
{
	for (uint64_t i = first; i <= last; i++) {
		struct iovec local = { fs_tok, FS_PAGE }, remote = { fs_at(m, i), FS_PAGE };
		ssize_t n;

		fs_token(fs_tok, fs_label[label], fs_map_bare[m], i);
		n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
		fs_stop_page = (int64_t)i;
		if (n < 0)
			return errno;
		if (n != (ssize_t)FS_PAGE)
			return EFAULT;
	}
	return 0;
}

static uint64_t fs_hex(const char **p)
{
	uint64_t v = 0;

	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return v;
	}
}

/* Fault every own page now (and never huge), so that the scenario's pages are the only
 * ones this process faults from here on; remember the writable private ones for fork. */
static void fs_populate_own_memory(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	ssize_t len = 0, n;

	while (fd >= 0 && (n = read(fd, fs_maps_text + len, sizeof(fs_maps_text) - 1 - len)) > 0)
		len += n;
	if (fd >= 0)
		close(fd);
	fs_maps_text[len] = 0;
	for (const char *p = fs_maps_text; *p;) {
		const char *eol = strchr(p, '\n');
		uint64_t start = fs_hex(&p), end;
		int readable, writable, private_;

		p++;
		end = fs_hex(&p);
		p++;
		readable = p[0] == 'r';
		writable = p[1] == 'w';
		private_ = p[3] == 'p';
		/* The vDSO's pages: loaded, so that mm_populate() of mlockall(MCL_CURRENT)
		 * (which populates every VMA, the vDSO's too) faults none of them. */
		if (eol && memmem(p, eol - p, "[vdso]", 6) && fs_n_ro < 512) {
			fs_ro_start[fs_n_ro] = start;
			fs_ro_end[fs_n_ro++] = end;
			for (uint64_t a = start; a < end; a += FS_PAGE)
				(void)*(volatile char *)a;
		}
		if (!(eol && (memmem(p, eol - p, "[vsyscall]", 10) || memmem(p, eol - p, "[vvar", 5)
			      || memmem(p, eol - p, "[vdso]", 6)))) {
			madvise((void *)start, end - start, MADV_NOHUGEPAGE);
			if (writable && private_) {
				madvise((void *)start, end - start, MADV_POPULATE_WRITE);
				if (fs_n_own < 512) {
					fs_own_start[fs_n_own] = start;
					fs_own_end[fs_n_own++] = end;
				}
			} else if (readable) {
				madvise((void *)start, end - start, MADV_POPULATE_READ);
				if (fs_n_ro < 512) {
					fs_ro_start[fs_n_ro] = start;
					fs_ro_end[fs_n_ro++] = end;
				}
			}
		}
		if (!eol)
			break;
		p = eol + 1;
	}
}

__attribute__((noinline)) static void fs_grow_stack(void)
{
	volatile char big[256 * 1024];

	for (size_t i = 0; i < sizeof(big); i += FS_PAGE)
		big[i] = 1;
	big[sizeof(big) - 1] = 1;
}

/* First steps of p0 and of the helper (both forked by the orchestrator). */
FS_FN void fs_proc_start(int self, int cpu)
{
	cpu_set_t set;
	stack_t ss = { fs_altstack, 0, sizeof(fs_altstack) };
	struct sigaction sa;

	fs_self = self;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		_exit(71);
	/* The orchestrator runs with THP disabled and fork keeps that: scenario processes
	 * undo it, the helper keeps it (its own memory must never show in the mTHP stats). */
	prctl(PR_SET_THP_DISABLE, self == FS_NPROC, 0, 0, 0);
	/* Only our own channel ends (and those of processes we may fork) stay open, so EOF
	 * on fs_ctl tells every process that the orchestrator is gone. */
	for (int i = 0; i <= FS_NPROC; i++) {
		close(fs_ctl[i][1]);
		close(fs_res[i][0]);
	}
#if FS_NREF
	for (int r = 0; r < FS_NREF; r++)
		close(fs_gup[r][0]);
#endif
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fs_on_fault;
	sa.sa_flags = SA_ONSTACK | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	fs_grow_stack();
	fs_populate_own_memory();
	/* Made after the populate, so never faulted: the scratch page for the start drain,
	 * fresh ballast for the lru_add drain after each fork. */
	fs_scratch = mmap(NULL, FS_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fs_ballast = mmap(NULL, FS_BALLAST_PER_FORK * (FS_NFORK + 1) * FS_PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fs_scratch == MAP_FAILED || fs_ballast == MAP_FAILED)
		_exit(72);
	fs_kpageflags = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	madvise(fs_scratch, FS_PAGE, MADV_NOHUGEPAGE);
	madvise(fs_ballast, FS_BALLAST_PER_FORK * (FS_NFORK + 1) * FS_PAGE, MADV_NOHUGEPAGE);
	fs_reply(0, 0, getpid());
}

/* The contract's start: lru_add_drain() at the start of MADV_COLD empties every per-CPU
 * folio batch of this CPU, and a page that was never touched gives it nothing to do. */
FS_FN int fs_drain_batches(void)
{
	int r = fs_err(madvise(fs_scratch, FS_PAGE, MADV_COLD));

	fs_harness_all();
	return r;
}

/* After fork both sides share every own page copy-on-write.  Write each once now (stores:
 * COW faults on folios that are on the LRU, which add the copies to lru_add and drain
 * nothing), so that no own page is faulted later at a moment the scenario did not ask. */
static void fs_break_cow(void)
{
	for (int i = 0; i < fs_n_own; i++)
		for (uint64_t a = fs_own_start[i]; a < fs_own_end[i]; a += FS_PAGE) {
			volatile char *c = (volatile char *)a;
			*c = *c;
		}
}

/* A forked child has no page tables for its file mappings (dup_mmap() copies none for a
 * VMA without anon_vma: vma_needs_copy(), mm/memory.c), so the first run of each code
 * page would fault at some scenario line.  Load a byte of each page now (loads: the
 * faultin_page_range() of MADV_POPULATE_READ ends with lru_add_drain()). */
static void fs_touch_read_only(void)
{
	for (int i = 0; i < fs_n_ro; i++)
		for (uint64_t a = fs_ro_start[i]; a < fs_ro_end[i]; a += FS_PAGE)
			(void)*(volatile char *)a;
}

/* Whether the page at `addr` of this process is on an LRU list (PG_lru). */
static int fs_own_page_is_lru(int pagemap, const char *addr)
{
	uint64_t e = 0, flags = 0;

	if (pread(pagemap, &e, 8, (uint64_t)(uintptr_t)addr / FS_PAGE * 8) != 8 || !(e >> 63 & 1)
	    || pread(fs_kpageflags, &flags, 8, (e & ((1ULL << 55) - 1)) * 8) != 8)
		return 0;
	return flags >> FS_KPF_LRU & 1;
}

/* Which ballast pages are present now (pagemap bit 63). */
static void fs_ballast_present(uint8_t *present)
{
	const uint64_t nballast = FS_BALLAST_PER_FORK * (FS_NFORK + 1);
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e;

	for (uint64_t i = 0; i < nballast; i++)
		present[i] = pread(pagemap, &e, 8, ((uint64_t)(uintptr_t)fs_ballast / FS_PAGE + i) * 8) == 8
			     && e >> 63 & 1;
	close(pagemap);
}

/* After mlockall(MCL_CURRENT): the ballast pages its mm_populate() faulted (those not
 * used yet, and the slices a forked child used, which are absent here) and the scratch
 * page are this process's own faults; every VMA outside the scenario's mappings is
 * munlocked (a locked ballast would feed the mlock batch, not lru_add), and those pages
 * are dropped again. */
static void fs_mlockall_restore(const uint8_t *was_present)
{
	const uint64_t nballast = FS_BALLAST_PER_FORK * (FS_NFORK + 1);
	static uint8_t now[FS_BALLAST_PER_FORK * (FS_NFORK + 1)];
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	ssize_t len = 0, n;
	uint64_t e;

	fs_ballast_present(now);
	for (uint64_t i = 0; i < nballast; i++)
		fs_harness_min += now[i] && !was_present[i];
	if (pread(pagemap, &e, 8, (uint64_t)(uintptr_t)fs_scratch / FS_PAGE * 8) == 8 && e >> 63 & 1)
		fs_harness_min++;
	close(pagemap);
	while (fd >= 0 && (n = read(fd, fs_maps_text + len, sizeof(fs_maps_text) - 1 - len)) > 0)
		len += n;
	if (fd >= 0)
		close(fd);
	fs_maps_text[len] = 0;
	for (const char *p = fs_maps_text; *p;) {
		const char *eol = strchr(p, '\n');
		uint64_t start = fs_hex(&p), end;
		int ours = 0;

		p++;
		end = fs_hex(&p);
		for (int m = 0; m < FS_NMAP; m++)
			if (start < fs_map[m].addr + fs_map[m].pages * FS_PAGE && fs_map[m].addr < end)
				ours = 1;
		if (!ours)
			munlock((void *)start, end - start);
		if (!eol)
			break;
		p = eol + 1;
	}
	/* Once munlocked (MADV_DONTNEED refuses VM_LOCKED VMAs). */
	for (uint64_t i = 0; i < nballast; i++)
		if (now[i] && !was_present[i])
			madvise(fs_ballast + i * FS_PAGE, FS_PAGE, MADV_DONTNEED);
	madvise(fs_scratch, FS_PAGE, MADV_DONTNEED);
}

/* `fork CHILD` in this process: the child runs `child_main`, which never returns.
 * The child first breaks COW on its own memory, then faults fresh ballast pages one at
 * a time until the last one is on the LRU: the lru_add batch filled and moved, alone,
 * and no other batch was drained (the contract).  It does this itself, without a round
 * trip to the orchestrator per page, to keep the window for other processes on this
 * CPU short.  The parent breaks COW afterwards: its writes then reuse its folios (the
 * child has its copies), so lru_add stays empty. */
FS_FN void fs_fork(int line, int child, void (*child_main)(void))
{
	struct rusage since;
	pid_t pid;

	getrusage(RUSAGE_SELF, &since);
	pid = fork();
	if (pid < 0) {
		fs_harness_add(&since);
		fs_reply(line, errno, 0);
		return;
	}
	if (pid == 0) {
		int pagemap, i;

		fs_self = child;
		fs_turn_op(line);		/* FS_GO_SETTLE */
		fs_break_cow();
		fs_touch_read_only();
		/* A pagemap fd is bound to the mm it was opened on: this is a new one. */
		pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		for (i = 0; i < FS_BALLAST_PER_FORK; i++) {
			char *b = fs_ballast + fs_ballast_next++ * FS_PAGE;
			*(volatile char *)b = 1;
			if (fs_own_page_is_lru(pagemap, b))
				break;
		}
		close(pagemap);
		/* The child's counters start at zero in copy_process(): all its faults so far. */
		fs_harness_all();
		fs_reply(line, i < FS_BALLAST_PER_FORK ? 0 : ENOSPC, i + 1);
		child_main();
		_exit(0);
	}
	fs_reply(line, 0, pid);
	fs_turn_op(line);			/* FS_GO_SETTLE */
	fs_break_cow();
	fs_harness_add(&since);
	fs_reply(line, 0, 0);
	/* The child's ballast pages are its own from now on: skip them here too. */
	fs_ballast_next += FS_BALLAST_PER_FORK;
}

FS_FN void fs_exit(int line)
{
	fs_reply(line, 0, 0);
	_exit(0);
}

/* ------------------------------------------------------------------------ */
/* Orchestrator side: runs on the other CPUs, changes and restores the       */
/* settings, reads /proc and /sys, writes the observation.                   */

static pid_t fs_pid[FS_NPROC + 1];
static int fs_alive[FS_NPROC + 1];
static int64_t fs_harness[FS_NPROC + 1][2];	/* each process's own faults, as it last said */
static unsigned char fs_live[FS_NPROC + 1][FS_NMAP + 1];	/* mapping m is in process p */
static int fs_cpu;				/* the scenario's CPU */
static int fs_verbose_trace;
static int fs_failed_expects;
static const char *fs_json_path;

FS_FN void fs_trace(int line, const char *func, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

FS_FN void fs_trace(int line, const char *func, const char *fmt, ...)
{
	va_list ap;

	if (!fs_verbose_trace)
		return;
	fprintf(stderr, "trace\t%d\t%s\t", line, func);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* -- settings, saved before any change and restored on every exit path -- */

#define FS_THP "/sys/kernel/mm/transparent_hugepage"
#define FS_RUN_DIR "/run/foliosim"
/* The same file, in the same format, as the kernel backend's: whichever harness runs
 * next restores what a SIGKILLed run left behind. */
#define FS_SAVED FS_RUN_DIR "/saved-settings.json"
#define FS_ZRAM "/sys/block/zram0"
#define FS_ZRAM_DEV "/dev/zram0"
#define FS_DAMON "/sys/kernel/mm/damon/admin/kdamonds"

struct fs_setting { char path[160]; char value[32]; };
static struct fs_setting fs_saved[64];
static int fs_n_saved;
static int fs_swap_ours;
static int fs_settings_saved;
static volatile sig_atomic_t fs_restoring;
static int fs_lock_fd = -1;

static int fs_read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

/* Async-signal-safe: also used by the signal handler. */
static int fs_write_text(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int e;

	if (fd < 0)
		return errno;
	n = write(fd, value, strlen(value));
	e = n < 0 ? errno : 0;
	close(fd);
	return e;
}

/* The selected word of a sysfs choice file: "always [madvise] never" -> "madvise". */
static void fs_selected(const char *text, char *out, size_t size)
{
	const char *b = strchr(text, '['), *e = b ? strchr(b, ']') : NULL;
	size_t n;

	if (!b || !e) {
		snprintf(out, size, "%s", text);
		return;
	}
	n = (size_t)(e - b - 1) < size - 1 ? (size_t)(e - b - 1) : size - 1;
	memcpy(out, b + 1, n);
	out[n] = 0;
}

static int fs_swaps_active(char *first, size_t size)
{
	char buf[4096], *nl;

	if (fs_read_text("/proc/swaps", buf, sizeof(buf)))
		return 0;
	nl = strchr(buf, '\n');
	if (!nl || !nl[1])
		return 0;
	if (first) {
		size_t n = strcspn(nl + 1, " \t\n");
		snprintf(first, size, "%.*s", (int)n, nl + 1);
	}
	return 1;
}

static void fs_zram_off(void)
{
	char dev[128];

	if (fs_swaps_active(dev, sizeof(dev)) && strcmp(dev, FS_ZRAM_DEV) == 0)
		swapoff(FS_ZRAM_DEV);
	fs_write_text(FS_ZRAM "/reset", "1");
}

/* The saved-settings file as the kernel backend writes it (foliosim.kernel.settings). */
static void fs_store_saved(void)
{
	char text[8192], tmp[] = FS_SAVED ".tmp";
	size_t n = 0;
	int fd, first = 1;

	n += snprintf(text + n, sizeof(text) - n, "{\"kdamonds\": {");
	for (int i = 0; i < fs_n_saved; i++)
		if (strncmp(fs_saved[i].path, FS_DAMON "/", sizeof(FS_DAMON)) == 0) {
			const char *k = fs_saved[i].path + sizeof(FS_DAMON);
			n += snprintf(text + n, sizeof(text) - n, "%s\"%.*s\": \"on\"", first ? "" : ", ",
				      (int)strcspn(k, "/"), k);
			first = 0;
		}
	n += snprintf(text + n, sizeof(text) - n, "}, \"mthp\": {");
	first = 1;
	for (int i = 0; i < fs_n_saved; i++)
		if (strncmp(fs_saved[i].path, FS_THP "/hugepages-", sizeof(FS_THP "/hugepages-") - 1) == 0) {
			const char *k = fs_saved[i].path + sizeof(FS_THP "/hugepages-") - 1;
			n += snprintf(text + n, sizeof(text) - n, "%s\"%.*s\": \"%s\"", first ? "" : ", ",
				      (int)strcspn(k, "k"), k, fs_saved[i].value);
			first = 0;
		}
	n += snprintf(text + n, sizeof(text) - n, "}");
	for (int i = 0; i < fs_n_saved; i++) {
		if (strcmp(fs_saved[i].path, FS_THP "/enabled") == 0)
			n += snprintf(text + n, sizeof(text) - n, ", \"thp\": \"%s\"", fs_saved[i].value);
		if (strcmp(fs_saved[i].path, FS_THP "/khugepaged/scan_sleep_millisecs") == 0)
			n += snprintf(text + n, sizeof(text) - n, ", \"khugepaged_sleep\": \"%s\"",
				      fs_saved[i].value);
	}
	n += snprintf(text + n, sizeof(text) - n, ", \"zram_swap_ours\": %s}", fs_swap_ours ? "true" : "false");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fs_write_full(fd, text, n) || fsync(fd) || close(fd) || rename(tmp, FS_SAVED)) {
		fprintf(stderr, "%s: cannot write %s: %s\n", fs_scenario_bare, FS_SAVED, strerror(errno));
		exit(3);
	}
}

static void fs_save(const char *path, const char *value)
{
	fs_copy(fs_saved[fs_n_saved].path, sizeof(fs_saved[0].path), path);
	fs_copy(fs_saved[fs_n_saved].value, sizeof(fs_saved[0].value), value);
	fs_n_saved++;
}

/* Undo every change, swap first.  Async-signal-safe (the handlers call it too). */
static void fs_restore(void)
{
	if (!fs_settings_saved)
		return;
	if (fs_swap_ours)
		fs_zram_off();
	for (int i = fs_n_saved - 1; i >= 0; i--)
		fs_write_text(fs_saved[i].path, fs_saved[i].value);
	unlink(FS_SAVED);
	fs_settings_saved = 0;
}

/* A run that was SIGKILLed left its saved-settings file: put those values back first. */
static void fs_repair(void)
{
	char text[8192], key[64] = "", sect[64] = "", word[160];
	const char *p;

	if (fs_read_text(FS_SAVED, text, sizeof(text)))
		return;
	fprintf(stderr, "# restoring the settings an interrupted run left in %s\n", FS_SAVED);
	fs_zram_off();
	/* A flat walk of {"k": "v", "sect": {"k": "v"}, "b": true}: enough for that file. */
	for (p = text; *p; p++) {
		if (*p == '}') {
			sect[0] = 0;
		} else if (*p == '"') {
			size_t n = strcspn(p + 1, "\"");
			snprintf(word, sizeof(word), "%.*s", (int)n, p + 1);
			p += n + 1;
			while (p[1] == ' ')
				p++;
			if (p[1] == ':') {
				fs_copy(key, sizeof(key), word);
				if (p[2] == ' ' && p[3] == '{')
					fs_copy(sect, sizeof(sect), word);
				continue;
			}
			char path[256] = "";
			if (strcmp(sect, "mthp") == 0)
				snprintf(path, sizeof(path), FS_THP "/hugepages-%skB/enabled", key);
			else if (strcmp(sect, "kdamonds") == 0 && strcmp(word, "on") == 0)
				snprintf(path, sizeof(path), FS_DAMON "/%s/state", key);
			else if (!sect[0] && strcmp(key, "thp") == 0)
				snprintf(path, sizeof(path), FS_THP "/enabled");
			else if (!sect[0] && strcmp(key, "khugepaged_sleep") == 0)
				snprintf(path, sizeof(path), FS_THP "/khugepaged/scan_sleep_millisecs");
			if (path[0])
				fs_write_text(path, word);
		}
	}
	unlink(FS_SAVED);
}

/* -- processes -- */

static pid_t fs_keeper_pid;	/* the khugepaged list keeper (fs_keeper_start()) */

FS_FN void fs_kill_all(void)
{
	for (int p = 0; p <= FS_NPROC; p++)
		if (fs_pid[p] > 0)
			kill(fs_pid[p], SIGKILL);
	if (fs_keeper_pid > 0)
		kill(fs_keeper_pid, SIGKILL);
	fs_keeper_pid = 0;
	/* A subreaper: every scenario process ends up our child; reap them all. */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	for (int p = 0; p <= FS_NPROC; p++)
		fs_pid[p] = 0;
}

static void fs_unpin_all(void);

static void fs_cleanup(void)
{
	fs_kill_all();
	fs_unpin_all();
	fs_restore();
}

FS_FN void fs_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
FS_FN void fs_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", fs_scenario_bare);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fs_cleanup();
	exit(3);
}

static void fs_on_signal(int sig)
{
	if (fs_restoring)
		return;
	fs_restoring = 1;
	for (int p = 0; p <= FS_NPROC; p++)
		if (fs_pid[p] > 0)
			kill(fs_pid[p], SIGKILL);
	if (fs_keeper_pid > 0)
		kill(fs_keeper_pid, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	fs_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

FS_FN void fs_send(int p, int line, int op, int64_t arg)
{
	struct fs_turn_msg t = { line, op, arg };

	if (fs_write_full(fs_ctl[p][1], &t, sizeof(t)))
		fs_die("line %d: scenario process %s is gone", line, p == FS_NPROC ? "helper" : fs_proc_bare[p]);
}

FS_FN struct fs_reply_msg fs_recv(int p, int line)
{
	struct fs_reply_msg r;

	if (fs_read_full(fs_res[p][0], &r, sizeof(r)))
		fs_die("line %d: scenario process %s died", line, p == FS_NPROC ? "helper" : fs_proc_bare[p]);
	if (r.line != line)
		fs_die("line %d: process %s answered for line %d (a generator bug)", line,
		       p == FS_NPROC ? "helper" : fs_proc_bare[p], r.line);
	fs_harness[p][0] = r.harness_min;
	fs_harness[p][1] = r.harness_maj;
	return r;
}

/* Start a process forked from the orchestrator (p0 or the helper) and wait until it is ready.
 * The orchestrator forks it from the scenario's CPU, not from the other CPUs: the first
 * stores on either side of fork() are COW faults whose copies wait in the lru_add batch
 * of the CPU that took them, off the LRU.  Taken on another CPU, they stay there until
 * that CPU drains (nothing here makes it), and the first COW fault on one of them at a
 * scenario `fork` finds it off the LRU: wp_can_reuse_anon_folio() (mm/memory.c, 6.18)
 * then calls lru_add_drain(), which empties every batch of the scenario's CPU.  Taken on
 * the scenario's CPU, the populate's lru_add_drain() (faultin_page_range(), mm/gup.c)
 * and the contract's start drain put them on the LRU. */
FS_FN void fs_spawn(int p, void (*main_)(void))
{
	pid_t pid = fork();

	if (pid < 0)
		fs_die("fork: %s", strerror(errno));
	if (pid == 0) {
		fs_proc_start(p, fs_cpu);
		main_();
		_exit(0);
	}
	fs_pid[p] = pid;
	fs_alive[p] = 1;
	fs_recv(p, 0);
}

/* ------------------------------------------------------------------------ */
/* Observing: /proc/vmstat, mTHP stats, smaps, pagemap, kpageflags, kpagecount. */

struct fs_counter { char name[64]; int64_t value; };
static struct fs_counter fs_vm_base[512];
static int fs_n_vm_base;
#define FS_NSTAT_MAX 32
static struct fs_counter fs_mthp_base[FS_NMTHP][FS_NSTAT_MAX];
static int fs_n_mthp_base[FS_NMTHP];

static int fs_read_vmstat(struct fs_counter *out, int max)
{
	FILE *f = fopen("/proc/vmstat", "re");
	int n = 0;
	char name[64];
	long long v;

	if (!f)
		fs_die("/proc/vmstat: %s", strerror(errno));
	while (n < max && fscanf(f, "%63s %lld", name, &v) == 2) {
		fs_copy(out[n].name, sizeof(out[n].name), name);
		out[n++].value = v;
	}
	fclose(f);
	return n;
}

static int fs_counter_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fs_counter *)a)->name, ((const struct fs_counter *)b)->name);
}

/* Every file of hugepages-<size>kB/stats/ but the shmem_* ones, sorted by name. */
static int fs_read_mthp(int kb, struct fs_counter *out)
{
	char dir[160], path[400], text[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(dir, sizeof(dir), FS_THP "/hugepages-%dkB/stats", kb);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d)) && n < FS_NSTAT_MAX) {
		if (e->d_name[0] == '.' || strncmp(e->d_name, "shmem_", 6) == 0)
			continue;
		if (strlen(dir) + strlen(e->d_name) + 2 > sizeof(path) || strlen(e->d_name) >= sizeof(out[n].name))
			continue;
		strcpy(path, dir);
		strcat(path, "/");
		strcat(path, e->d_name);
		if (fs_read_text(path, text, sizeof(text)))
			continue;
		fs_copy(out[n].name, sizeof(out[n].name), e->d_name);
		out[n++].value = strtoll(text, NULL, 10);
	}
	closedir(d);
	qsort(out, n, sizeof(*out), fs_counter_cmp);
	return n;
}

static int64_t fs_base_of(const struct fs_counter *base, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(base[i].name, name) == 0)
			return base[i].value;
	return 0;
}

/* A counter's delta since the start; 0 (found = 0) if this kernel has no such counter. */
FS_FN int64_t fs_vmstat_delta(const char *name, int *found)
{
	static struct fs_counter now[512];
	int n = fs_read_vmstat(now, 512);

	for (int i = 0; i < n; i++)
		if (strcmp(now[i].name, name) == 0) {
			*found = 1;
			return now[i].value - fs_base_of(fs_vm_base, fs_n_vm_base, name);
		}
	*found = 0;
	return 0;
}

FS_FN void fs_take_baselines(void)
{
	fs_n_vm_base = fs_read_vmstat(fs_vm_base, 512);
	for (int s = 0; s < FS_NMTHP; s++)
		fs_n_mthp_base[s] = fs_read_mthp(fs_mthp_kb[s], fs_mthp_base[s]);
}

struct fs_page {
	int state;		/* 0 none, 1 present, 2 swap */
	int exclusive, soft_dirty;
	uint64_t flags;		/* raw kpageflags word */
	int64_t count;
	int order;
};

struct fs_vma {			/* one VMA inside a mapping, from /proc/PID/smaps */
	uint64_t start, end;
	char prot[8];		/* the header's permissions column, e.g. rw-p */
	char flags[192];	/* the VmFlags words, blank-separated */
};

struct fs_mapstate {
	int live;
	int64_t smaps[FS_NSMAPS];
	struct fs_page *pages;
	struct fs_vma *vmas;
	int nvma;
};

struct fs_state {
	int64_t vm[FS_NVM];
	int vm_found[FS_NVM];
	struct fs_counter mthp[FS_NMTHP][FS_NSTAT_MAX];
	int n_mthp[FS_NMTHP];
	int proc_in[FS_NPROC];
	int64_t minflt[FS_NPROC], majflt[FS_NPROC];	/* /proc/PID/stat, harness faults taken off */
	struct fs_mapstate maps[FS_NPROC][FS_NMAP + 1];
};

static const char *const fs_state_names[] = { "none", "present", "swap" };

/* Folio order from kpageflags: walk back to compound_head, count the tails after it. */
static int fs_order(int kpf, uint64_t pfn, uint64_t flags)
{
	const uint64_t head = 1ULL << FS_KPF_COMPOUND_HEAD, tail = 1ULL << FS_KPF_COMPOUND_TAIL;
	static uint64_t cached_head = UINT64_MAX;
	static int cached_order;
	uint64_t h = pfn, f = flags, n = 1;

	if (!(flags & (head | tail)))
		return 0;
	while ((f & tail) && !(f & head) && h > 0) {
		h--;
		if (pread(kpf, &f, 8, h * 8) != 8)
			f = 0;
	}
	if (h == cached_head)
		return cached_order;
	for (;;) {
		if (pread(kpf, &f, 8, (h + n) * 8) != 8 || !(f & tail) || (f & head))
			break;
		n++;
	}
	cached_head = h;
	cached_order = 0;
	while ((1ULL << (cached_order + 1)) <= n)
		cached_order++;
	return cached_order;
}

static void fs_read_smaps(pid_t pid, struct fs_mapstate *maps, const unsigned char *live)
{
	char path[64], line[512];
	FILE *f;
	uint64_t s = 0, e = 0;

	struct fs_vma *cur = NULL;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		fs_die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *sp = strchr(line, ' '), *colon;
		if (!sp)
			continue;
		*sp = 0;
		colon = sp[-1] == ':' ? sp - 1 : NULL;
		if (!colon && strchr(line, '-')) {
			const char *q = line;
			s = fs_hex(&q);
			q++;
			e = fs_hex(&q);
			cur = NULL;
			for (int m = 0; m < FS_NMAP; m++) {
				struct fs_mapstate *ms = &maps[m];
				if (!live[m] || s < fs_map[m].addr || e > fs_map[m].addr + fs_map[m].pages * FS_PAGE)
					continue;
				ms->vmas = realloc(ms->vmas, (ms->nvma + 1) * sizeof(*ms->vmas));
				if (!ms->vmas)
					fs_die("out of memory");
				cur = &ms->vmas[ms->nvma++];
				memset(cur, 0, sizeof(*cur));
				cur->start = s;
				cur->end = e;
				sscanf(sp + 1, "%7s", cur->prot);
			}
			continue;
		}
		if (!colon)
			continue;
		*colon = 0;
		if (strcmp(line, "VmFlags") == 0) {
			if (cur) {
				fs_copy(cur->flags, sizeof(cur->flags), sp + 1);
				cur->flags[strcspn(cur->flags, "\n")] = 0;
			}
			continue;
		}
		for (int k = 0; k < FS_NSMAPS; k++) {
			if (strcmp(line, fs_smaps_key[k]))
				continue;
			for (int m = 0; m < FS_NMAP; m++)
				if (live[m] && s >= fs_map[m].addr && e <= fs_map[m].addr + fs_map[m].pages * FS_PAGE)
					maps[m].smaps[k] += strtoll(sp + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
}

/* minflt and majflt of /proc/PID/stat: fields 10 and 12, counted after the comm's ')'. */
static void fs_read_faults(pid_t pid, int64_t *minflt, int64_t *majflt)
{
	char path[64], text[1024], *q;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : (int)read(fd, text, sizeof(text) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		fs_die("%s: %s", path, strerror(errno));
	text[n] = 0;
	q = strrchr(text, ')');
	if (!q || sscanf(q + 2, "%*s %*s %*s %*s %*s %*s %*s %" SCNd64 " %*s %" SCNd64, minflt, majflt) != 2)
		fs_die("%s: cannot parse", path);
}

static void fs_read_pages(pid_t pid, int m, struct fs_page *pages, int kpf, int kpc)
{
	char path[64];
	uint64_t *pm = calloc(fs_map[m].pages, 8);
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!pm || fd < 0 || pread(fd, pm, fs_map[m].pages * 8, fs_map[m].addr / FS_PAGE * 8)
	    != (ssize_t)(fs_map[m].pages * 8))
		fs_die("%s: %s", path, strerror(errno));
	close(fd);
	for (uint64_t i = 0; i < fs_map[m].pages; i++) {
		uint64_t e = pm[i], pfn = e & ((1ULL << 55) - 1);
		struct fs_page *pg = &pages[i];

		memset(pg, 0, sizeof(*pg));
		pg->state = e >> 63 & 1 ? 1 : e >> 62 & 1 ? 2 : 0;
		pg->exclusive = e >> 56 & 1;
		pg->soft_dirty = e >> 55 & 1;
		if (pg->state != 1)
			continue;
		if (kpf < 0 || pread(kpf, &pg->flags, 8, pfn * 8) != 8)
			pg->flags = 0;
		if (kpc < 0 || pread(kpc, &pg->count, 8, pfn * 8) != 8)
			pg->count = 0;
		/* The contract: order 0 for the zero page, the huge zero page included. */
		pg->order = pg->flags >> FS_KPF_ZERO_PAGE & 1 ? 0 : fs_order(kpf, pfn, pg->flags);
	}
	free(pm);
}

/* Read STATE from outside: nothing here touches a page of a scenario process. */
FS_FN void fs_read_state(struct fs_state *st, int only)
{
	static struct fs_counter now[512];
	int n = fs_read_vmstat(now, 512);
	int kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	int kpc = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);

	for (int k = 0; k < FS_NVM; k++) {
		st->vm[k] = 0;
		st->vm_found[k] = 0;
		for (int i = 0; i < n; i++)
			if (strcmp(now[i].name, fs_vm_key[k]) == 0) {
				st->vm[k] = now[i].value - fs_base_of(fs_vm_base, fs_n_vm_base, fs_vm_key[k]);
				st->vm_found[k] = 1;
			}
	}
	for (int s = 0; s < FS_NMTHP; s++) {
		st->n_mthp[s] = fs_read_mthp(fs_mthp_kb[s], st->mthp[s]);
		for (int i = 0; i < st->n_mthp[s]; i++)
			st->mthp[s][i].value -= fs_base_of(fs_mthp_base[s], fs_n_mthp_base[s], st->mthp[s][i].name);
	}
	for (int p = 0; p < FS_NPROC; p++) {
		st->proc_in[p] = fs_alive[p] && (only < 0 || only == p);
		for (int m = 0; m < FS_NMAP; m++) {
			free(st->maps[p][m].pages);
			free(st->maps[p][m].vmas);
			memset(&st->maps[p][m], 0, sizeof(st->maps[p][m]));
			st->maps[p][m].live = st->proc_in[p] && fs_live[p][m];
		}
		if (!st->proc_in[p])
			continue;
		fs_read_faults(fs_pid[p], &st->minflt[p], &st->majflt[p]);
		st->minflt[p] -= fs_harness[p][0];
		st->majflt[p] -= fs_harness[p][1];
		fs_read_smaps(fs_pid[p], st->maps[p], fs_live[p]);
		for (int m = 0; m < FS_NMAP; m++) {
			if (!st->maps[p][m].live)
				continue;
			st->maps[p][m].pages = calloc(fs_map[m].pages, sizeof(struct fs_page));
			if (!st->maps[p][m].pages)
				fs_die("out of memory");
			fs_read_pages(fs_pid[p], m, st->maps[p][m].pages, kpf, kpc);
		}
	}
	if (kpf >= 0)
		close(kpf);
	if (kpc >= 0)
		close(kpc);
}

/* The contract's flag names of a kpageflags word, sorted, joined by commas. */
FS_FN void fs_flag_names(uint64_t flags, char *out, size_t size)
{
	int zero = flags >> FS_KPF_ZERO_PAGE & 1;
	size_t n = 0;

	out[0] = 0;
	for (int i = 0; i < FS_NKPF; i++) {
		const int bit = fs_kpf_sorted[i].bit;
		if (!(flags >> bit & 1) || fs_kpf_sorted[i].never)
			continue;
		if (zero && fs_kpf_sorted[i].not_on_zero)
			continue;
		n += snprintf(out + n, size - n, "%s%s", n ? "," : "", fs_kpf_sorted[i].name);
	}
}

/* -- JSON, written like json.dumps(obs, sort_keys=True, indent=1) -- */

static char *fs_js;
static size_t fs_js_len, fs_js_cap;
static int fs_js_depth;
static int fs_js_count[64];
static int fs_js_after_key;

FS_FN void fs_js_raw(const char *s, size_t n)
{
	if (fs_js_len + n + 1 > fs_js_cap) {
		fs_js_cap = (fs_js_len + n + 1) * 2;
		fs_js = realloc(fs_js, fs_js_cap);
		if (!fs_js)
			fs_die("out of memory");
	}
	memcpy(fs_js + fs_js_len, s, n);
	fs_js_len += n;
	fs_js[fs_js_len] = 0;
}

FS_FN void fs_js_s(const char *s)
{
	fs_js_raw(s, strlen(s));
}

static void fs_js_newline(void)
{
	fs_js_s("\n");
	for (int i = 0; i < fs_js_depth; i++)
		fs_js_s(" ");
}

/* Before a value: a comma and a new line inside a container, nothing after a key. */
static void fs_js_value(void)
{
	if (fs_js_after_key) {
		fs_js_after_key = 0;
		return;
	}
	if (fs_js_depth == 0)
		return;
	if (fs_js_count[fs_js_depth]++)
		fs_js_s(",");
	fs_js_newline();
}

FS_FN void fs_js_open(const char *bracket)
{
	fs_js_value();
	fs_js_s(bracket);
	fs_js_count[++fs_js_depth] = 0;
}

FS_FN void fs_js_close(const char *bracket)
{
	int had = fs_js_count[fs_js_depth--];

	if (had)
		fs_js_newline();
	fs_js_s(bracket);
}

/* A key; `quoted` is already a JSON string (from the export) or a plain name. */
FS_FN void fs_js_key(const char *name, int quoted)
{
	fs_js_value();
	if (!quoted)
		fs_js_s("\"");
	fs_js_s(name);
	fs_js_s(quoted ? ": " : "\": ");
	fs_js_after_key = 1;
}

FS_FN void fs_js_str(const char *quoted)
{
	fs_js_value();
	fs_js_s(quoted);
}

FS_FN void fs_js_plain_str(const char *s)
{
	fs_js_value();
	fs_js_s("\"");
	fs_js_s(s);
	fs_js_s("\"");
}

FS_FN void fs_js_int(int64_t v)
{
	char b[32];

	fs_js_value();
	snprintf(b, sizeof(b), "%lld", (long long)v);
	fs_js_s(b);
}

FS_FN void fs_js_bool(int v)
{
	fs_js_value();
	fs_js_s(v ? "true" : "false");
}

FS_FN void fs_js_null(void)
{
	fs_js_value();
	fs_js_s("null");
}

/* STATE as the contract has it (keys sorted: mthp, procs, vmstat). */
FS_FN void fs_js_state(const struct fs_state *st)
{
	char flags[1024];

	fs_js_open("{");
	fs_js_key("mthp", 0);
	fs_js_open("{");
	for (int i = 0; i < FS_NMTHP; i++) {
		const int s = fs_mthp_by_name[i];
		fs_js_key(fs_mthp_name[s], 0);
		fs_js_open("{");
		for (int k = 0; k < st->n_mthp[s]; k++) {
			fs_js_key(st->mthp[s][k].name, 0);
			fs_js_int(st->mthp[s][k].value);
		}
		fs_js_close("}");
	}
	fs_js_close("}");
	fs_js_key("procs", 0);
	fs_js_open("{");
	for (int i = 0; i < FS_NPROC; i++) {
		const int p = fs_proc_by_name[i];
		if (!st->proc_in[p])
			continue;
		fs_js_key(fs_proc_json[p], 1);
		fs_js_open("{");
		fs_js_key("majflt", 0);
		fs_js_int(st->majflt[p]);
		fs_js_key("maps", 0);
		fs_js_open("{");
		for (int j = 0; j < FS_NMAP; j++) {
			const int m = fs_map_by_name[j];
			const struct fs_mapstate *ms = &st->maps[p][m];
			if (!ms->live)
				continue;
			fs_js_key(fs_map[m].name, 1);
			fs_js_open("{");
			fs_js_key("pages", 0);
			fs_js_open("[");
			for (uint64_t i2 = 0; i2 < fs_map[m].pages; i2++) {
				const struct fs_page *pg = &ms->pages[i2];
				fs_js_open("{");
				fs_js_key("exclusive", 0);
				fs_js_bool(pg->exclusive);
				if (pg->state == 1) {
					fs_js_key("flags", 0);
					fs_js_open("[");
					fs_flag_names(pg->flags, flags, sizeof(flags));
					for (char *w = strtok(flags, ","); w; w = strtok(NULL, ","))
						fs_js_plain_str(w);
					fs_js_close("]");
					fs_js_key("mapcount", 0);
					fs_js_int(pg->count);
					fs_js_key("order", 0);
					fs_js_int(pg->order);
				}
				fs_js_key("soft_dirty", 0);
				fs_js_bool(pg->soft_dirty);
				fs_js_key("state", 0);
				fs_js_plain_str(fs_state_names[pg->state]);
				fs_js_close("}");
			}
			fs_js_close("]");
			fs_js_key("smaps", 0);
			fs_js_open("{");
			for (int k = 0; k < FS_NSMAPS; k++) {
				fs_js_key(fs_smaps_key[k], 0);
				fs_js_int(ms->smaps[k]);
			}
			fs_js_close("}");
			fs_js_key("vmas", 0);
			fs_js_open("[");
			for (int v = 0; v < ms->nvma; v++) {
				const struct fs_vma *vm = &ms->vmas[v];
				fs_js_open("{");
				fs_js_key("first", 0);
				fs_js_int((int64_t)((vm->start - fs_map[m].addr) / FS_PAGE));
				fs_js_key("flags", 0);
				fs_js_open("[");
				char words[sizeof(vm->flags)];
				memcpy(words, vm->flags, sizeof(words));
				for (char *w = strtok(words, " "); w; w = strtok(NULL, " "))
					fs_js_plain_str(w);
				fs_js_close("]");
				fs_js_key("last", 0);
				fs_js_int((int64_t)((vm->end - fs_map[m].addr) / FS_PAGE) - 1);
				fs_js_key("prot", 0);
				fs_js_plain_str(vm->prot);
				fs_js_close("}");
			}
			fs_js_close("]");
			fs_js_close("}");
		}
		fs_js_close("}");
		fs_js_key("minflt", 0);
		fs_js_int(st->minflt[p]);
		fs_js_close("}");
	}
	fs_js_close("}");
	fs_js_key("vmstat", 0);
	fs_js_open("{");
	for (int k = 0; k < FS_NVM; k++)
		if (st->vm_found[k]) {
			fs_js_key(fs_vm_key[k], 0);
			fs_js_int(st->vm[k]);
		}
	fs_js_close("}");
	fs_js_close("}");
}

/* -- events -- */

static struct fs_state fs_st;		/* the last STATE read */
static const char *fs_line_err[FS_NLINES + 1];
static unsigned char fs_line_checked[FS_NLINES + 1];

FS_FN const char *fs_errname(int e)
{
	static char other[16];

	switch (e) {
#define FS_E(x) case x: return #x
	FS_E(EPERM); FS_E(ENOENT); FS_E(ESRCH); FS_E(EINTR); FS_E(EIO); FS_E(ENXIO); FS_E(E2BIG);
	FS_E(EBADF); FS_E(ECHILD); FS_E(EAGAIN); FS_E(ENOMEM); FS_E(EACCES); FS_E(EFAULT);
	FS_E(EBUSY); FS_E(EEXIST); FS_E(ENODEV); FS_E(EINVAL); FS_E(ENFILE); FS_E(EMFILE);
	FS_E(EFBIG); FS_E(ENOSPC); FS_E(ESPIPE); FS_E(EROFS); FS_E(EPIPE); FS_E(ERANGE);
	FS_E(ENOSYS); FS_E(EOPNOTSUPP); FS_E(EOVERFLOW); FS_E(EHWPOISON);
#undef FS_E
	case FS_SIG_BASE + SIGSEGV: return "SIGSEGV";
	case FS_SIG_BASE + SIGBUS: return "SIGBUS";
	}
	snprintf(other, sizeof(other), "E%d", e);
	return other;
}

/* {"error", "line", "map"?, "op", "page"?, "proc"}: page < 0 is none */
FS_FN void fs_error_event_at(int line, int p, const char *op, int m, const char *err, int64_t page)
{
	fs_line_err[line] = err;
	fs_js_open("{");
	fs_js_key("error", 0);
	fs_js_plain_str(err);
	fs_js_key("line", 0);
	fs_js_int(line);
	if (m >= 0) {
		fs_js_key("map", 0);
		fs_js_str(fs_map[m].name);
	}
	fs_js_key("op", 0);
	fs_js_plain_str(op);
	if (page >= 0) {
		fs_js_key("page", 0);
		fs_js_int(page);
	}
	fs_js_key("proc", 0);
	fs_js_str(fs_proc_json[p]);
	fs_js_close("}");
	fs_trace(line, op, "= -1 %s", err);
}

FS_FN void fs_error_event(int line, int p, const char *op, int m, const char *err)
{
	fs_error_event_at(line, p, op, m, err, -1);
}

/* A user access or a GUP: its error event says at which page it stopped. */
static int fs_op_is_access(const char *op)
{
	return !strcmp(op, "write") || !strcmp(op, "read") || !strcmp(op, "poke") || !strcmp(op, "gup");
}

/* A line that process p performs: its turn, then its outcome (an event if it failed). */
FS_FN void fs_run(int line, int p, const char *op, int m)
{
	struct fs_reply_msg r;

	fs_send(p, line, FS_GO_LINE, 0);
	r = fs_recv(p, line);
	if (r.err) {
		fs_error_event_at(line, p, op, m, fs_errname(r.err), fs_op_is_access(op) ? r.val : -1);
		return;
	}
	fs_trace(line, op, "%s = 0", fs_proc_bare[p]);
	if (strcmp(op, "mmap") == 0)
		fs_live[p][m] = 1;
	if (strcmp(op, "munmap") == 0)
		fs_live[p][m] = 0;
}

FS_FN void fs_run_poke(int line, int p, int m)
{
	struct fs_reply_msg r;

	fs_send(FS_NPROC, line, FS_GO_LINE, fs_pid[p]);
	r = fs_recv(FS_NPROC, line);
	if (r.err)
		fs_error_event_at(line, p, "poke", m, fs_errname(r.err), r.val);
	else
		fs_trace(line, "process_vm_writev", "helper -> %s = 0", fs_proc_bare[p]);
}

/* The per-page values of a read as the contract's comma-joined words; NULL if it failed. */
#define FS_WORDS_SIZE ((FS_MAX_READ + 1) * 80)
/* Orchestrator buffers, allocated after the scenario processes exist (they never see them). */
static char *fs_data, *fs_got, *fs_copybuf;

FS_FN const char *fs_run_read(int line, int p, int m, int as_event)
{
	struct fs_reply_msg r;
	static uint16_t codes[FS_MAX_READ + 1];
	size_t n = 0;

	fs_send(p, line, FS_GO_LINE, 0);
	r = fs_recv(p, line);
	if (r.n < 0 || r.n > FS_MAX_READ || fs_read_full(fs_res[p][0], codes, r.n * sizeof(codes[0])))
		fs_die("line %d: bad read reply", line);
	if (r.err) {
		if (as_event)
			fs_error_event_at(line, p, "read", m, fs_errname(r.err), r.val);
		return NULL;
	}
	fs_data[0] = 0;
	for (int64_t i = 0; i < r.n; i++) {
		const char *w = codes[i] == 0 ? "zero" : codes[i] == 1 ? "garbage" : fs_label[codes[i] - 2];
		n += snprintf(fs_data + n, FS_WORDS_SIZE - n, "%s%s", i ? "," : "", w);
	}
	if (as_event) {
		fs_js_open("{");
		fs_js_key("data", 0);
		fs_js_open("[");
		memcpy(fs_copybuf, fs_data, n + 1);
		for (char *w = n ? strtok(fs_copybuf, ",") : NULL; w; w = strtok(NULL, ","))
			fs_js_plain_str(w);
		fs_js_close("]");
		fs_js_key("line", 0);
		fs_js_int(line);
		fs_js_key("map", 0);
		fs_js_str(fs_map[m].name);
		fs_js_key("op", 0);
		fs_js_plain_str("read");
		fs_js_key("proc", 0);
		fs_js_str(fs_proc_json[p]);
		fs_js_close("}");
		fs_trace(line, "read", "%s loaded %lld pages", fs_proc_bare[p], (long long)r.n);
	}
	return fs_data;
}

/* `fork CHILD` by process p: the child exists, both sides have broken COW on their own
 * memory, and the lru_add batch is empty (the contract); no other batch was drained. */
FS_FN void fs_run_fork(int line, int p, int child)
{
	struct fs_reply_msg r;
	int i;

	fs_send(p, line, FS_GO_LINE, 0);
	r = fs_recv(p, line);
	if (r.err) {
		fs_error_event(line, p, "fork", -1, fs_errname(r.err));
		return;
	}
	fs_pid[child] = (pid_t)r.val;
	fs_alive[child] = 1;
	memcpy(fs_live[child], fs_live[p], sizeof(fs_live[p]));
	fs_send(child, line, FS_GO_SETTLE, 0);
	r = fs_recv(child, line);
	if (r.err)
		fs_die("line %d: lru_add did not drain after %d ballast faults (no root for "
		       "/proc/kpageflags?)", line, (int)r.val);
	i = (int)r.val;
	fs_send(p, line, FS_GO_SETTLE, 0);
	fs_recv(p, line);
	fs_trace(line, "fork", "%s fork() = %d (%s); lru_add drained after %d ballast faults",
		 fs_proc_bare[p], (int)fs_pid[child], fs_proc_bare[child], i);
}

/* `exit`: the process's mm is gone once its pidfd turns readable (after exit_mm()). */
FS_FN void fs_run_exit(int line, int p)
{
	int fd = (int)syscall(SYS_pidfd_open, fs_pid[p], 0);
	struct pollfd pfd;

	fs_send(p, line, FS_GO_LINE, 0);
	fs_recv(p, line);
	if (fd >= 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
			;
		close(fd);
	}
	if (p == 0)
		waitpid(fs_pid[p], NULL, 0);
	fs_alive[p] = 0;
	fs_pid[p] = 0;
	fs_trace(line, "exit", "%s exit(0)", fs_proc_bare[p]);
}

FS_FN void fs_release(int line, int ref)
{
	char buf[1 << 16];
	long drained = 0;
	ssize_t n;

	fcntl(fs_gup[ref][0], F_SETFL, fcntl(fs_gup[ref][0], F_GETFL) | O_NONBLOCK);
	while ((n = read(fs_gup[ref][0], buf, sizeof(buf))) > 0)
		drained += n;
	close(fs_gup[ref][0]);
	close(fs_gup[ref][1]);
	fs_gup[ref][0] = fs_gup[ref][1] = -1;
	fs_trace(line, "release", "drained %ld pages, closed", drained / (long)FS_PAGE);
}

FS_FN void fs_setting(int line, int p, const char *op, const char *path, const char *value)
{
	int e = fs_write_text(path, value);

	fs_trace(line, "sysfs", "echo %s > %s", value, path);
	if (e) {
		fs_line_err[line] = fs_errname(e);
		fs_js_open("{");
		fs_js_key("error", 0);
		fs_js_plain_str(fs_errname(e));
		fs_js_key("line", 0);
		fs_js_int(line);
		fs_js_key("op", 0);
		fs_js_plain_str(op);
		fs_js_key("proc", 0);
		fs_js_str(fs_proc_json[p]);
		fs_js_close("}");
	}
}

FS_FN void fs_thp(int line, int p, const char *mode)
{
	fs_setting(line, p, "thp", FS_THP "/enabled", mode);
}

FS_FN void fs_mthp(int line, int p, int kb, const char *mode)
{
	char path[128];

	snprintf(path, sizeof(path), FS_THP "/hugepages-%dkB/enabled", kb);
	fs_setting(line, p, "mthp", path, mode);
}

/* `swap SIZE`: zram0 of that size, a swap header written as mkswap does, swapon(2).
 * `swap off` (pages 0): swapoff(2) and reset zram0. */
FS_FN void fs_swap(int line, uint64_t pages)
{
	char size[32];
	static char header[FS_PAGE];
	int fd;

	if (fs_swap_ours) {
		fs_zram_off();
		fs_trace(line, "swapoff", FS_ZRAM_DEV);
	}
	if (!pages)
		return;
	if (!fs_swap_ours) {
		fs_swap_ours = 1;
		fs_store_saved();
	}
	snprintf(size, sizeof(size), "%llu", (unsigned long long)(pages * FS_PAGE));
	if (fs_write_text(FS_ZRAM "/disksize", size))
		fs_die("line %d: %s/disksize: %s", line, FS_ZRAM, strerror(errno));
	/* union swap_header (include/linux/swap.h): version 1, last_page, no bad pages. */
	memset(header, 0, sizeof(header));
	((uint32_t *)(header + 1024))[0] = 1;
	((uint32_t *)(header + 1024))[1] = (uint32_t)(pages - 1);
	memcpy(header + FS_PAGE - 10, "SWAPSPACE2", 10);
	fd = open(FS_ZRAM_DEV, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, header, FS_PAGE, 0) != (ssize_t)FS_PAGE || fsync(fd) || close(fd))
		fs_die("line %d: writing the swap header on %s: %s", line, FS_ZRAM_DEV, strerror(errno));
	if (swapon(FS_ZRAM_DEV, 0))
		fs_die("line %d: swapon %s: %s", line, FS_ZRAM_DEV, strerror(errno));
	fs_trace(line, "swapon", "%s, %llu pages", FS_ZRAM_DEV, (unsigned long long)pages);
}

FS_FN void fs_observe(int line, int p, const char *label_json)
{
	fs_read_state(&fs_st, -1);
	fs_js_open("{");
	fs_js_key("label", 0);
	fs_js_str(label_json);
	fs_js_key("line", 0);
	fs_js_int(line);
	fs_js_key("op", 0);
	fs_js_plain_str("observe");
	fs_js_key("proc", 0);
	fs_js_str(fs_proc_json[p]);
	fs_js_key("state", 0);
	fs_js_state(&fs_st);
	fs_js_close("}");
}

/* -- expect lines: the same rule as foliosim.expect.expect_event -- */

static int fs_got_ok;

/* got: a list of words (data or page states), a number, null, or a word (a result). */
enum { FS_GOT_LIST, FS_GOT_INT, FS_GOT_NULL, FS_GOT_RAW_LIST, FS_GOT_STR };

static void fs_expect_event(int line, int p, const char *text_json, int kind)
{
	if (!fs_got_ok)
		fs_failed_expects++;
	fs_js_open("{");
	fs_js_key("got", 0);
	if (kind == FS_GOT_NULL) {
		fs_js_null();
	} else if (kind == FS_GOT_INT) {
		fs_js_value();
		fs_js_s(fs_got);
	} else if (kind == FS_GOT_RAW_LIST) {
		/* JSON tokens (numbers, null, quoted strings without commas), comma-joined */
		fs_js_open("[");
		fs_copy(fs_copybuf, FS_WORDS_SIZE, fs_got);
		for (char *w = fs_copybuf[0] ? strtok(fs_copybuf, ",") : NULL; w; w = strtok(NULL, ",")) {
			fs_js_value();
			fs_js_s(w);
		}
		fs_js_close("]");
	} else if (kind == FS_GOT_STR) {
		fs_js_plain_str(fs_got);
	} else {
		fs_js_open("[");
		fs_copy(fs_copybuf, FS_WORDS_SIZE, fs_got);
		for (char *w = fs_copybuf[0] ? strtok(fs_copybuf, ",") : NULL; w; w = strtok(NULL, ","))
			fs_js_plain_str(w);
		fs_js_close("]");
	}
	fs_js_key("line", 0);
	fs_js_int(line);
	fs_js_key("ok", 0);
	fs_js_bool(fs_got_ok);
	fs_js_key("op", 0);
	fs_js_plain_str("expect");
	fs_js_key("proc", 0);
	fs_js_str(fs_proc_json[p]);
	fs_js_key("text", 0);
	fs_js_str(text_json);
	fs_js_close("}");
	if (kind == FS_GOT_NULL)
		fs_copy(fs_got, FS_WORDS_SIZE, "null");
}

static int fs_all_words(const char *list, const char *want)
{
	size_t l = strlen(want);

	for (const char *w = list; *w;) {
		if (strncmp(w, want, l) || (w[l] != ',' && w[l]))
			return 0;
		w += l;
		if (*w == ',')
			w++;
	}
	return 1;
}

FS_FN void fs_expect_data(int line, int p, int m, const char *want, const char *text_json)
{
	const char *data = fs_run_read(line, p, m, 0);

	if (!data) {
		fs_got_ok = 0;
		fs_expect_event(line, p, text_json, FS_GOT_NULL);
		return;
	}
	fs_copy(fs_got, FS_WORDS_SIZE, data);
	fs_got_ok = fs_all_words(fs_got, want);
	fs_expect_event(line, p, text_json, FS_GOT_LIST);
}

/* runs: first0, last0, first1, last1, ..., -1 */
FS_FN void fs_expect_state(int line, int p, int m, const char *want, const int64_t *runs, const char *text_json)
{
	size_t n = 0;

	fs_read_state(&fs_st, p);
	if (!fs_st.maps[p][m].live) {
		fs_got_ok = 0;
		fs_expect_event(line, p, text_json, FS_GOT_NULL);
		return;
	}
	fs_got[0] = 0;
	for (int r = 0; runs[r] >= 0; r += 2)
		for (int64_t i = runs[r]; i <= runs[r + 1]; i++)
			n += snprintf(fs_got + n, FS_WORDS_SIZE - n, "%s%s", n ? "," : "",
				      fs_state_names[fs_st.maps[p][m].pages[i].state]);
	fs_got_ok = fs_all_words(fs_got, want);
	fs_expect_event(line, p, text_json, FS_GOT_LIST);
}

/* -- page expectations: order, mapcount, exclusive, flags -- */

enum { FS_EXPECT_ORDER, FS_EXPECT_MAPCOUNT, FS_EXPECT_EXCLUSIVE };

/* expect NAME RANGE order N | mapcount N | exclusive yes|no: one value per page of the
 * runs (null where the page is not present, for order and mapcount). */
FS_FN void fs_expect_pages(int line, int p, int m, int kind, int64_t want, const int64_t *runs,
			   const char *text_json)
{
	size_t n = 0;

	fs_read_state(&fs_st, p);
	if (!fs_st.maps[p][m].live) {
		fs_got_ok = 0;
		fs_expect_event(line, p, text_json, FS_GOT_NULL);
		return;
	}
	fs_got[0] = 0;
	fs_got_ok = 1;
	for (int r = 0; runs[r] >= 0; r += 2)
		for (int64_t i = runs[r]; i <= runs[r + 1]; i++) {
			const struct fs_page *pg = &fs_st.maps[p][m].pages[i];
			const char *sep = n ? "," : "";
			if (kind == FS_EXPECT_EXCLUSIVE) {
				n += snprintf(fs_got + n, FS_WORDS_SIZE - n, "%s%s", sep, pg->exclusive ? "yes" : "no");
				fs_got_ok &= pg->exclusive == want;
			} else if (pg->state != 1) {
				n += snprintf(fs_got + n, FS_WORDS_SIZE - n, "%snull", sep);
				fs_got_ok = 0;
			} else {
				int64_t v = kind == FS_EXPECT_ORDER ? pg->order : pg->count;
				n += snprintf(fs_got + n, FS_WORDS_SIZE - n, "%s%lld", sep, (long long)v);
				fs_got_ok &= v == want;
			}
		}
	fs_expect_event(line, p, text_json, kind == FS_EXPECT_EXCLUSIVE ? FS_GOT_LIST : FS_GOT_RAW_LIST);
}

/* expect NAME RANGE flags +FLAG -FLAG...: `flags` the words as written, NULL-ended; per
 * page the same words as the page has them ("+dirty -mlocked"), null if not present. */
FS_FN void fs_expect_flags(int line, int p, int m, const char *const *flags, const char *want,
			   const int64_t *runs, const char *text_json)
{
	char names[1024], have[1100];
	size_t n = 0;

	fs_read_state(&fs_st, p);
	if (!fs_st.maps[p][m].live) {
		fs_got_ok = 0;
		fs_expect_event(line, p, text_json, FS_GOT_NULL);
		return;
	}
	fs_got[0] = 0;
	fs_got_ok = 1;
	for (int r = 0; runs[r] >= 0; r += 2)
		for (int64_t i = runs[r]; i <= runs[r + 1]; i++) {
			const struct fs_page *pg = &fs_st.maps[p][m].pages[i];
			char seen[512];
			size_t k = 0;

			if (pg->state != 1) {
				n += snprintf(fs_got + n, FS_WORDS_SIZE - n, "%snull", n ? "," : "");
				fs_got_ok = 0;
				continue;
			}
			fs_flag_names(pg->flags, names, sizeof(names));
			snprintf(have, sizeof(have), ",%s,", names);
			seen[0] = 0;
			for (int f = 0; flags[f]; f++) {
				char key[80];
				snprintf(key, sizeof(key), ",%s,", flags[f] + 1);
				k += snprintf(seen + k, sizeof(seen) - k, "%s%c%s", k ? " " : "",
					      strstr(have, key) ? '+' : '-', flags[f] + 1);
			}
			fs_got_ok &= strcmp(seen, want) == 0;
			n += snprintf(fs_got + n, FS_WORDS_SIZE - n, "%s\"%s\"", n ? "," : "", seen);
		}
	fs_expect_event(line, p, text_json, FS_GOT_RAW_LIST);
}

FS_FN void fs_expect_smaps(int line, int p, int m, int key, int64_t kb, const char *text_json)
{
	fs_read_state(&fs_st, p);
	if (!fs_st.maps[p][m].live) {
		fs_got_ok = 0;
		fs_expect_event(line, p, text_json, FS_GOT_NULL);
		return;
	}
	snprintf(fs_got, FS_WORDS_SIZE, "%lld", (long long)fs_st.maps[p][m].smaps[key]);
	fs_got_ok = fs_st.maps[p][m].smaps[key] == kb;
	fs_expect_event(line, p, text_json, FS_GOT_INT);
}

FS_FN void fs_expect_vmstat(int line, int p, const char *counter, int64_t value, const char *text_json)
{
	int found;
	int64_t v = fs_vmstat_delta(counter, &found);

	if (!found) {
		fs_got_ok = 0;
		fs_expect_event(line, p, text_json, FS_GOT_NULL);
		return;
	}
	snprintf(fs_got, FS_WORDS_SIZE, "%lld", (long long)v);
	fs_got_ok = v == value;
	fs_expect_event(line, p, text_json, FS_GOT_INT);
}

/* -- protections, partial unmaps, mremap, results -- */

FS_FN int fs_mprotect(int m, uint64_t first, uint64_t last, int prot)
{
	return fs_err(mprotect(fs_at(m, first), (last - first + 1) * FS_PAGE, prot));
}

FS_FN int fs_munmap_range(int m, uint64_t first, uint64_t last)
{
	return fs_err(munmap(fs_at(m, first), (last - first + 1) * FS_PAGE));
}

/*
 * A failed mremap leaves the mapping as it was (do_mremap() changes nothing before its
 * checks pass, mm/mremap.c): the new object takes the old address and size, in the
 * scenario process and in the orchestrator alike, so later lines address what the
 * process really has.
 */
FS_FN void fs_mremap_failed(int from, int to)
{
	fs_map[to].addr = fs_map[from].addr;
	fs_map[to].pages = fs_map[from].pages;
}

/* Mapping `from` becomes `to`: in place (same address) or moved there (MREMAP_FIXED). */
FS_FN int fs_mremap(int from, int to)
{
	void *old = (void *)fs_map[from].addr, *new_ = (void *)fs_map[to].addr, *r;
	size_t old_len = fs_map[from].pages * FS_PAGE, new_len = fs_map[to].pages * FS_PAGE;

	if (new_ == old)
		r = mremap(old, old_len, new_len, 0);
	else
		r = mremap(old, old_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, new_);
	if (r != MAP_FAILED)
		return 0;
	fs_mremap_failed(from, to);
	return errno;
}

/* A line that unmaps part of mapping m: it stays in the process, with holes. */
FS_FN void fs_run_partial_munmap(int line, int p, int m)
{
	fs_run(line, p, "munmap", m);
	fs_live[p][m] = 1;
}

FS_FN void fs_run_mremap(int line, int p, int from, int to)
{
	struct fs_reply_msg r;

	fs_send(p, line, FS_GO_LINE, 0);
	r = fs_recv(p, line);
	if (r.err) {
		fs_error_event(line, p, "mremap", from, fs_errname(r.err));
		fs_mremap_failed(from, to);
	} else {
		fs_trace(line, "mremap", "%s = 0", fs_proc_bare[p]);
	}
	fs_live[p][from] = 0;
	fs_live[p][to] = 1;
}

/* expect result: the outcome of line `of`: ok, or its error. */
FS_FN void fs_expect_result(int line, int p, int of, const char *want, const char *text_json)
{
	fs_copy(fs_got, FS_WORDS_SIZE, fs_line_err[of] ? fs_line_err[of] : "ok");
	fs_got_ok = strcmp(fs_got, want) == 0;
	fs_expect_event(line, p, text_json, FS_GOT_STR);
}

/* -- references (issue 12): long-term pins, what a reference holds, process_madvise -- */

/*
 * `pin`: one io_uring per pinned run, made by the orchestrator at the start (so every
 * scenario process inherits its fd); the process registers its run as the ring's one
 * fixed buffer (IORING_REGISTER_BUFFERS: io_sqe_buffer_register() pins the pages
 * FOLL_WRITE | FOLL_LONGTERM against the caller's mm).  The orchestrator reads the
 * pinned pages back (IORING_OP_WRITE_FIXED into a pipe) and unpins them
 * (IORING_UNREGISTER_BUFFERS, synchronous) on `release`.
 */
struct fs_ring {
	int fd;
	struct io_uring_params pr;	/* what io_uring_setup() said: the queues' offsets */
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};
static struct fs_ring fs_rings[FS_NRING + 1] FS_UNUSED;

FS_FN void fs_pin_setup(void)
{
	for (int i = 0; i < FS_NRING; i++) {
		fs_rings[i].fd = (int)syscall(__NR_io_uring_setup, 2, &fs_rings[i].pr);
		if (fs_rings[i].fd < 0)
			fs_die("io_uring_setup: %s", strerror(errno));
	}
}

/* The orchestrator maps a ring's queues at its first read-back (after the processes
 * exist, so none of them inherits the mappings). */
FS_FN int fs_ring_map(struct fs_ring *rg)
{
	struct io_uring_params pr = rg->pr;
	size_t sq_sz, cq_sz;
	char *sq, *cq;

	if (rg->sqes)
		return 0;
	sq_sz = pr.sq_off.array + pr.sq_entries * sizeof(unsigned);
	cq_sz = pr.cq_off.cqes + pr.cq_entries * sizeof(struct io_uring_cqe);
	if (pr.features & IORING_FEAT_SINGLE_MMAP)
		sq_sz = cq_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
	sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, rg->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return errno;
	cq = (pr.features & IORING_FEAT_SINGLE_MMAP) ? sq
		: mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, rg->fd, IORING_OFF_CQ_RING);
	if (cq == MAP_FAILED)
		return errno;
	rg->sqes = mmap(NULL, pr.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
			MAP_SHARED, rg->fd, IORING_OFF_SQES);
	if (rg->sqes == MAP_FAILED) {
		rg->sqes = NULL;
		return errno;
	}
	rg->sq_tail = (unsigned *)(sq + pr.sq_off.tail);
	rg->sq_mask = (unsigned *)(sq + pr.sq_off.ring_mask);
	rg->sq_array = (unsigned *)(sq + pr.sq_off.array);
	rg->cq_head = (unsigned *)(cq + pr.cq_off.head);
	rg->cq_mask = (unsigned *)(cq + pr.cq_off.ring_mask);
	rg->cqes = (struct io_uring_cqe *)(cq + pr.cq_off.cqes);
	return 0;
}

/* IORING_OP_WRITE_FIXED of one page of fixed buffer 0 at addr to fd: bytes, or -errno. */
FS_FN int fs_ring_write_fixed(struct fs_ring *rg, int fd, uint64_t addr)
{
	unsigned tail = __atomic_load_n(rg->sq_tail, __ATOMIC_ACQUIRE), idx = tail & *rg->sq_mask;
	unsigned head;
	struct io_uring_sqe *sqe = &rg->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_WRITE_FIXED;
	sqe->fd = fd;
	sqe->off = (uint64_t)-1;	/* the file's position: a pipe has none */
	sqe->addr = addr;
	sqe->len = FS_PAGE;
	sqe->buf_index = 0;
	rg->sq_array[idx] = idx;
	__atomic_store_n(rg->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, rg->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -errno;
	head = __atomic_load_n(rg->cq_head, __ATOMIC_ACQUIRE);
	res = rg->cqes[head & *rg->cq_mask].res;
	__atomic_store_n(rg->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

/* In the scenario process: pin [first, last] of mapping m as ring's fixed buffer. */
FS_FN int fs_pin(int ring, int m, uint64_t first, uint64_t last)
{
	struct iovec iov = { fs_at(m, first), (last - first + 1) * FS_PAGE };

	return fs_err(syscall(__NR_io_uring_register, fs_rings[ring].fd, IORING_REGISTER_BUFFERS,
			      &iov, 1));
}

/* `release` of a pin: IORING_UNREGISTER_BUFFERS of each of its rings (rings: ..., -1). */
FS_FN void fs_unpin(int line, const int *rings)
{
	int n = 0;

	for (int k = 0; rings[k] >= 0; k++)
		if (!syscall(__NR_io_uring_register, fs_rings[rings[k]].fd,
			     IORING_UNREGISTER_BUFFERS, NULL, 0))
			n++;
	fs_trace(line, "release", "IORING_UNREGISTER_BUFFERS on %d rings", n);
}

/*
 * At the end, unpin what is still pinned before the rings' fds close: closing an
 * io_uring frees its buffers later, from a workqueue (io_uring_release() ->
 * io_ring_ctx_wait_and_kill() queues io_ring_exit_work(), io_uring/io_uring.c), so a
 * pinned large folio would be freed during the next program's run and its machine-wide
 * mTHP nr_anon would drop there.  IORING_UNREGISTER_BUFFERS unpins before it returns.
 */
static void fs_unpin_all(void)
{
	for (int i = 0; i < FS_NRING; i++)
		if (fs_rings[i].fd > 0)
			syscall(__NR_io_uring_register, fs_rings[i].fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
}

/* What a page holds, as fs_read() says it: 0 zero, 1 garbage, 2 + k label k. */
FS_FN uint16_t fs_classify(const char *buf, int m, uint64_t i)
{
	int zero = 1;

	for (size_t j = 0; j < FS_PAGE / 8 && zero; j++)
		zero = ((const uint64_t *)buf)[j] == 0;
	if (zero)
		return 0;
	if (memcmp(buf, "fsim:", 5))
		return 1;
	for (int k = 0; k < FS_NLABEL; k++) {
		size_t l = strlen(fs_label[k]);
		if (memcmp(buf + 5, fs_label[k], l) || buf[5 + l] != ':')
			continue;
		fs_token(fs_tok, fs_label[k], fs_map_bare[m], i);
		return memcmp(fs_tok, buf, FS_PAGE) == 0 ? (uint16_t)(2 + k) : 1;
	}
	return 1;
}

static size_t fs_ref_words;

FS_FN void fs_ref_word(uint16_t code)
{
	const char *w = code == 0 ? "zero" : code == 1 ? "garbage" : fs_label[code - 2];

	fs_ref_words += snprintf(fs_got + fs_ref_words, FS_WORDS_SIZE - fs_ref_words, "%s%s",
				 fs_ref_words ? "," : "", w);
}

FS_FN void fs_expect_ref_end(int line, int p, const char *want, const char *text_json)
{
	fs_got_ok = fs_ref_words > 0 && fs_all_words(fs_got, want);
	fs_expect_event(line, p, text_json, FS_GOT_LIST);
}

/* `expect REF data` of a pin: runs are ring, m, first, last, ..., -1; a ring whose
 * registration failed holds nothing (nor do the ones after it). */
FS_FN void fs_expect_pin_data(int line, int p, const int64_t *runs, const char *want,
			      const char *text_json)
{
	static char page[FS_PAGE];
	int pfd[2];

	fs_ref_words = 0;
	fs_got[0] = 0;
	if (pipe2(pfd, O_CLOEXEC))
		fs_die("pipe2: %s", strerror(errno));
	for (int r = 0; runs[r] >= 0; r += 4) {
		struct fs_ring *rg = &fs_rings[runs[r]];
		int m = (int)runs[r + 1], stop = 0;

		if (fs_ring_map(rg))
			fs_die("line %d: mapping an io_uring: %s", line, strerror(errno));
		for (int64_t i = runs[r + 2]; i <= runs[r + 3]; i++) {
			int n = fs_ring_write_fixed(rg, pfd[1], fs_map[m].addr + (uint64_t)i * FS_PAGE);

			if (n != (int)FS_PAGE) {
				stop = 1;
				break;
			}
			if (fs_read_full(pfd[0], page, FS_PAGE))
				fs_die("line %d: reading a pipe: %s", line, strerror(errno));
			fs_ref_word(fs_classify(page, m, (uint64_t)i));
		}
		if (stop)
			break;
	}
	close(pfd[0]);
	close(pfd[1]);
	fs_trace(line, "read", "IORING_OP_WRITE_FIXED of the pinned pages to a pipe");
	fs_expect_ref_end(line, p, want, text_json);
}

/* `expect REF data` of a gup: the pages still in its pipe, by tee(2) (the pipe keeps
 * them); pages are m, index, ..., -1 in the pipe's order. */
FS_FN void fs_expect_gup_data(int line, int p, int ref, const int64_t *pages, const char *want,
			      const char *text_json)
{
	static char page[FS_PAGE];
	int pfd[2];
	ssize_t n;

	fs_ref_words = 0;
	fs_got[0] = 0;
	if (pipe2(pfd, O_CLOEXEC))
		fs_die("pipe2: %s", strerror(errno));
	fcntl(pfd[1], F_SETPIPE_SZ, fcntl(fs_gup[ref][0], F_GETPIPE_SZ));
	n = tee(fs_gup[ref][0], pfd[1], (size_t)FS_MAX_READ * FS_PAGE, SPLICE_F_NONBLOCK);
	for (int k = 0; n > 0 && pages[k] >= 0; k += 2, n -= (ssize_t)FS_PAGE) {
		if (fs_read_full(pfd[0], page, FS_PAGE))
			fs_die("line %d: reading a pipe: %s", line, strerror(errno));
		fs_ref_word(fs_classify(page, (int)pages[k], (uint64_t)pages[k + 1]));
	}
	close(pfd[0]);
	close(pfd[1]);
	fs_trace(line, "read", "tee() of the pages in the gup pipe");
	fs_expect_ref_end(line, p, want, text_json);
}

/* In the scenario process: process_madvise(2) of the runs of mapping m of process
 * pid (from the orchestrator): runs are first, last, ..., -1. */
FS_FN int fs_process_madvise(pid_t pid, int m, const int64_t *runs, int advice)
{
	static struct iovec iov[1024];
	int n = 0, fd = (int)syscall(SYS_pidfd_open, pid, 0), e;
	long r;

	if (fd < 0)
		return errno;
	for (int k = 0; runs[k] >= 0 && n < 1024; k += 2, n++) {
		iov[n].iov_base = fs_at(m, (uint64_t)runs[k]);
		iov[n].iov_len = (size_t)(runs[k + 1] - runs[k] + 1) * FS_PAGE;
	}
	r = syscall(SYS_process_madvise, fd, iov, (size_t)n, advice, 0U);
	e = r < 0 ? errno : 0;
	close(fd);
	return e;
}

/* The orchestrator's side of a process_madvise line: the target's pid goes with the turn. */
FS_FN void fs_run_process_madvise(int line, int p, int target, int m)
{
	struct fs_reply_msg r;

	fs_send(p, line, FS_GO_LINE, fs_pid[target]);
	r = fs_recv(p, line);
	if (r.err) {
		fs_error_event(line, p, "process_madvise", m, fs_errname(r.err));
		return;
	}
	fs_trace(line, "process_madvise", "%s -> %s = 0", fs_proc_bare[p], fs_proc_bare[target]);
}

/* -- TAP checks (--assert scenario|model) -- */

static int fs_tap_n, fs_tap_failed;

FS_FN void fs_tap(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
FS_FN void fs_tap(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++fs_tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		fs_tap_failed++;
}

/* --assert scenario: the expect line just run. */
FS_FN void fs_ck_expect(int line, const char *desc)
{
	fs_tap(fs_got_ok, "line %d: %s", line, desc);
	if (!fs_got_ok)
		printf("# got: %s\n", fs_got);
}

/* --assert model: the expect line's got, as the model predicts it. */
FS_FN void fs_ck_got(int line, const char *desc, const char *model)
{
	int ok = strcmp(fs_got, model) == 0;

	fs_tap(ok, "line %d: %s (model: %s)", line, desc, model);
	if (!ok)
		printf("# got: %s\n", fs_got);
}

FS_FN void fs_ck_data(int line, const char *desc, const char *model)
{
	const char *got = fs_line_err[line] ? fs_line_err[line] : fs_data;
	int ok = strcmp(got, model) == 0;

	fs_line_checked[line] = 1;
	fs_tap(ok, "line %d: %s: %s", line, desc, model);
	if (!ok)
		printf("# got: %s\n", got);
}

/* A line the model says fails, with that error. */
FS_FN void fs_ck_error(int line, const char *desc, const char *model)
{
	const char *got = fs_line_err[line] ? fs_line_err[line] : "success";
	int ok = strcmp(got, model) == 0;

	fs_line_checked[line] = 1;
	fs_tap(ok, "line %d: %s fails with %s", line, desc, model);
	if (!ok)
		printf("# got: %s\n", got);
}

/* Every other line succeeded, as the model predicts. */
FS_FN void fs_ck_no_other_errors(void)
{
	int ok = 1;

	for (int l = 0; l <= FS_NLINES; l++)
		if (fs_line_err[l] && !fs_line_checked[l]) {
			if (ok)
				printf("# unexpected failures:\n");
			printf("#   line %d: %s\n", l, fs_line_err[l]);
			ok = 0;
		}
	fs_tap(ok, "every other command succeeds");
}

static int64_t fs_kv_lookup_vm(const char *key, int *found)
{
	for (int k = 0; k < FS_NVM; k++)
		if (strcmp(fs_vm_key[k], key) == 0) {
			*found = fs_st.vm_found[k];
			return fs_st.vm[k];
		}
	*found = 0;
	return 0;
}

/* "key=value,key=value": every key must have that value in STATE. */
static int fs_kv_check(const char *model, int64_t (*lookup)(const char *, int *, const void *), const void *ctx)
{
	char copy[4096];
	int ok = 1;

	fs_copy(copy, sizeof(copy), model);
	for (char *w = strtok(copy, ","); w; w = strtok(NULL, ",")) {
		char *eq = strchr(w, '=');
		int found;
		int64_t got;

		*eq = 0;
		got = lookup(w, &found, ctx);
		if (!found || got != strtoll(eq + 1, NULL, 10)) {
			if (found)
				printf("# %s: got %lld, model %s\n", w, (long long)got, eq + 1);
			else
				printf("# %s: not reported by this kernel, model %s\n", w, eq + 1);
			ok = 0;
		}
	}
	return ok;
}

static int64_t fs_lookup_vm(const char *key, int *found, const void *ctx)
{
	(void)ctx;
	return fs_kv_lookup_vm(key, found);
}

static int64_t fs_lookup_mthp(const char *key, int *found, const void *ctx)
{
	const int s = *(const int *)ctx;

	for (int i = 0; i < fs_st.n_mthp[s]; i++)
		if (strcmp(fs_st.mthp[s][i].name, key) == 0) {
			*found = 1;
			return fs_st.mthp[s][i].value;
		}
	*found = 0;
	return 0;
}

struct fs_pm { int p, m; };

static int64_t fs_lookup_smaps(const char *key, int *found, const void *ctx)
{
	const struct fs_pm *pm = ctx;

	for (int k = 0; k < FS_NSMAPS; k++)
		if (strcmp(fs_smaps_key[k], key) == 0) {
			*found = 1;
			return fs_st.maps[pm->p][pm->m].smaps[k];
		}
	*found = 0;
	return 0;
}

FS_FN void fs_ck_vmstat(const char *where, const char *desc, const char *model)
{
	fs_tap(fs_kv_check(model, fs_lookup_vm, NULL), "%s: vmstat %s", where, desc);
}

FS_FN void fs_ck_mthp(const char *where, int s, const char *desc, const char *model)
{
	fs_tap(fs_kv_check(model, fs_lookup_mthp, &s), "%s: mthp %s %s", where, fs_mthp_bare[s], desc);
}

/* The process (and its mappings) as the model has them: present, or gone. */
FS_FN void fs_ck_procs(const char *where, const char *model)
{
	char got[1024] = "";
	size_t n = 0;

	for (int i = 0; i < FS_NPROC; i++) {
		const int p = fs_proc_by_name[i];
		if (!fs_st.proc_in[p])
			continue;
		n += snprintf(got + n, sizeof(got) - n, "%s%s[", n ? " " : "", fs_proc_bare[p]);
		for (int j = 0, first = 1; j < FS_NMAP; j++) {
			const int m = fs_map_by_name[j];
			if (fs_st.maps[p][m].live) {
				n += snprintf(got + n, sizeof(got) - n, "%s%s", first ? "" : ",", fs_map_bare[m]);
				first = 0;
			}
		}
		n += snprintf(got + n, sizeof(got) - n, "]");
	}
	fs_tap(strcmp(got, model) == 0, "%s: processes and mappings %s", where, model);
	if (strcmp(got, model))
		printf("# got: %s\n", got);
}

FS_FN void fs_ck_smaps(const char *where, int p, int m, const char *desc, const char *model)
{
	struct fs_pm pm = { p, m };
	int ok = fs_st.maps[p][m].live && fs_kv_check(model, fs_lookup_smaps, &pm);

	fs_tap(ok, "%s: %s %s smaps %s", where, fs_proc_bare[p], fs_map_bare[m], desc);
}

/* p's mapping m has the model's VMAs: "FIRST-LAST PROT FLAG...; ..." in address order. */
FS_FN void fs_ck_vmas(const char *where, int p, int m, const char *model)
{
	char got[4096] = "";
	size_t n = 0;
	const struct fs_mapstate *ms = &fs_st.maps[p][m];

	for (int v = 0; ms->live && v < ms->nvma && n < sizeof(got); v++) {
		const struct fs_vma *vm = &ms->vmas[v];
		size_t k = strlen(vm->flags);	/* smaps ends each VmFlags word with a blank */
		while (k && vm->flags[k - 1] == ' ')
			k--;
		n += snprintf(got + n, sizeof(got) - n, "%s%lld-%lld %s %.*s", v ? "; " : "",
			      (long long)((vm->start - fs_map[m].addr) / FS_PAGE),
			      (long long)((vm->end - fs_map[m].addr) / FS_PAGE) - 1, vm->prot, (int)k,
			      vm->flags);
	}
	fs_tap(ms->live && strcmp(got, model) == 0, "%s: %s %s vmas %s", where, fs_proc_bare[p],
	       fs_map_bare[m], model);
	if (strcmp(got, model))
		printf("# got: %s\n", got);
}

/* p's minflt and majflt deltas (the harness's own faults taken off) are the model's. */
FS_FN void fs_ck_faults(const char *where, int p, int64_t minflt, int64_t majflt)
{
	int ok = fs_st.proc_in[p] && fs_st.minflt[p] == minflt && fs_st.majflt[p] == majflt;

	fs_tap(ok, "%s: %s faults minflt=%lld majflt=%lld", where, fs_proc_bare[p], (long long)minflt,
	       (long long)majflt);
	if (!ok)
		printf("# got: minflt=%lld majflt=%lld\n", (long long)fs_st.minflt[p], (long long)fs_st.majflt[p]);
}

/* Pages first..last of p's mapping m are all as the model has them. */
FS_FN void fs_ck_pages(const char *where, int p, int m, uint64_t first, uint64_t last, const char *desc,
		       int state, int exclusive, int soft_dirty, const char *flags, int64_t count, int order)
{
	char got[1024];
	int ok = fs_st.maps[p][m].live;

	for (uint64_t i = first; ok && i <= last; i++) {
		const struct fs_page *pg = &fs_st.maps[p][m].pages[i];
		fs_flag_names(pg->flags, got, sizeof(got));
		if (pg->state != state || pg->exclusive != exclusive || pg->soft_dirty != soft_dirty
		    || (state == 1 && (strcmp(got, flags) || pg->count != count || pg->order != order))) {
			printf("# page %llu: %s exclusive=%d soft_dirty=%d", (unsigned long long)i,
			       fs_state_names[pg->state], pg->exclusive, pg->soft_dirty);
			if (pg->state == 1)
				printf(" order=%d mapcount=%lld %s", pg->order, (long long)pg->count, got);
			printf("\n");
			ok = 0;
		}
	}
	if (first == last)
		fs_tap(ok, "%s: %s %s %llu %s", where, fs_proc_bare[p], fs_map_bare[m],
		       (unsigned long long)first, desc);
	else
		fs_tap(ok, "%s: %s %s %llu-%llu %s", where, fs_proc_bare[p], fs_map_bare[m],
		       (unsigned long long)first, (unsigned long long)last, desc);
}

/* -- start and end -- */

static void fs_usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--json FILE] [--trace]\n", argv0);
	exit(2);
}

/* Root (or the settings as the contract starts them) is needed only for what this
 * scenario does; without it, one line says what and the run is skipped (kselftest 4). */
static void fs_skip(const char *why)
{
	if (FS_ASSERT)
		printf("1..0 # SKIP %s\n", why);
	else
		fprintf(stderr, "%s: skipped: %s\n", fs_scenario_bare, why);
	exit(4);
}

static int fs_lock(void)
{
	int fd;

	mkdir(FS_RUN_DIR, 0755);
	fd = open(FS_RUN_DIR "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (int i = 0; i < 2400; i++) {	/* another harness's run: wait up to 2 minutes */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		usleep(50000);
	}
	fprintf(stderr, "%s: another run holds %s/lock\n", fs_scenario_bare, FS_RUN_DIR);
	exit(3);
}

/* Save what a run changes, then set the contract's start: thp madvise, mthp 2M inherit,
 * every other size never, khugepaged asleep, DAMON off (docs/kernel-backend.md). */
/*
 * A process that keeps one mm on khugepaged's list for the whole run: khugepaged then
 * sleeps out scan_sleep_millisecs (khugepaged_wait_work(), mm/khugepaged.c), where with
 * an empty list it waits for the first mm and __khugepaged_enter() wakes it at once, so
 * the scenario's first MADV_HUGEPAGE would start a scan (and a collapse) mid-run.
 * Started before scan_sleep_millisecs is written: that write wakes khugepaged for one
 * pass over the list, before any scenario process exists.  It never touches its mapping.
 */
static void fs_keeper_start(void)
{
	const size_t len = 4UL << 20;	/* holds a 2M-aligned range: thp_vma_suitable_order() */
	int ready[2];
	char c;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC))
		fs_die("pipe2: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fs_die("fork: %s", strerror(errno));
	if (pid == 0) {
		void *p;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		c = p != MAP_FAILED && !madvise(p, len, MADV_HUGEPAGE) ? 'k' : 'x';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1 || c != 'k')
		fs_die("the khugepaged keeper could not MADV_HUGEPAGE its mapping");
	close(ready[0]);
	fs_keeper_pid = pid;
}

static void fs_settings_start(void)
{
	char text[256], value[64], path[400];
	DIR *d;
	struct dirent *e;

	if (fs_read_text(FS_THP "/enabled", text, sizeof(text)))
		fs_die(FS_THP "/enabled: %s", strerror(errno));
	fs_selected(text, value, sizeof(value));
	fs_save(FS_THP "/enabled", value);
	for (int s = 0; s < FS_NMTHP; s++) {
		snprintf(path, sizeof(path), FS_THP "/hugepages-%dkB/enabled", fs_mthp_kb[s]);
		if (fs_read_text(path, text, sizeof(text))) {
			/* A kernel before mTHP (v6.8) has no hugepages-<size>kB at all: nothing
			 * to save or set (an `mthp` line fails with ENOENT as its event). */
			if (errno == ENOENT && access(FS_THP "/hugepages-2048kB", F_OK))
				continue;
			fs_die("%s: %s", path, strerror(errno));
		}
		fs_selected(text, value, sizeof(value));
		fs_save(path, value);
	}
	if (fs_read_text(FS_THP "/khugepaged/scan_sleep_millisecs", text, sizeof(text)) == 0)
		fs_save(FS_THP "/khugepaged/scan_sleep_millisecs", text);
	d = opendir(FS_DAMON);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), FS_DAMON "/%s/state", e->d_name);
		if (fs_read_text(path, text, sizeof(text)) == 0 && strcmp(text, "on") == 0)
			fs_save(path, "on");
	}
	if (d)
		closedir(d);
	fs_store_saved();
	fs_settings_saved = 1;
	for (int i = 0; i < fs_n_saved; i++) {
		const char *p = fs_saved[i].path, *v;
		if (strstr(p, "/kdamonds/"))
			v = "off";
		else if (strstr(p, "scan_sleep_millisecs")) {
			fs_keeper_start();
			v = "3600000";	/* an hour: khugepaged's timer re-arms, no scan in the run */
		}
		else if (strcmp(p, FS_THP "/enabled") == 0)
			v = "madvise";
		else if (strstr(p, "/hugepages-2048kB/"))
			v = "inherit";
		else
			v = "never";
		if (fs_write_text(p, v))
			fs_die("%s: %s", p, strerror(errno));
	}
}

/* The settings already as the contract starts them (a run without root can use them). */
static const char *fs_settings_differ(void)
{
	char text[256], value[64], path[160];

	if (fs_read_text(FS_THP "/enabled", text, sizeof(text)))
		return "no THP sysfs";
	fs_selected(text, value, sizeof(value));
	if (strcmp(value, "madvise"))
		return "needs root to set THP to the contract's start (thp madvise)";
	for (int s = 0; s < FS_NMTHP; s++) {
		snprintf(path, sizeof(path), FS_THP "/hugepages-%dkB/enabled", fs_mthp_kb[s]);
		if (fs_read_text(path, text, sizeof(text)))
			return "no mTHP sysfs";
		fs_selected(text, value, sizeof(value));
		if (strcmp(value, fs_mthp_kb[s] == 2048 ? "inherit" : "never"))
			return "needs root to set mTHP to the contract's start (2M inherit, others never)";
	}
	return NULL;
}

FS_FN void fs_start(int argc, char **argv, void (*p0_main)(void), void (*helper_main)(void))
{
	cpu_set_t allowed, others, mine;
	struct sigaction sa;
	char swapdev[128], text[64];
	struct utsname u;
	int root = geteuid() == 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
			fs_json_path = argv[++i];
		else if (strcmp(argv[i], "--trace") == 0)
			fs_verbose_trace = 1;
		else
			fs_usage(argv[0]);
	}
	if (!root && FS_NEEDS_ROOT[0])
		fs_skip(FS_NEEDS_ROOT);
	if (!root && fs_settings_differ())
		fs_skip(fs_settings_differ());
	if (sched_getaffinity(0, sizeof(allowed), &allowed) || CPU_COUNT(&allowed) < 2)
		fs_skip("needs two CPUs: one for the scenario, one to observe it from");
	for (int c = CPU_SETSIZE - 1; c >= 0; c--)
		if (CPU_ISSET(c, &allowed)) {
			fs_cpu = c;
			break;
		}
	others = allowed;
	CPU_CLR(fs_cpu, &others);
	if (root) {
		fs_lock_fd = fs_lock();
		fs_repair();
		if (fs_swaps_active(swapdev, sizeof(swapdev)))
			fs_skip("swap is active on this machine; the contract starts with none (swapoff it first)");
		if (FS_USES_SWAP && (fs_read_text(FS_ZRAM "/disksize", text, sizeof(text)) || strcmp(text, "0")))
			fs_skip("swap needs an unused zram0 (modprobe zram; reset it if its disksize is set)");
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fs_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (root)
		fs_settings_start();
	/* The orchestrator's own faults never make large folios (the mTHP counters are
	 * machine-wide).  It forks p0 and the helper from the scenario's CPU: see fs_spawn. */
	CPU_ZERO(&mine);
	CPU_SET(fs_cpu, &mine);
	if (sched_setaffinity(0, sizeof(mine), &mine))
		fs_die("sched_setaffinity: %s", strerror(errno));
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (int p = 0; p <= FS_NPROC; p++)
		if (pipe2(fs_ctl[p], O_CLOEXEC) || pipe2(fs_res[p], O_CLOEXEC))
			fs_die("pipe2: %s", strerror(errno));
#if FS_NREF
	for (int r = 0; r < FS_NREF; r++) {
		if (pipe2(fs_gup[r], O_CLOEXEC))
			fs_die("pipe2: %s", strerror(errno));
		if (fcntl(fs_gup[r][1], F_SETPIPE_SZ, (int)fs_ref_pipe_size[r]) < 0)
			fs_gup_err[r] = errno;
	}
#endif
	fs_pin_setup();		/* references (issue 12) */
	if (FS_ASSERT)
		printf("TAP version 13\n1..%d\n", FS_NCHECKS);
	fflush(stdout);		/* before any fork: nothing buffered is written twice */
	fs_spawn(FS_NPROC, helper_main);
	fs_spawn(0, p0_main);
	/* From here the orchestrator's own faults happen on the other CPUs. */
	if (sched_setaffinity(0, sizeof(others), &others))
		fs_die("sched_setaffinity: %s", strerror(errno));
	fs_data = malloc(FS_WORDS_SIZE);
	fs_got = malloc(FS_WORDS_SIZE);
	fs_copybuf = malloc(FS_WORDS_SIZE);
	if (!fs_data || !fs_got || !fs_copybuf)
		fs_die("out of memory");
	/* The contract's start: the scenario CPU's per-CPU folio batches empty. */
	fs_send(0, 0, FS_GO_LINE, 0);
	fs_recv(0, 0);
	fs_take_baselines();
	/* The observation object, keys sorted: backend, events (written as lines run), final,
	 * format, scenario. */
	uname(&u);
	fs_js_open("{");
	fs_js_key("backend", 0);
	fs_js_open("{");
	fs_js_key("name", 0);
	fs_js_plain_str("c");
	fs_js_key("release", 0);
	fs_js_plain_str(u.release);
	fs_js_close("}");
	fs_js_key("events", 0);
	fs_js_open("[");
}

/* The end of the run: the final STATE, and the rest of the observation object. */
FS_FN void fs_finish(void)
{
	fs_read_state(&fs_st, -1);
	fs_js_close("]");
	fs_js_key("final", 0);
	fs_js_state(&fs_st);
	fs_js_key("format", 0);
	fs_js_plain_str("foliosim.observation/1");
	fs_js_key("scenario", 0);
	fs_js_str(fs_scenario_json);
	fs_js_close("}");
	fs_js_s("\n");
}

FS_FN int fs_end(void)
{
	FILE *out = NULL;

	fs_cleanup();
	if (fs_json_path && strcmp(fs_json_path, "-"))
		out = fopen(fs_json_path, "we");
	else if (fs_json_path || !FS_ASSERT)
		out = stdout;
	if (fs_json_path && !out) {
		fprintf(stderr, "%s: --json %s: %s\n", fs_scenario_bare, fs_json_path, strerror(errno));
		return 3;
	}
	if (out) {
		fputs(fs_js, out);
		fflush(out);
	}
	if (FS_ASSERT) {
		printf("# Totals: pass:%d fail:%d\n", fs_tap_n - fs_tap_failed, fs_tap_failed);
		return fs_tap_failed ? 1 : 0;
	}
	return fs_failed_expects ? 1 : 0;
}

/*@SCRIPT@*/
