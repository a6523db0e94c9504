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
// windowBits 31: the gzip format, so a compressed backup opens with the system's gzip too.
static inline int czlib_deflate_init2(z_streamp strm, int level, int windowBits) {
    return deflateInit2(strm, level, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY);
}
static inline int czlib_inflate_init2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
#endif
