// Linux calls Swift's Glibc module leaves out: extended attributes, syncfs and the GNU seek/open flags.
#include <sys/xattr.h>

extern int syncfs(int fd); // <unistd.h> declares it only under _GNU_SOURCE

static const int tresor_SEEK_DATA = 3;      // lseek: next data at or after offset (Linux ABI)
static const int tresor_SEEK_HOLE = 4;      // lseek: next hole at or after offset (Linux ABI)
static const int tresor_O_PATH = 010000000; // open: a handle that names an inode without opening it
