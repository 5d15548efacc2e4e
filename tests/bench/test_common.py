"""The benchmarks' shared helpers: a git revision given to a before/after benchmark is checked when it is parsed."""

import argparse

import pytest

from bench.common import git_revision


def test_a_known_revision_is_taken_as_given():
    assert git_revision("HEAD") == "HEAD"


@pytest.mark.parametrize("bad", ["nosuchrev", "HEAD~100000", "--output=/tmp/x", ""])
def test_an_unknown_revision_is_refused_with_a_message_not_a_traceback(bad):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a commit of this repository"):
        git_revision(bad)


def test_argparse_turns_the_refusal_into_a_usage_error(capsys):
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--baseline", type=git_revision)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--baseline", "nosuchrev"])
    assert exit_info.value.code == 2
    assert "'nosuchrev' is not a commit of this repository" in capsys.readouterr().err
