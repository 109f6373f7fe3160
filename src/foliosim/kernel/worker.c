/*
 * foliosim kernel-backend worker: one scenario process (or the poke helper).
 *
 * Compiled on first use by foliosim.kernel.build.  It executes fixed-size
 * requests from the runner over a SOCK_SEQPACKET socket and, once started,
 * never faults a page of its own: no malloc, no stdio, every own mapping
 * populated and marked MADV_NOHUGEPAGE at start, so the per-CPU folio batches
 * and the mTHP counters see only the scenario's pages.
 *
 * usage: worker worker|helper SOCKFD CPU
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#endif

#define PAGE 4096UL
#define NAME_MAX_ 72
#define BALLAST_PAGES 64
#define REC_PER_MSG 512

enum {
	OP_PING = 1, OP_MMAP, OP_MUNMAP, OP_WRITE, OP_READ, OP_MADVISE, OP_MLOCK,
	OP_MUNLOCK, OP_FORK, OP_EXIT, OP_GUP_BEGIN, OP_GUP_SPLICE, OP_GUP_END,
	OP_DRAIN_ALL, OP_DRAIN_LRU_ADD, OP_POKE, OP_BREAK_COW,
	/* protections, partial unmaps, mremap: 30-39 */
	OP_MPROTECT = 30, OP_MREMAP = 31,
};
/* Observations: opcodes 40-49. */
enum {
	OP_HARNESS_FAULTS = 40,
	OP_MLOCK2 = 41,		/* arg: mlock2() flags */
	OP_MLOCKALL = 42,	/* arg: MCL_* flags; addr, len: where the scenario's mappings live */
	OP_MUNLOCKALL = 43,
};

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

/*
 * A load or store that ended in a signal (caught, so the process lives on) is
 * answered ret = -(FAULT_SIG_BASE + signal number), val = the page index of
 * the request at which it stopped; the pages before it were done.
 */
#define FAULT_SIG_BASE 4096
/* References (issue 12): opcodes 50-59. */
enum {
	OP_PIN = 50,		/* IORING_REGISTER_BUFFERS of [addr, addr+len) on the runner's ring */
	OP_PROCESS_MADVISE = 51, /* process_madvise(pidfd sent, len iovecs sent next, arg advice) */
};
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif
#define IORING_REGISTER_BUFFERS_ 0
#define PMADV_IOV_MAX 1024
/* --- memcg (issue 13): opcodes 60-69 ------------------------------------- */
enum {
	OP_MEMCG_WRITE = 60,	/* write label to the cgroup file named by map */
	OP_MEMCG_FLUSH = 61,	/* PUMP_PAGES zero-page faults: memory.stat flushes */
};
#define PUMP_PAGES 256
/* --- end memcg ------------------------------------------------------------ */

struct req {
	uint32_t op;
	int32_t arg;
	uint64_t addr;
	uint64_t len;		/* bytes, or pages for write/read/poke */
	uint64_t index0;	/* page index of addr inside the mapping */
	int64_t pid;		/* poke target */
	char label[NAME_MAX_];
	char map[NAME_MAX_];
};

struct rep {
	int64_t ret;		/* 0 or -errno */
	int64_t val;
};

struct rec {			/* one page of a read: kind 0 zero, 1 label, 2 garbage */
	uint8_t kind;
	char label[NAME_MAX_ - 1];
};

static int sock;
static char page_buf[PAGE] __attribute__((aligned(4096)));
static char tok_buf[PAGE] __attribute__((aligned(4096)));
static char maps_buf[1 << 16];
static char cmsg_buf[CMSG_SPACE(sizeof(int))];
/* A read's reply: struct rep, then one struct rec per page. */
static char rec_msg[sizeof(struct rep) + REC_PER_MSG * sizeof(struct rec)] __attribute__((aligned(8)));
#define recs ((struct rec *)(rec_msg + sizeof(struct rep)))
static uint64_t own_start[256], own_end[256];
static int n_own;
static uint64_t ro_start[256], ro_end[256];	/* own readable mappings not private-writable */
static int n_ro;
static char *scratch, *ballast, *pump;
static int gup_pipe[2] = {-1, -1};
static uint64_t pm_buf[1], kpf_buf[1];
static struct iovec pmadv_iov[PMADV_IOV_MAX];
static sigjmp_buf fault_jmp;
static volatile int fault_armed;
static volatile int fault_sig;
static char altstack[1 << 16];

