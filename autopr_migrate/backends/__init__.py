"""The database seam: engines, connections, timeouts, the migration lock, dump and restore tools."""
