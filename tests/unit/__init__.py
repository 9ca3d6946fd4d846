"""Unit specifications of the pipeline's pure modules: nothing running, no network, no broker."""