/*
 * The faults this process took for the harness, not for the scenario: its start
 * (populating its own memory), the lru_add drains (ballast pages) and the COW
 * breaking after fork.  /proc/PID/stat counts them in minflt/majflt with the
 * scenario's (mm_account_fault() charges current); the runner subtracts them.
 * getrusage(RUSAGE_SELF) reads the same task counters and faults nothing (its
 * struct lives on the stack, populated at start).
 */
static int64_t harness_min, harness_maj;

static void harness_mark(struct rusage *r)
{
	getrusage(RUSAGE_SELF, r);
}

static void harness_add(const struct rusage *since)
{
	struct rusage now;

	getrusage(RUSAGE_SELF, &now);
	harness_min += now.ru_minflt - since->ru_minflt;
	harness_maj += now.ru_majflt - since->ru_majflt;
}

/* Every fault so far was the harness's (at the start, or in a child before it answers). */
static void harness_all(void)
{
	struct rusage now;

	getrusage(RUSAGE_SELF, &now);
	harness_min = now.ru_minflt;
	harness_maj = now.ru_majflt;
}

/* The token of (label, map, index): "fsim:LABEL:MAP:INDEX\n" repeated over a page. */
static void make_token_page(char *dst, const char *label, const char *map, uint64_t index)
{
	char tok[256], num[24];
	size_t n = 0, l;
	int d = 0;
	uint64_t v = index;

	do { num[d++] = '0' + v % 10; v /= 10; } while (v);
	memcpy(tok, "fsim:", 5); n = 5;
	l = strnlen(label, NAME_MAX_ - 1); memcpy(tok + n, label, l); n += l; tok[n++] = ':';
	l = strnlen(map, NAME_MAX_ - 1); memcpy(tok + n, map, l); n += l; tok[n++] = ':';
	while (d) tok[n++] = num[--d];
	tok[n++] = '\n';
	for (size_t off = 0; off < PAGE; off += n)
		memcpy(dst + off, tok, PAGE - off < n ? PAGE - off : n);
}

static void on_fault(int sig)
{
	if (fault_armed) {
		fault_sig = sig;
		siglongjmp(fault_jmp, 1);
	}
	_exit(128 + sig);
}

static void reply(int64_t ret, int64_t val)
{
	struct rep r = { ret, val };
	send(sock, &r, sizeof(r), MSG_NOSIGNAL);
}

static void send_fd(int fd, int64_t ret)
{
	struct rep r = { ret, 0 };
	struct iovec iov = { &r, sizeof(r) };
	struct msghdr mh = { 0 };
	struct cmsghdr *c;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cmsg_buf;
	mh.msg_controllen = sizeof(cmsg_buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	sendmsg(sock, &mh, MSG_NOSIGNAL);
}

static int recv_req(struct req *q, int *fd)
{
	struct iovec iov = { q, sizeof(*q) };
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	ssize_t n;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cmsg_buf;
	mh.msg_controllen = sizeof(cmsg_buf);
	*fd = -1;
	do n = recvmsg(sock, &mh, 0); while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*q))
		return -1;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

static uint64_t hexval(const char **p)
{
	uint64_t v = 0;
	for (;;) {
		char ch = **p;
		if (ch >= '0' && ch <= '9') v = v * 16 + ch - '0';
		else if (ch >= 'a' && ch <= 'f') v = v * 16 + ch - 'a' + 10;
		else break;
		(*p)++;
	}
	return v;
}

