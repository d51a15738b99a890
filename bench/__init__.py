"""Benchmark scripts: retrieval quality (nDCG, recall) and latency. Not part of the library."""
