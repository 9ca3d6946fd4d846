"""The YAML-subset reader the rule-file checks rely on reads what they need and refuses what it cannot read."""

from __future__ import annotations

import pytest

from tests.observability.yaml_subset import YamlSubsetError, load

SAMPLE = """\
# a comment
groups:
  - name: g
    rules:
      - alert: A
        expr: |
          sum(x)
          > 1
        for: 5m
        labels:
          severity: "critical"
        annotations:
          description: >-
            folded
            text
  - name: h
    rules:
      - record: r
        expr: y
"""


class TestYamlSubset:
    def test_reads_nested_mappings_sequences_and_block_scalars(self) -> None:
        """Mappings, sequences of mappings, literal and folded block scalars and quoted scalars come out right."""
        assert load(SAMPLE) == {
            "groups": [
                {
                    "name": "g",
                    "rules": [
                        {
                            "alert": "A",
                            "expr": "sum(x)\n> 1\n",
                            "for": "5m",
                            "labels": {"severity": "critical"},
                            "annotations": {"description": "folded text"},
                        }
                    ],
                },
                {"name": "h", "rules": [{"record": "r", "expr": "y"}]},
            ]
        }

    @pytest.mark.parametrize(
        "text",
        ["a: [1, 2]\n", "a: 1\na: 2\n", "a:\n  b: 1\n c: 2\n", "a: 'open\n", "- x\n- y: 1\n  bad\n"],
    )
    def test_refuses_what_it_cannot_read(self, text: str) -> None:
        """Flow collections, duplicate keys, broken indentation and unterminated quotes raise YamlSubsetError."""
        with pytest.raises(YamlSubsetError):
            load(text)
