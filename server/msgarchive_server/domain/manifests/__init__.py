"""Manifests: a tamper-evident index of every acknowledged copy (issue 11)."""
