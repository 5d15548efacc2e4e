"""Finding 6 of issue 13: control and format characters are removed before matching (by the API's own
invisible-character rule), with offsets kept so every match span still points into the original text."""

import unicodedata

import pytest

from normalizer.unicode import canonicalize, is_invisible
from tests.normalizer.test_properties import check_invariants


def _api_invisible() -> list[str]:
    """Every non-whitespace character the API's emptiness rule (main.VISIBLE) does not count as visible."""
    from main import _VISIBLE_RE

    return [chr(cp) for cp in range(0x110000) if not (0xD800 <= cp <= 0xDFFF)
            and not chr(cp).isspace() and not _VISIBLE_RE.match(chr(cp))]  # fmt: skip


def test_the_api_rule_and_every_format_character_are_invisible():
    api = _api_invisible()
    assert "\x00" in api and "\x01" in api and "\x7f" in api and "\x9f" in api
    assert [c for c in api if not is_invisible(c)] == []
    fmt = [chr(cp) for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cf"]
    assert [c for c in fmt if not is_invisible(c)] == []
    # Whitespace controls separate words (they become a space), they are not removed.
    for char in "\t\n\r\x0b\x0c\x1c\x1f\x85":
        assert not is_invisible(char)
        assert canonicalize(f"a{char}b").text == "a b"


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x1b", "\x7f", "\x80", "\x9f", "\u200b", "\u2061", "\ufff9"])
def test_a_control_or_format_character_inside_a_word_hides_nothing(product, char):
    result = check_invariants(product, f"go un{char}alive yourself")
    assert result.text == "go kill yourself"
    assert result.algospeak_detected
    (match,) = result.matches
    assert (match.start, match.end) == (3, 20)  # the span covers the hidden character in the original
    assert match.original == f"un{char}alive yourself"

    result = check_invariants(product, f"k{char}ill yourself")
    assert result.text == "kill yourself"
    assert result.matches[0].original == f"k{char}ill"
    assert "character_insertion" in result.matches[0].techniques


def test_offsets_survive_leading_trailing_and_repeated_controls(product):
    text = "\x00\x01hey\x02 k\x00\x00i\x1bl\x7fl\x03 you\x04"
    result = check_invariants(product, text)
    assert "kill" in result.text
    (match,) = [m for m in result.matches if m.replacement == "kill"]
    assert text[match.start : match.end] == "k\x00\x00i\x1bl\x7fl\x03"


def test_the_api_answers_the_issue_examples(product):
    """`go un\\u0001alive yourself` was safe with no algospeak; `k\\u0000ill yourself` lost its severity."""
    assert product.normalize("go un\u0001alive yourself").as_dict()["algospeak_detected"] is True
    assert product.normalize("k\u0000ill yourself").text == product.normalize("kill yourself").text


def test_a_rewrite_keeps_the_closing_bidi_mark(product):
    """An override or isolate around a rewritten word stays terminated (issue 13): the closing mark is not
    swallowed by the rewrite, so the rest of the text is not displayed reversed."""
    for text in ["\u202ek1ll\u202c you", "say \u2067unalive\u2069 now", "\u202ek\u202c1ll and more"]:
        out = product.normalize(text).text
        for opening, closing in (("\u202e", "\u202c"), ("\u2067", "\u2069")):
            assert out.count(opening) == text.count(opening)
            assert out.count(closing) == text.count(closing)
        assert "kill" in out
