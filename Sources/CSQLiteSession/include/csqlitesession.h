#ifndef CSQLITESESSION_H
#define CSQLITESESSION_H
#include <stddef.h>

// The SQLite session extension, for the benchmark's baseline. Debian's libsqlite3 is built with
// SQLITE_ENABLE_SESSION and SQLITE_ENABLE_PREUPDATE_HOOK; the declarations need the same defines.
// `db` is a sqlite3 connection (GRDB's Database.sqliteConnection).
int csession_create(void *db, void **session);
int csession_attach(void *session, const char *table);
/// The changeset so far; free it with csession_free.
int csession_changeset(void *session, int *size, void **changeset);
void csession_delete(void *session);
void csession_free(void *buffer);
#endif
