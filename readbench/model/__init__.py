"""The model of a run: workloads, hook names, matrix, the manifest schema. Pure."""
