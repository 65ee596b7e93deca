"""Lock-aware lint of PostgreSQL migration SQL: our own analyzer on pglast, plus squawk."""
