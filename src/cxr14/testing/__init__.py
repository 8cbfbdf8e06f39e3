"""Helpers that the tests (``tests/``) and the benchmarks (``bench/``) share, so that neither
imports the other: running the workflow on a tiny configuration (``workflow``), hang guards
for the commands they run (``hangguard``) and a real one-node SLURM cluster (``slurm``)."""
