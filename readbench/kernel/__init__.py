"""The running kernel: CPU flags, symbols, BTF, tracefs, text, copy routine, perf."""
