"""Checks of the deployment artefacts (Dockerfile, Helm chart) that need no Docker engine and no cluster."""
