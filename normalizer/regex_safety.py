"""Database regular expressions: checked, then compiled for an engine with a linear-time guarantee (RE2).

The database is loaded from a file people edit, and its patterns search user text, so neither a pattern nor a
text may make matching slow. Patterns are compiled with RE2 (`google-re2`), which matches in time linear in the
text whatever the pattern: no backtracking, hence no lookarounds and no backreferences (refused with RE2's
reason). `\\w`, `\\d` and `\\b` are ASCII in RE2; the matcher holds a `\\b` at either end of a pattern to the
Unicode word rule, as Python's `re` would.

Before compiling, a pattern is also checked statically (parsed, never run), and refused when it would backtrack
catastrophically in a backtracking engine (Python's `re`, which the database once used, or any tool people test
patterns with): a repeat inside an unbounded repeat, nested repeats allowing more than 20 repetitions together
(`(?:[bc]{1,20}){1,20}`), an alternation inside a repeat, more than one unbounded repeat, backreferences. Nothing
here runs Python's `re` on a candidate, so checking a file can never hang; RE2 then searches adversarial inputs of
up to 20,000 characters under a time budget, which it meets in linear time.
"""

from __future__ import annotations

import re
import time

import re2

try:  # Python >= 3.11
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
_BOUNDED_LIMIT = 20  # {0,20} is treated as bounded; {0,1000} is not


class UnsafePatternError(ValueError):
    pass


def _contains_branch(items) -> bool:
    for op, arg in items:
        if op == _c.BRANCH:
            return True
        if op == _c.SUBPATTERN and _contains_branch(arg[-1]):
            return True
        if op in _REPEATS and _contains_branch(arg[2]):
            return True
        if op in (_c.ASSERT, _c.ASSERT_NOT) and _contains_branch(arg[1]):
            return True
    return False


def _flatten(items):
    """Every (op, arg) in a parsed pattern, nested ones included."""
    for op, arg in items:
        yield op, arg
        if op == _c.SUBPATTERN:
            yield from _flatten(arg[-1])
        elif op in _REPEATS:
            yield from _flatten(arg[2])
        elif op == _c.BRANCH:
            for branch in arg[1]:
                yield from _flatten(branch)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            yield from _flatten(arg[1])


def _walk(items, depth_unbounded: int, found: list[str], counter: list[int], enclosing: int = 1) -> None:
    """`enclosing`: how many times the enclosing repeats together allow this part to repeat."""
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            unbounded = hi is _c.MAXREPEAT or hi > _BOUNDED_LIMIT
            if hi is _c.MAXREPEAT or hi > 1:
                if _contains_branch(sub):  # (?:k|kk){1,20} backtracks exponentially even when bounded
                    found.append("an alternation inside a repeat")
            if unbounded:
                counter[0] += 1
                if depth_unbounded:
                    found.append("a repeat nested inside an unbounded repeat")
            elif hi > 1 and enclosing > 1 and enclosing * hi > _BOUNDED_LIMIT:
                # (?:[bc]{1,20}){1,20}: 400 ways to split one run, tried one after another on a failing input
                found.append(f"nested repeats allowing {enclosing * hi} repetitions together (at most {_BOUNDED_LIMIT})")
            _walk(sub, depth_unbounded + (1 if unbounded else 0), found, counter,
                  enclosing * (hi if not unbounded and hi > 1 else 1))  # fmt: skip
        elif op == _c.SUBPATTERN:
            _walk(arg[-1], depth_unbounded, found, counter, enclosing)
        elif op == _c.BRANCH:
            for branch in arg[1]:
                _walk(branch, depth_unbounded, found, counter, enclosing)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            _walk(arg[1], depth_unbounded, found, counter, enclosing)
        elif op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            found.append("a backreference")
        if depth_unbounded and op in _REPEATS and arg[1] is not _c.MAXREPEAT and arg[1] > 1:
            found.append("a repeat nested inside an unbounded repeat")


_ADVERSARIAL_UNITS = ("a", "a ", "1", "aA1!", "\u0430", ". ")


def linear_options() -> re2.Options:
    """RE2, case-insensitive (as the database's forms are), with a bounded program size."""
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = 8 << 20
    return options


def compile_linear(pattern: str):
    """`pattern` compiled by RE2 (re2.error when RE2 cannot: lookarounds, backreferences, too large)."""
    return re2.compile(pattern, linear_options())


def check_pattern(pattern: str, budget_seconds: float = 0.25):
    """The RE2 compilation of `pattern` if it is safe; raise UnsafePatternError saying why not."""
    try:
        parsed = _p.parse(pattern, re.IGNORECASE)
    except re.error as exc:
        raise UnsafePatternError(f"not a valid regular expression: {exc}") from exc
    except RecursionError:
        raise UnsafePatternError("not a valid regular expression: nested too deeply") from None
    found: list[str] = []
    counter = [0]
    _walk(list(parsed), 0, found, counter)
    if counter[0] > 1:
        found.append(f"{counter[0]} unbounded repeats (at most one is allowed)")
    if found:
        raise UnsafePatternError("can backtrack catastrophically: " + "; ".join(sorted(set(found))))
    try:
        compiled = compile_linear(pattern)
    except re2.error as exc:
        raise UnsafePatternError(f"not supported by the linear-time engine (RE2: no lookarounds or backreferences): {exc}") from exc
    # RE2 is linear in the text; this confirms the program is small enough to be fast on long adversarial inputs.
    literals = sorted({chr(arg).lower() for op, arg in _flatten(list(parsed)) if op == _c.LITERAL and arg < 0x110000})
    units = [*_ADVERSARIAL_UNITS, *literals, "".join(literals)] if literals else list(_ADVERSARIAL_UNITS)
    started = time.perf_counter()
    for unit in units:
        probe = (unit * (20_000 // len(unit) + 1))[:20_000] + "!"
        compiled.search(probe)
        if time.perf_counter() - started > budget_seconds * 4:
            raise UnsafePatternError(f"too slow on {len(probe)}-character adversarial inputs")
    return compiled
