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


@pytest.mark.parametrize("argv", [["--weeks", "10"], ["--athletes", "5"], ["--athletes", "many"], ["--seed=-5"],
                                  ["--seed", str(2**40)], ["--seed", "\u0663"]])
def test_evaluate_refuses_sizes_it_cannot_evaluate(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["engagement", "evaluate", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "must be from" in err or "is not a whole number" in err


def test_evaluate_refuses_a_population_too_large_for_memory_before_generating_it(capsys):
    """Each size within its range, but together tens of GB: one line, nothing generated."""
    args = parser().parse_args(["engagement", "evaluate", "--athletes", "100000", "--weeks", "53"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "python -m core engagement evaluate: --athletes times --weeks must be at most 5,200,000 (about 4 GB of "
        "memory), not 5,300,000"]