/* Populate every own mapping and keep the private writable ones for break_cow. */
static void settle_own_memory(void)
{
	int fd = open("/proc/self/maps", O_RDONLY);
	ssize_t n = 0, r;

	while (fd >= 0 && (r = read(fd, maps_buf + n, sizeof(maps_buf) - 1 - n)) > 0)
		n += r;
	if (fd >= 0)
		close(fd);
	maps_buf[n] = 0;
	for (const char *p = maps_buf; *p;) {
		const char *eol = strchr(p, '\n');
		uint64_t s = hexval(&p), e;
		p++;
		e = hexval(&p);
		p++;
		int w = p[1] == 'w', pr = p[3] == 'p', rd = p[0] == 'r';
		int special = eol && (memmem(p, eol - p, "[vsyscall]", 10) || memmem(p, eol - p, "[vvar", 5)
				      || memmem(p, eol - p, "[vdso]", 6));
		/* The vDSO's pages: loaded, so that mm_populate() of mlockall(MCL_CURRENT)
		 * (which populates every VMA, the vDSO's too) faults none of them. */
		if (eol && memmem(p, eol - p, "[vdso]", 6) && n_ro < 256) {
			ro_start[n_ro] = s; ro_end[n_ro++] = e;
			for (uint64_t a = s; a < e; a += PAGE)
				(void)*(volatile char *)a;
		}
		if (!special) {
			madvise((void *)s, e - s, MADV_NOHUGEPAGE);
			if (w && pr) {
				madvise((void *)s, e - s, MADV_POPULATE_WRITE);
				if (n_own < 256) { own_start[n_own] = s; own_end[n_own++] = e; }
			} else if (rd) {
				madvise((void *)s, e - s, MADV_POPULATE_READ);
				if (n_ro < 256) { ro_start[n_ro] = s; ro_end[n_ro++] = e; }
			}
		}
		if (!eol)
			break;
		p = eol + 1;
	}
}

/*
 * Break COW on every own private writable page after fork, by storing to it.
 * Not MADV_POPULATE_WRITE: faultin_page_range() (mm/gup.c) ends with
 * lru_add_drain(), which would empty the scenario's lazyfree, deactivate and
 * activate batches too.  A store's COW fault drains nothing as long as the
 * folio is on the LRU (wp_can_reuse_anon_folio(), mm/memory.c), which the
 * lru_add push before fork() ensures; the copies it makes only fill lru_add,
 * which the runner pushes out afterwards (OP_DRAIN_LRU_ADD).
 */
static void break_cow(void)
{
	for (int i = 0; i < n_own; i++)
		for (uint64_t a = own_start[i]; a < own_end[i]; a += PAGE) {
			volatile char *c = (volatile char *)a;
			*c = *c;
		}
}

/*
 * A forked child has no page tables for its file mappings (dup_mmap() copies
 * none for a VMA without anon_vma: vma_needs_copy(), mm/memory.c), so the first
 * run of each code page would fault at some scenario line.  Load one byte of
 * every page now instead (loads, not MADV_POPULATE_READ, whose
 * faultin_page_range() ends with lru_add_drain()).
 */
static void touch_read_only(void)
{
	for (int i = 0; i < n_ro; i++)
		for (uint64_t a = ro_start[i]; a < ro_end[i]; a += PAGE)
			(void)*(volatile char *)a;
}

__attribute__((noinline)) static void grow_stack(void)
{
	volatile char big[256 * 1024];
	for (size_t i = 0; i < sizeof(big); i += PAGE)
		big[i] = 1;
	big[sizeof(big) - 1] = 1;
}

static int pm = -1, kpf = -1;

static int page_is_lru(void *addr)
{
	if (pm < 0) pm = open("/proc/self/pagemap", O_RDONLY);
	if (kpf < 0) kpf = open("/proc/kpageflags", O_RDONLY);
	if (pread(pm, pm_buf, 8, (uint64_t)addr / PAGE * 8) != 8)
		return -1;
	if (!(pm_buf[0] >> 63 & 1))
		return 0;
	uint64_t pfn = pm_buf[0] & ((1ULL << 55) - 1);
	if (pread(kpf, kpf_buf, 8, pfn * 8) != 8)
		return -1;
	return kpf_buf[0] >> 5 & 1;
}

/*
 * mlockall(MCL_CURRENT) locks and populates every VMA, the worker's own too
 * (apply_mlockall_flags(), then mm_populate(0, TASK_SIZE): mm/mlock.c).  Put
 * its own memory back as the harness needs it: count the ballast and scratch
 * pages the population faulted as its own faults, munlock every VMA outside
 * the scenario's range [lo, hi) (a locked ballast would feed the mlock batch,
 * not lru_add, and refuse MADV_DONTNEED), and drop those pages again.
 */
