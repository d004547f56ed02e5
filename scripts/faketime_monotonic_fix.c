/* Preloaded before libfaketime by scripts/moved_clock.sh (CI's moved-clock phase).
 *
 * libfaketime 0.9.10 (Debian 12's) with FAKETIME_DONT_FAKE_MONOTONIC=1 still
 * rewrites an absolute CLOCK_MONOTONIC deadline passed to clock_nanosleep()
 * as if it were a faked wall-clock time (upstream issue #426): the kernel gets
 * a negative time and says EINVAL, so time.sleep() fails in Python >= 3.11
 * (subprocess.wait(timeout) among others).  The monotonic clock is not faked,
 * so its sleeps go straight to the kernel; other clocks go on to libfaketime.
 * Hand-written because no packaged libfaketime carries the fix.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req, struct timespec *rem)
{
    static clock_nanosleep_fn next;   /* a benign race: every thread finds the same symbol */
    if (clock_id == CLOCK_MONOTONIC) {
        int saved = errno;            /* clock_nanosleep returns its error; errno is untouched */
        int err = syscall(SYS_clock_nanosleep, clock_id, flags, req, rem) == 0 ? 0 : errno;
        errno = saved;
        return err;
    }
    if (next == NULL)
        next = (clock_nanosleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock_id, flags, req, rem);
}
