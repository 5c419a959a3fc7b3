"""BPF hooks on the read path: build (build.py), plan (plan.py), load/attach (attach.py), what
the kernel permits (probe.py), the header-shared ABI (abi.py), libbpf through ctypes
(binding.py). The programs are in src/readhooks.bpf.c."""
