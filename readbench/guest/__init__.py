"""Guest runs: readbench inside a QEMU guest booted with a chosen kernel and CPU model."""
