/*
 * runc-sealed-copy RUNC STATE: one sealed in-memory copy of runc, made at boot and held for good.
 *
 * runc 1.1 copies its whole binary (8 MB) into a new memfd for every container process it
 * starts (its defence against CVE-2019-5736), unless it already runs from a memfd sealed
 * against any change. Under emulation that copy, and the fresh code it makes QEMU translate,
 * cost about 0.6 s of each `runc create` and `runc exec`, against Thunder's limit of 2000 ms
 * per runc call. This program copies RUNC into a memfd, seals it, leaves a child process
 * holding it open, and writes the path the copy is reached by (/proc/<child>/fd/<n>) to STATE,
 * where /usr/bin/runc (runc-launcher.c) finds it. The copy is as immutable as the clone runc
 * would have made itself; runc's own memfd-bind tool (runc 1.2) does the same for the same
 * reason.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static int fail(const char *what, const char *name)
{
	dprintf(2, "runc-sealed-copy: %s %s: %s\n", what, name, strerror(errno));
	return 1;
}

/* A memfd holding the bytes of `path`, executable and sealed; -1 on error (errno set). */
static int sealed_copy(const char *path)
{
	struct stat st;
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0)
		return -1;
	int copy = memfd_create("runc", MFD_ALLOW_SEALING);
	if (copy < 0)
		return -1;
	off_t done = 0;
	while (done < st.st_size) {
		if (sendfile(copy, in, &done, st.st_size - done) <= 0)
			return -1;
	}
	close(in);
	if (fchmod(copy, 0555) < 0 || fcntl(copy, F_ADD_SEALS, SEALS) < 0)
		return -1;
	return copy;
}

/* Write "/proc/<holder>/fd/<copy>\n" to `state` through a temporary file and a rename. */
static int write_state(const char *state, pid_t holder, int copy)
{
	char temporary[4096], line[64];
	int length = snprintf(line, sizeof line, "/proc/%d/fd/%d\n", (int)holder, copy);
	if (snprintf(temporary, sizeof temporary, "%s.new", state) >= (int)sizeof temporary)
		return -1;
	int out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return -1;
	if (write(out, line, length) != length || close(out) < 0)
		return -1;
	return rename(temporary, state);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		dprintf(2, "usage: runc-sealed-copy RUNC STATE\n");
		return 2;
	}
	int copy = sealed_copy(argv[1]);
	if (copy < 0)
		return fail("cannot make a sealed copy of", argv[1]);
	pid_t holder = fork();
	if (holder < 0)
		return fail("cannot fork a holder for", argv[1]);
	if (holder == 0) {
		/* The holder: its own session, no terminal, nothing but the copy kept open. */
		setsid();
		signal(SIGHUP, SIG_IGN);
		int null = open("/dev/null", O_RDWR);
		for (int fd = 0; fd < 3 && null >= 0; fd++)
			dup2(null, fd);
		if (chdir("/") < 0)
			_exit(1);
		for (;;)
			pause();
	}
	if (write_state(argv[2], holder, copy) < 0) {
		kill(holder, SIGKILL);
		return fail("cannot write", argv[2]);
	}
	return 0;
}
