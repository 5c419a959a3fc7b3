"""readbench: what a Linux read() costs, where the copy time goes, what a BPF hook adds."""

__version__ = "0.1.0"
