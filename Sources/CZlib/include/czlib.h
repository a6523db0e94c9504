#ifndef CZLIB_H
#define CZLIB_H
#include <zlib.h>

// zlib's init macros take sizeof(z_stream); Swift cannot call macros, so wrap them.
static inline int czlib_deflate_init(z_streamp strm, int level) {
    return deflateInit(strm, level);
}
static inline int czlib_inflate_init(z_streamp strm) {
    return inflateInit(strm);
}
#endif