static int pages_present(char *start, uint64_t npages)
{
	int n = 0;

	if (pm < 0)
		pm = open("/proc/self/pagemap", O_RDONLY);
	for (uint64_t i = 0; i < npages; i++)
		if (pread(pm, pm_buf, 8, ((uint64_t)start / PAGE + i) * 8) == 8 && pm_buf[0] >> 63 & 1)
			n++;
	return n;
}

static void mlockall_restore(uint64_t lo, uint64_t hi)
{
	int fd = open("/proc/self/maps", O_RDONLY);
	ssize_t n = 0, r;

	harness_min += pages_present(ballast, BALLAST_PAGES) + pages_present(scratch, 1)
		       + pages_present(pump, PUMP_PAGES);
	while (fd >= 0 && (r = read(fd, maps_buf + n, sizeof(maps_buf) - 1 - n)) > 0)
		n += r;
	if (fd >= 0)
		close(fd);
	maps_buf[n] = 0;
	for (const char *p = maps_buf; *p;) {
		const char *eol = strchr(p, '\n');
		uint64_t s = hexval(&p), e;
		p++;
		e = hexval(&p);
		if (e <= lo || s >= hi)
			munlock((void *)s, e - s);
		if (!eol)
			break;
		p = eol + 1;
	}
	madvise(ballast, BALLAST_PAGES * PAGE, MADV_DONTNEED);
	madvise(scratch, PAGE, MADV_DONTNEED);
	madvise(pump, PUMP_PAGES * PAGE, MADV_DONTNEED);
}

/* Fault ballast pages one at a time until the lru_add batch drains. */
static int64_t drain_lru_add(void)
{
	int64_t i;
	for (i = 0; i < BALLAST_PAGES; i++) {
		ballast[i * PAGE] = 1;
		if (page_is_lru(ballast + i * PAGE) == 1)
			break;
	}
	madvise(ballast, BALLAST_PAGES * PAGE, MADV_DONTNEED);
	return i < BALLAST_PAGES ? i + 1 : -ENOSPC;
}

static void do_read(struct req *q)
{
	struct rep *hdr = (struct rep *)rec_msg;
	uint64_t done = 0;

	while (done < q->len) {
		uint64_t k = q->len - done < REC_PER_MSG ? q->len - done : REC_PER_MSG;
		for (uint64_t i = 0; i < k; i++) {
			char *pg = (char *)(q->addr + (done + i) * PAGE);
			struct rec *r = &recs[i];
			memset(r, 0, sizeof(*r));
			fault_armed = 1;
			if (sigsetjmp(fault_jmp, 1)) {
				fault_armed = 0;
				reply(-(FAULT_SIG_BASE + fault_sig), (int64_t)(done + i));
				return;
			}
			/* The barriers keep the load inside the armed window. */
			__asm__ volatile("" ::: "memory");
			memcpy(page_buf, pg, PAGE);
			__asm__ volatile("" ::: "memory");
			fault_armed = 0;
			int zero = 1;
			for (size_t j = 0; j < PAGE / 8; j++)
				if (((uint64_t *)page_buf)[j]) { zero = 0; break; }
			if (zero) { r->kind = 0; continue; }
			r->kind = 2;
			if (memcmp(page_buf, "fsim:", 5) == 0) {
				char *colon = memchr(page_buf + 5, ':', NAME_MAX_);
				size_t l = colon ? (size_t)(colon - page_buf - 5) : 0;
				if (colon && l > 0 && l < sizeof(r->label)) {
					char label[NAME_MAX_] = {0};
					memcpy(label, page_buf + 5, l);
					make_token_page(tok_buf, label, q->map, q->index0 + done + i);
					if (memcmp(tok_buf, page_buf, PAGE) == 0) {
						r->kind = 1;
						memcpy(r->label, label, l);
					}
				}
			}
		}
		hdr->ret = 0;
		hdr->val = (int64_t)k;
		send(sock, rec_msg, sizeof(struct rep) + k * sizeof(struct rec), MSG_NOSIGNAL);
		done += k;
	}
}

/* Where a failed write, poke or splice stopped: the page index inside the request. */
static int64_t stop_page;

