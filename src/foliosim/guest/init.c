/* /init of a foliosim guest: mount what an exported scenario reads, load zram, run
 * every scenario program in /scn in name order, print each one's observation and
 * status between markers on the console, then power off.
 *
 * Built static by foliosim.guest.initramfs; no shell, no busybox.  The console is
 * the serial port (console=ttyS0); the kernel is quiet (loglevel=1), so nothing but
 * this program writes to it.
 *
 * Markers, each on a line of its own:
 *   @@foliosim-guest release RELEASE
 *   @@foliosim-module NAME ERRNO            (0: loaded)
 *   @@foliosim-lru_gen ERRNO                (0: MGLRU off, or not built)
 *   @@foliosim-begin NAME
 *   ...the program's stdout (its observation JSON)...
 *   @@foliosim-stderr NAME
 *   ...the program's stderr...
 *   @@foliosim-end NAME STATUS              (exit status, or 128+signal)
 *   @@foliosim-done
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>


static void copy_file(const char *path)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);
	int last = '\n';

	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));
			if (w <= 0)
				break;
			off += w;
		}
		last = buf[n - 1];
	}
	if (last != '\n' && write(1, "\n", 1) < 0)
		return;
	close(fd);
}

/* Load /modules/NN-name.ko in name order (the host wrote them dependencies first). */
static void load_modules(void)
{
	struct dirent **names;
	int n = scandir("/modules", &names, NULL, alphasort);
	char path[300];

	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		int fd;
		long err = 0;
		if (name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/modules/%s", name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0)
			err = errno;
		if (err == EEXIST)
			err = 0;
		if (fd >= 0)
			close(fd);
		dprintf(1, "@@foliosim-module %s %ld\n", name, err);
	}
}

static void run_one(const char *name)
{
	char path[300];
	pid_t pid;
	int status = 0;
	long code;

	snprintf(path, sizeof(path), "/scn/%s", name);
	pid = fork();
	if (pid == 0) {
		int out = open("/tmp/out", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open("/tmp/err", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (out < 0 || err < 0)
			_exit(125);
		dup2(out, 1);
		dup2(err, 2);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		dprintf(1, "@@foliosim-end %s 126\n", name);
		return;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	dprintf(1, "@@foliosim-begin %s\n", name);
	copy_file("/tmp/out");
	dprintf(1, "@@foliosim-stderr %s\n", name);
	copy_file("/tmp/err");
	dprintf(1, "@@foliosim-end %s %ld\n", name, code);
}

int main(void)
{
	struct utsname u;
	struct dirent **names;
	int n, fd, err;

	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mkdir("/run", 0755);
	mkdir("/tmp", 01777);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("tmpfs", "/run", "tmpfs", 0, "mode=0755");
	mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	uname(&u);
	dprintf(1, "@@foliosim-guest release %s\n", u.release);
	load_modules();
	/* The model is of the classic active/inactive LRU (this machine's 6.18 has no
	 * CONFIG_LRU_GEN); Debian's 6.12 builds MGLRU and enables it by default. */
	fd = open("/sys/kernel/mm/lru_gen/enabled", O_WRONLY);
	err = 0;
	if (fd >= 0 && write(fd, "n", 1) != 1)
		err = errno;
	if (fd >= 0)
		close(fd);
	dprintf(1, "@@foliosim-lru_gen %d\n", err);
	n = scandir("/scn", &names, NULL, alphasort);
	for (int i = 0; i < n; i++)
		if (names[i]->d_name[0] != '.')
			run_one(names[i]->d_name);
	dprintf(1, "@@foliosim-done\n");
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
