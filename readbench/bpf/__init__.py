"""BPF hooks on the read path, the Python side: build (build.py), how a hook attaches
(hookplan.py), load/attach/toggle (attach.py, points.py; links.py their shared base), what the
kernel permits (support.py) and why it refuses (refusals.py), the header-shared ABI (abi.py),
libbpf through ctypes (binding.py). The BPF C programs are in bpf/ at the top of the tree."""