static int64_t do_write(struct req *q)
{
	for (uint64_t i = 0; i < q->len; i++) {
		make_token_page(tok_buf, q->label, q->map, q->index0 + i);
		fault_armed = 1;
		if (sigsetjmp(fault_jmp, 1)) {
			fault_armed = 0;
			stop_page = (int64_t)i;
			return -(FAULT_SIG_BASE + fault_sig);
		}
		__asm__ volatile("" ::: "memory");
		memcpy((char *)(q->addr + i * PAGE), tok_buf, PAGE);
		__asm__ volatile("" ::: "memory");
		fault_armed = 0;
	}
	return 0;
}

static int64_t do_poke(struct req *q)
{
	for (uint64_t i = 0; i < q->len; i++) {
		struct iovec l = { tok_buf, PAGE }, r = { (void *)(q->addr + i * PAGE), PAGE };
		make_token_page(tok_buf, q->label, q->map, q->index0 + i);
		ssize_t n = process_vm_writev((pid_t)q->pid, &l, 1, &r, 1, 0);
		stop_page = (int64_t)i;
		if (n < 0)
			return -errno;
		if (n != (ssize_t)PAGE)
			return -EFAULT;
	}
	return 0;
}

static int64_t do_splice(struct req *q)
{
	uint64_t off = 0;
	while (off < q->len) {
		struct iovec iov = { (void *)(q->addr + off), q->len - off };
		ssize_t n = vmsplice(gup_pipe[1], &iov, 1, SPLICE_F_NONBLOCK);
		stop_page = (int64_t)(off / PAGE);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EAGAIN;
		off += n;
	}
	return 0;
}

static int64_t sys(long r);

/* --- memcg (issue 13) ----------------------------------------------------- */
/*
 * A write to a memory cgroup file from this process, so that the reclaim a
 * lower memory.limit_in_bytes starts (mem_cgroup_resize_max(), mm/memcontrol-v1.c)
 * runs on the scenario's CPU, as the scenario's process.
 */
static int64_t memcg_write(struct req *q)
{
	int fd = open(q->map, O_WRONLY | O_CLOEXEC);
	size_t n = strnlen(q->label, NAME_MAX_);
	int64_t r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, q->label, n) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Read-fault every pump page (the shared zero page: nothing charged, no LRU
 * batch) and zap them again.  Each fault counts a PGFAULT memcg event, so the
 * cgroup's pending stat updates pass MEMCG_CHARGE_BATCH * nr_cpus and the next
 * memory.stat read flushes them (memcg_vmstats_needs_flush(), mm/memcontrol.c).
 * The pump's page table was made before the process joined the cgroup.
 */
static int64_t memcg_flush(void)
{
	for (uint64_t i = 0; i < PUMP_PAGES; i++)
		(void)*(volatile char *)(pump + i * PAGE);
	return sys(madvise(pump, PUMP_PAGES * PAGE, MADV_DONTNEED));
}
/* --- end memcg ------------------------------------------------------------ */

static int64_t sys(long r)
{
	return r < 0 ? -errno : 0;
}

/* -- references (issue 12) -- */

/*
 * A long-term pin: register [addr, addr+len) as the one fixed buffer of the
 * runner's io_uring q->arg (io_sqe_buffer_register() pins it with FOLL_WRITE |
 * FOLL_LONGTERM against this process's mm), then drop our copy of the fd: the
 * runner holds the ring, and with it the pin.  An io_uring fd cannot travel by
 * SCM_RIGHTS (unix_get_socket() refuses it), so we take it with pidfd_getfd()
 * from the runner, pid q->pid.
 */
static int64_t do_pin(struct req *q)
{
	struct iovec iov = { (void *)q->addr, q->len };
	int64_t r;
	int pidfd = (int)syscall(__NR_pidfd_open, (pid_t)q->pid, 0);
	int fd;

	if (pidfd < 0)
		return -errno;
	fd = (int)syscall(__NR_pidfd_getfd, pidfd, q->arg, 0);
	r = fd < 0 ? -errno : 0;
	close(pidfd);
	if (fd < 0)
		return r;
	r = sys(syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS_, &iov, 1));
	close(fd);
	return r;
}

/* process_madvise(pidfd, iovecs, n, advice, 0): the iovecs come in the next message. */
static int64_t do_process_madvise(struct req *q, int fd)
{
	ssize_t n = recv(sock, pmadv_iov, sizeof(pmadv_iov), 0);
	int64_t r;

	if (fd < 0)
		return -EBADF;
	if (n != (ssize_t)(q->len * sizeof(struct iovec))) {
		close(fd);
		return -EINVAL;
	}
	r = sys(syscall(__NR_process_madvise, fd, pmadv_iov, (size_t)q->len, q->arg, 0U));
	close(fd);
	return r;
}

