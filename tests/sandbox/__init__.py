"""Tests of the sandbox API (worker.sandbox) and its process controller."""
