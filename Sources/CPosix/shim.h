// Linux calls Swift's Glibc module leaves out: extended attributes, syncfs, the GNU seek/open flags,
// and a typed prctl for the process hardening the CLI does at start.
#include <sys/xattr.h>

extern int syncfs(int fd); // <unistd.h> declares it only under _GNU_SOURCE

static const int tresor_SEEK_DATA = 3;      // lseek: next data at or after offset (Linux ABI)
static const int tresor_SEEK_HOLE = 4;      // lseek: next hole at or after offset (Linux ABI)
static const int tresor_O_PATH = 010000000; // open: a handle that names an inode without opening it

#include <sys/prctl.h>
#include <sys/resource.h>

// prctl is variadic, which Swift cannot call: this typed wrapper is what the CLI uses to keep
// secrets (master key, data keys, DSN passwords) out of core dumps and away from ptrace by
// other processes of the same user. Returns 0, or -1 with errno set.
static inline int tresor_disable_core_dumps(void) {
    struct rlimit none = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

#include <sys/syscall.h>
#include <unistd.h>

// renameat2 through the system call (glibc declares it only under _GNU_SOURCE). With
// RENAME_NOREPLACE it fails with EEXIST instead of replacing a name, in one call.
static const unsigned int tresor_RENAME_NOREPLACE = 1;
static inline int tresor_renameat2(int olddir, const char *oldname, int newdir, const char *newname, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddir, oldname, newdir, newname, flags);
}

// O_DIRECT, which glibc names only under _GNU_SOURCE (and <fcntl.h> here would clash with
// Glibc's module): the kernel's value per architecture. A restore writes large files' aligned
// blocks with it, set and cleared with fcntl(F_SETFL).
#if defined(__aarch64__) || defined(__arm__)
static const int tresor_O_DIRECT = 0200000;
#elif defined(__powerpc__)
static const int tresor_O_DIRECT = 0400000;
#elif defined(__mips__)
static const int tresor_O_DIRECT = 0100000;
#else
static const int tresor_O_DIRECT = 040000; // x86 and the generic value
#endif
