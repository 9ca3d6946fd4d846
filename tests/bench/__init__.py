"""The benchmark harness smoke run (bench/run.py --smoke): it completes and accounts for every event."""
