"""Hand-worked cases of what Stage 1 decodes and, as importantly, what it leaves alone (mini database)."""

import pytest


def decoded(normalizer, text):
    result = normalizer.normalize(text)
    return result.text, [(m.original, m.replacement, m.entry_id, m.techniques) for m in result.matches]


@pytest.mark.parametrize(
    "text, expected, technique",
    [
        ("he wants to unalive them", "he wants to kill them", "euphemism"),
        ("he was UNALIVED", "he was killed", "euphemism"),
        ("thinking about sewer  slide", "thinking about suicide", "phonetic_respelling"),
        ("thinking about s3wer sl1de", "thinking about suicide", "leetspeak"),
        ("i will k1ll you", "i will kill you", "leetspeak"),
        ("$uicide", "suicide", "leetspeak"),
        ("what the f*ck", "what the fuck", "masking"),
        ("k i l l them", "kill them", "spacing"),
        ("k.i.l.l", "kill", "spacing"),
        ("s-u-i-c-i-d-e", "suicide", "spacing"),
        ("kiiiiill", "kill", "repetition"),
        ("k\u0456ll", "kill", "homoglyph"),  # Cyrillic і in a Latin word
        ("k\u200bill", "kill", "character_insertion"),  # zero-width space
        ("ｋｉｌｌ", "kill", "unicode_style"),  # fullwidth
        ("𝐤𝐢𝐥𝐥", "kill", "unicode_style"),  # mathematical bold
        ("got ❄️ for tonight", "got cocaine for tonight", "emoji"),
        ("unal1ve", "kill", "leetspeak"),  # generic decoding feeds the database
        ("k_i_l_l", "kill", "spacing"),
        ("k/i/l/l", "kill", "spacing"),
        ("k•i•l•l", "kill", "spacing"),
        ("i want to k\u0489i\u0489l\u0489l\u0489 him", "i want to kill him", "unicode_style"),  # enclosing marks
        ("k\u20ddi\u20ddl\u20ddl\u20dd", "kill", "unicode_style"),
        ("k!ll!", "kill!", "leetspeak"),  # the last "!" is punctuation and stays
        ("$3x work", "sex work", "leetspeak"),
    ],
)
def test_decodes_to_plain_words(mini, text, expected, technique):
    result = mini.normalize(text)
    assert result.text == expected
    assert result.algospeak_detected
    assert any(technique in m.techniques for m in result.matches)


@pytest.mark.parametrize(
    "text",
    [
        "price $100 in 2024 at 10am",
        "order #A1B2C3 ships from 40.7128, -74.0060",
        "sooo good, hmmm, zzz",
        "my keys are in the car",
        "acorn squash and sweetcorn",
        "we grew corn this summer",
        "in 1488 the ship sailed",
        "call 14880 now",
        "the sewer is blocked",
        "I am a b c d student",
        "S3 buckets and EC2",
        "кошка спит",  # Russian stays Russian: look-alikes fold only in mixed-script words
        "José's café",
    ],
)
def test_leaves_ordinary_text_alone(mini, text):
    result = mini.normalize(text)
    assert result.text == text
    assert not result.algospeak_detected


@pytest.mark.parametrize("text", ["lol suicide$ ok", "*kill*", "what the fuck!", "he got killed!!"])
def test_plain_words_next_to_symbols_stay(mini, text):
    assert mini.normalize(text).text == text


def test_context_rule_annotates_without_rewriting(mini):
    result = mini.normalize("she is a corn star now")
    assert result.text == "she is a corn star now"
    [match] = result.matches
    assert (match.entry_id, match.action, match.meaning) == ("sexual.corn", "annotate", "porn")
    assert result.algospeak_detected


def test_safe_context_is_resolved_first(mini):
    result = mini.normalize("you killed it at work, dying to see you")
    assert result.text == "you killed it at work, dying to see you"
    assert [m.action for m in result.matches] == ["protect", "protect"]
    assert not result.algospeak_detected


def test_match_spans_point_into_both_texts(mini):
    text = "ok so s3wer sl1de and unalive, then ｋｉｌｌ"
    result = mini.normalize(text)
    assert result.text == "ok so suicide and kill, then kill"
    for m in result.matches:
        assert text[m.start : m.end] == m.original
        assert result.text[m.norm_start : m.norm_end] == m.replacement
    assert [m.entry_id for m in result.matches] == ["self_harm.sewer_slide", "violence.unalive", "violence.unalive"]


def test_inflected_replacement(mini):
    assert mini.normalize("they got unalived").text == "they got killed"


def test_regex_entries_join_the_matcher(mini):
    assert decoded(mini, "thinking of sueyside")[0] == "thinking of suicide"
    assert decoded(mini, "the seaside")[1] == []


def test_rejects_non_text(mini):
    with pytest.raises(TypeError):
        mini.normalize(b"bytes")  # type: ignore[arg-type]


def test_a_word_replacing_a_symbol_does_not_fuse_with_its_neighbours(mini):
    result = mini.normalize("❄eee")
    assert result.text == "cocaine eee"  # not "cocaineeee", which a second pass reads as a stretched "cocaine"
    assert mini.normalize(result.text).text == result.text