/*
 * `worker keeper`: keeps one mm on khugepaged's list for the whole run, so that
 * khugepaged sleeps out scan_sleep_millisecs (khugepaged_wait_work(),
 * mm/khugepaged.c); with an empty list it waits for the first mm instead, and
 * __khugepaged_enter() wakes it at once, so the scenario's first MADV_HUGEPAGE would
 * start a scan (and a collapse) mid-run.  Says 'k' once registered, never touches its
 * mapping, and exits when its stdin closes.
 */
static int keeper_main(void)
{
	const size_t len = 4UL << 20;	/* holds a 2M-aligned range: thp_vma_suitable_order() */
	char c;
	void *p;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || madvise(p, len, MADV_HUGEPAGE))
		return 4;
	if (write(1, "k", 1) != 1)
		return 5;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	struct req q;
	int fd, helper;
	cpu_set_t set;
	stack_t ss = { altstack, 0, sizeof(altstack) };
	struct sigaction sa;

	if (argc == 2 && strcmp(argv[1], "keeper") == 0)
		return keeper_main();
	if (argc != 4)
		return 2;
	helper = strcmp(argv[1], "helper") == 0;
	sock = atoi(argv[2]);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	CPU_ZERO(&set);
	CPU_SET(atoi(argv[3]), &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return 3;
	/* The runner disables THP for itself and exec keeps that: workers undo it. */
	prctl(PR_SET_THP_DISABLE, helper, 0, 0, 0);
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sa.sa_flags = SA_ONSTACK | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	grow_stack();
	settle_own_memory();
	scratch = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ballast = mmap(NULL, BALLAST_PAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* memcg: the pump's page table is allocated now, outside any scenario cgroup. */
	pump = mmap(NULL, PUMP_PAGES * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch == MAP_FAILED || ballast == MAP_FAILED || pump == MAP_FAILED)
		return 4;
	madvise(pump, PUMP_PAGES * PAGE, MADV_NOHUGEPAGE);
	(void)*(volatile char *)pump;
	madvise(pump, PUMP_PAGES * PAGE, MADV_DONTNEED);
	madvise(scratch, PAGE, MADV_NOHUGEPAGE);
	madvise(ballast, BALLAST_PAGES * PAGE, MADV_NOHUGEPAGE);
	page_is_lru(scratch);	/* opens pagemap/kpageflags now, not mid-scenario */
	harness_all();
	reply(0, getpid());

	while (recv_req(&q, &fd) == 0) {
		int flags;
		void *p;
		struct rusage ru;
		switch (q.op) {
		case OP_PING:
			reply(0, getpid());
			break;
		case OP_MMAP:
			flags = (q.arg ? MAP_DROPPABLE : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
			/* index0: the PROT_* bits */
			p = mmap((void *)q.addr, q.len, (int)q.index0, flags, -1, 0);
			if (p == MAP_FAILED)
				reply(-errno, 0);
			else if (p != (void *)q.addr) {
				munmap(p, q.len);
				reply(-EEXIST, 0);
			} else
				reply(0, 0);
			break;
		case OP_MUNMAP:
			reply(sys(munmap((void *)q.addr, q.len)), 0);
			break;
		case OP_WRITE: {
			int64_t r = do_write(&q);
			reply(r, r ? stop_page : 0);
			break;
		}
		case OP_READ:
			do_read(&q);
			break;
		case OP_MADVISE:
			reply(sys(madvise((void *)q.addr, q.len, q.arg)), 0);
			break;
		case OP_MLOCK:
			reply(sys(mlock((void *)q.addr, q.len)), 0);
			break;
		case OP_MUNLOCK:
			reply(sys(munlock((void *)q.addr, q.len)), 0);
			break;
		case OP_FORK: {
			/* Own folios still in lru_add are off the LRU; a COW fault on one
			 * would drain every batch (see break_cow()). */
			harness_mark(&ru);
			int64_t r = drain_lru_add();
			if (r < 0) {
				if (fd >= 0)
					close(fd);
				harness_add(&ru);
				reply(r, 0);
				break;
			}
			pid_t pid = fork();
			if (pid == 0) {
				close(sock);
				sock = fd;
				/* A pagemap fd is bound to the mm it was opened on. */
				close(pm);
				pm = open("/proc/self/pagemap", O_RDONLY);
				break_cow();
				touch_read_only();
				/* The child's counters start at zero in copy_process(). */
				harness_all();
				reply(0, getpid());
			} else {
				int e = pid < 0 ? errno : 0;
				if (fd >= 0)
					close(fd);
				break_cow();
				harness_add(&ru);
				reply(-e, pid);
			}
			break;
		}
		case OP_BREAK_COW:
			harness_mark(&ru);
			break_cow();
			harness_add(&ru);
			reply(0, 0);
			break;
		case OP_EXIT:
			reply(0, 0);
			_exit(0);
		case OP_GUP_BEGIN:
			if (pipe2(gup_pipe, O_CLOEXEC)) {
				reply(-errno, 0);
				break;
			}
			if (fcntl(gup_pipe[1], F_SETPIPE_SZ, (int)q.len) < 0) {
				int e = errno;
				close(gup_pipe[0]);
				close(gup_pipe[1]);
				reply(-e, 0);
				break;
			}
			reply(0, 0);
			break;
		case OP_GUP_SPLICE: {
			int64_t r = do_splice(&q);
			reply(r, r ? stop_page : 0);
			break;
		}
		case OP_GUP_END:
			send_fd(gup_pipe[0], 0);
			close(gup_pipe[0]);
			close(gup_pipe[1]);
			gup_pipe[0] = gup_pipe[1] = -1;
			break;
		case OP_DRAIN_ALL:
			reply(sys(madvise(scratch, PAGE, MADV_COLD)), 0);
			break;
		case OP_DRAIN_LRU_ADD: {
			harness_mark(&ru);
			int64_t r = drain_lru_add();
			harness_add(&ru);
			reply(r < 0 ? r : 0, r);
			break;
		}
		case OP_POKE: {
			int64_t r = do_poke(&q);
			reply(r, r ? stop_page : 0);
			break;
		}
		/* Observations. */
		case OP_HARNESS_FAULTS:
			reply(0, harness_min | harness_maj << 32);
			break;
		case OP_MLOCK2:
			reply(sys(syscall(SYS_mlock2, (void *)q.addr, q.len, q.arg)), 0);
			break;
		case OP_MLOCKALL: {
			int64_t r = sys(mlockall(q.arg));
			if (!r && (q.arg & MCL_CURRENT))
				mlockall_restore(q.addr, q.addr + q.len);
			reply(r, 0);
			break;
		}
		case OP_MUNLOCKALL:
			reply(sys(munlockall()), 0);
			break;
		/* -- protections, partial unmaps, mremap -- */
		case OP_MPROTECT:
			reply(sys(mprotect((void *)q.addr, q.len, q.arg)), 0);
			break;
		case OP_MREMAP: {
			/* index0: the new length; pid: the new address (MREMAP_MAYMOVE|MREMAP_FIXED), or 0 */
			void *r = q.pid ? mremap((void *)q.addr, q.len, q.index0, MREMAP_MAYMOVE | MREMAP_FIXED,
						 (void *)q.pid)
					: mremap((void *)q.addr, q.len, q.index0, 0);
			reply(r == MAP_FAILED ? -errno : 0, 0);
			break;
		}
		/* -- references (issue 12) -- */
		case OP_PIN:
			if (fd >= 0)
				close(fd);
			reply(do_pin(&q), 0);
			break;
		case OP_PROCESS_MADVISE:
			reply(do_process_madvise(&q, fd), 0);
			break;
		/* --- memcg (issue 13) --- */
		case OP_MEMCG_WRITE:
			reply(memcg_write(&q), 0);
			break;
		case OP_MEMCG_FLUSH: {
			harness_mark(&ru);	/* the pump's faults are the harness's own */
			int64_t r = memcg_flush();
			harness_add(&ru);
			reply(r, 0);
			break;
		}
		/* --- end memcg --- */
		default:
			reply(-ENOSYS, 0);
		}
	}
	_exit(0);
}
