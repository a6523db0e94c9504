// The module exists to expose zlib to Swift; see include/czlib.h.
