#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>
#include "csqlitesession.h"

int csession_create(void *db, void **session) {
    return sqlite3session_create((sqlite3 *)db, "main", (sqlite3_session **)session);
}

int csession_attach(void *session, const char *table) {
    return sqlite3session_attach((sqlite3_session *)session, table);
}

int csession_changeset(void *session, int *size, void **changeset) {
    return sqlite3session_changeset((sqlite3_session *)session, size, changeset);
}

void csession_delete(void *session) {
    sqlite3session_delete((sqlite3_session *)session);
}

void csession_free(void *buffer) {
    sqlite3_free(buffer);
}
