#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/xattr.h>   // setxattr: default ACLs (pg setup on a local store)

// prctl is variadic, which Swift cannot call: this typed wrapper is what the CLI uses to keep
// secrets (master key, data keys, DSN passwords) out of core dumps and away from ptrace by
// other processes of the same user. Returns 0, or -1 with errno set.
static inline int tresor_disable_core_dumps(void) {
    struct rlimit none = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
