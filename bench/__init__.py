"""The benchmark harness (`scripts/bench`) and the measurements other helpers ran; see bench/README.md."""
