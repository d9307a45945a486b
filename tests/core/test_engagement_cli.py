"""The engagement command line: ``engagement evaluate`` prints a table of both populations
and then one JSON line, and refuses sizes it cannot evaluate."""

from __future__ import annotations

import argparse
import json

import pytest

from core.cli import engagement


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core")
    engagement.add_commands(p.add_subparsers(dest="command", required=True))
    return p


def test_evaluate_prints_a_table_then_one_json_line(capsys):
    args = parser().parse_args(["engagement", "evaluate", "--athletes", "600", "--weeks", "30", "--seed", "2"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert set(report["populations"]) == {"development", "untuned"}
    assert (report["athletes"], report["weeks"], report["seed"]) == (600, 30, 2)
    table = "\n".join(lines[:-1])
    for word in ("population development", "population untuned", "baseline", "logistic", "boosting", "chosen",
                 "reliability"):
        assert word in table


@pytest.mark.parametrize("argv", [["--weeks", "10"], ["--athletes", "5"], ["--athletes", "many"]])
def test_evaluate_refuses_sizes_it_cannot_evaluate(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["engagement", "evaluate", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "must be from" in err or "is not a whole number" in err
