"""The hook-point atlas: points on a read path, attach trials, counts, recommendation."""
