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
        ("kiiiillllsss", "kills", "repetition"),  # three stretched runs, read as one, two and one letters
        ("i will kiiiilllll you", "i will kill you", "repetition"),
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
    with pytest.raises(TypeError, match="normalize\\(\\) takes a str, not bytes"):
        mini.normalize(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["un-alive_them", "x_un-alive"])
def test_an_underscore_joins_a_symbol_form_to_its_neighbour(mini, text):
    assert mini.normalize("un-alive them").text == "kill them"
    assert mini.normalize(text).text == text  # one identifier, not the form "un-alive"


def test_a_word_replacing_a_symbol_does_not_fuse_with_its_neighbours(mini):
    result = mini.normalize("❄eee")
    assert result.text == "cocaine eee"  # not "cocaineeee", which a second pass reads as a stretched "cocaine"
    assert mini.normalize(result.text).text == result.text


def test_the_json_a_user_gets_names_every_rewrite_exactly(mini):
    """NormalizationResult.as_dict is what `python -m normalizer` prints and the API returns as `matches`:
    every key, offsets in both texts, and the open vocabulary's reading (a stretched word) with its category."""
    assert mini.normalize("i will k1ll you").as_dict() == {
        "original_text": "i will k1ll you", "normalized_text": "i will kill you", "algospeak_detected": True,
        "matches": [{"start": 7, "end": 11, "norm_start": 7, "norm_end": 11, "original": "k1ll", "replacement": "kill",
                     "meaning": "kill", "entry_id": "violence.unalive", "rule": "decode", "techniques": ["leetspeak"],
                     "category": "violence", "severity": 3, "action": "rewrite"}],
        "pattern_db_version": "0.0.1",
    }  # fmt: skip
    [match] = mini.normalize("kiiiillllsss").as_dict()["matches"]
    assert match == {"start": 0, "end": 12, "norm_start": 0, "norm_end": 5, "original": "kiiiillllsss",
                     "replacement": "kills", "meaning": "kills", "entry_id": "open_vocabulary.violence",
                     "rule": "decode", "techniques": ["repetition"], "category": "violence", "severity": 1,
                     "action": "rewrite"}  # fmt: skip
    two = mini.normalize("k1ll and k i l l").as_dict(max_matches=1)
    assert [m["original"] for m in two["matches"]] == ["k1ll"] and two["matches_omitted"] == 1


@pytest.mark.parametrize(
    "text, expected, matches",
    [
        ("he wants to unalive them", "he wants to kill them", [("unalive", "kill", "pattern", "rewrite", 12, 19, 12, 16)]),
        ("you k1lled it today and unalive them", "you k1lled it today and kill them",
         [("k1lled it", "k1lled it", "safe_context", "protect", 4, 13, 4, 13),
          ("unalive", "kill", "pattern", "rewrite", 24, 31, 24, 28)]),
        ("dying to know", "dying to know", [("dying to know", "dying to know", "safe_context", "protect", 0, 13, 0, 13)]),
        ("seggs and corn site", "sex and corn site",
         [("seggs", "sex", "pattern", "rewrite", 0, 5, 0, 3), ("corn", "corn", "pattern", "annotate", 10, 14, 8, 12)]),
        ("got ❄️ for tonight", "got cocaine for tonight", [("❄️", "cocaine", "pattern", "rewrite", 4, 6, 4, 11)]),
        ("fu(k 1488", "fuck white supremacist slogan",
         [("fu(k", "fuck", "decode", "rewrite", 0, 4, 0, 4),
          ("1488", "white supremacist slogan", "pattern", "rewrite", 5, 9, 5, 29)]),
        ("born in 1488", "born in 1488", []),  # the context forbids it
        ("she unalived kiiiilllll", "she killed kill",
         [("unalived", "killed", "pattern", "rewrite", 4, 12, 4, 10),
          ("kiiiilllll", "kill", "decode", "rewrite", 13, 23, 11, 15)]),
    ],
)
def test_each_match_says_which_rule_found_it_and_where_in_both_texts(mini, text, expected, matches):
    """What a reviewer reads in `matches`: the rule (a database pattern, a decoding, a protected safe context),
    the action, and the offsets in the original and in the normalized text, which must point at the same words."""
    result = mini.normalize(text)
    got = [(m.original, m.replacement, m.rule, m.action, m.start, m.end, m.norm_start, m.norm_end)
           for m in result.matches]
    assert (result.text, got) == (expected, matches)
    for m in result.matches:
        assert text[m.start : m.end] == m.original and result.text[m.norm_start : m.norm_end] == m.replacement


@pytest.mark.parametrize(
    "db, text, expected, matches",
    [
        # a separator between single letters is spacing, not an inserted character
        ("mini", "s·e·x", "sex", [("s·e·x", "sex", "sexual.seggs", "decode", ["spacing"], "sexual", 1, 0, 5, 0, 3)]),
        ("product", "i will kiiiilllll you", "i will kill you",
         [("kiiiilllll", "kill", "violence.kil", "pattern", ["repetition", "misspelling"], "violence", 2, 7, 17, 7, 11)]),
        ("product", "lol suicide$ ok", "lol suicide$ ok", []),  # a known word with a trailing symbol: not "suicides"
        ("mini", "$3x work", "sex work", [("$3x", "sex", "sexual.seggs", "decode", ["leetspeak"], "sexual", 1, 0, 3, 0, 3)]),
        ("mini", "what the f*ck", "what the fuck",  # a masked letter is masking, not leetspeak
         [("f*ck", "fuck", "profanity.fuck", "decode", ["masking"], "profanity", 1, 9, 13, 9, 13)]),
        # the open vocabulary: a harmless word is read with severity 0, a harmful one with its category
        ("mini", "s3wer", "sewer", [("s3wer", "sewer", "open_vocabulary.none", "decode", ["leetspeak"], "none", 0, 0, 5, 0, 5)]),
        ("mini", "$tupid", "stupid",
         [("$tupid", "stupid", "open_vocabulary.harassment", "decode", ["leetspeak"], "harassment", 1, 0, 6, 0, 6)]),
        ("mini", "1488", "white supremacist slogan",
         [("1488", "white supremacist slogan", "hate.code_1488", "pattern", ["code_number"], "hate", 3, 0, 4, 0, 24)]),
        ("product", "run `x = a1 + b2` then `k1ll -9`", "run `x = a1 + b2` then `k1ll -9`",
         [("k1ll -9", "k1ll -9", "safe_context.kill_process", "safe_context", ["safe_context"], "safe_context", 0,
           24, 31, 24, 31)]),
        ("mini", "going on 🤢🤥❄️ #Hollyweird", "going on 🤢🤥cocaine #Hollyweird",
         [("❄️", "cocaine", "drugs.snow_emoji", "pattern", ["emoji"], "drugs", 2, 11, 13, 11, 18)]),
        ("mini", "THINKING OF SÜEYSIDE", "THINKING OF suicide",
         [("SÜEYSIDE", "suicide", "self_harm.suicide_plain", "pattern", ["unicode_style", "misspelling"], "self_harm", 3,
           12, 20, 12, 19)]),
    ],
)
def test_what_each_reading_is_reported_as(request, db, text, expected, matches):
    """The entry, rule, techniques, category and severity a reviewer sees for each rewrite, with its offsets."""
    result = request.getfixturevalue(db).normalize(text)
    got = [(m.original, m.replacement, m.entry_id, m.rule, list(m.techniques), m.category, m.severity, m.start, m.end,
            m.norm_start, m.norm_end) for m in result.matches]
    assert (result.text, got) == (expected, matches)


def test_offsets_point_at_the_same_words_in_both_texts_when_symbols_touch(mini):
    result = mini.normalize("h@teİ❄sui.cide🔫")
    assert result.text == "h@teİ cocaine suicide🔫"
    assert [m.original for m in result.matches] == ["❄", "sui.cide"]
    for m in result.matches:
        assert result.original[m.start : m.end] == m.original
        assert result.text[m.norm_start : m.norm_end] == m.replacement


# ---------------------------------------------------------------- the generic decoder, one token or text at a time
# (normalizer.decode). Through `normalize` the open-vocabulary reading often reaches the same word by another path,
# so these pin what the decoder itself finds: the candidate spans and the known word a token decodes to.


@pytest.mark.parametrize(
    "text, spaced, tokens",
    [
        ("s3wer sl1de", [], [(0, 5), (6, 11)]),  # each token ends at its own last character, not past the space
        ("k.1.l.l and k1ll", [(0, 7)], [(12, 16)]),  # the "1" inside the spaced run is the run's; "k1ll" after it counts
        ("hi @k1ller and k1ll", [], [(15, 19)]),  # an @mention is a handle, not a word; the token after it counts
        ("@k1ll", [], []),
        ("@ss", [], [(0, 3)]),  # too short for a handle
        ("zzz", [], [(0, 3)]),  # a letter written three times is a candidate (stretched)
        ("hello world", [], []),
    ],
)
def test_the_candidates_are_the_tokens_and_spaced_runs_worth_decoding(text, spaced, tokens):
    from normalizer.decode import find_candidates

    assert find_candidates(text) == (spaced, tokens)


@pytest.mark.parametrize(
    "token, expected",
    [
        ("f*ck", ("fuck", ["masking"], 4)),  # a masked vowel is masking, not leetspeak
        ("k!ll!", ("kill", ["leetspeak"], 4)),  # the trailing "!" is punctuation, outside the 4 characters covered
        ("$3x", ("sex", ["leetspeak"], 3)),  # as many digits as letters still reads as a word
        ("kiiill", ("kill", ["repetition"], 6)),  # a letter written exactly three times is stretched
        ("k||||||", ("kill", ["leetspeak", "repetition"], 7)),  # 2**6 = 64 readings: all of them are tried
        ("k" + "!" * 37 + "ll", ("kill", ["leetspeak", "repetition"], 40)),  # the longest token decoded: 40
        ("k" + "!" * 38 + "ll", None),  # 41 characters: not a word
        ("k111", None),  # more digits than letters: an ID, not "kill"
        ("*nalive", None),  # a leading "*" is decoration, not a masked "u"
        ("kill", None),  # a known term stays itself
        ("e*3", None),
    ],
)
def test_what_one_token_decodes_to(mini, token, expected):
    from normalizer.decode import decode_token

    assert decode_token(token, mini._known) == expected


def test_three_stretched_runs_are_read_in_every_combination_of_one_and_two_letters():
    from normalizer.decode import decode_token

    # "kills": the i read once, the l twice, the s once; not only "kils" or "kiillss".
    assert decode_token("kiiiillllsss", {"kills": ("form", None)}) == ("kills", ["repetition"], 12)


def test_a_token_with_over_64_readings_is_read_only_with_each_characters_first_letter():
    from normalizer.decode import decode_token

    # Three "*", five vowels each: 125 readings. Only the first ("a" for each) is tried.
    assert decode_token("b*n*n*", {"banana": ("form", None)}) == ("banana", ["masking"], 6)
    assert decode_token("b*n*n*", {"bonono": ("form", None)}) is None


def test_a_known_three_letter_word_with_a_trailing_symbol_stays_itself(product):
    """"bud$" is the word "bud" and a dollar sign, not "buds" (the product database knows both)."""
    from normalizer.decode import decode_token

    assert product._known["bud"][0] != "part" and "buds" in product._known
    assert decode_token("bud$", product._known) is None


@pytest.mark.parametrize("text", ["S K I L L", "s.k.i.l.l", "p.a.s.s", "my t h e r a p i s t is great",
                                  "c.o.c.k.t.a.i.l", "a s s e t s", "h.e.l.l.o", "m-a-s-s-a-g-e"])
def test_a_spelled_out_ordinary_word_is_not_read_as_the_harm_word_inside_it(product, text):
    """"S K I L L" once read "S kill" (extremely harmful) and "t h e r a p i s t" "t h e rapist": the longest known
    word inside the run won even when the whole run spells an ordinary word."""
    result = product.normalize(text)
    assert result.text == text and not result.matches


@pytest.mark.parametrize("text, expected", [("k i l l yourself", "kill yourself"), ("a s s", "ass"),
                                            ("k i l l e r s", "killers"), ("m u r d e r s", "murders"),
                                            ("k.i.l.l.e.r", "killer"), ("s u i c i d e", "suicide"),
                                            ("k—i—l—l you", "kill you"), ("k–i–l–l", "kill"), ("k‐i‐l‐l", "kill"),
                                            ("pages 3–5 and 7—9", "pages 3–5 and 7—9")])
def test_a_spelled_out_harm_word_is_still_read(product, text, expected):
    assert product.normalize(text).text == expected


@pytest.mark.parametrize("text", ["10 kms tonight", "we biked 40 kms today", "only 2.5kms to go"])
def test_a_distance_in_kms_is_not_kill_myself(product, text):
    result = product.normalize(text)
    assert result.text == text
    assert [m.as_dict()["entry_id"] for m in result.matches] == ["safe_context.distance_kms"]
    assert product.normalize("ugh kms i hate everything").text == "ugh kill myself i hate everything"
    assert product.normalize("i want 2 kms").text == "i want 2 kill myself"  # a lone 2 or 4 is "to", "for"


@pytest.mark.parametrize("text, expected, technique", [("he is a tеrrоrіst", "he is a terrorist", "homoglyph"),
                                                       ("buy ｍｅｔｈ here", "buy meth here", "unicode_style"),
                                                       ("buy 𝐦𝐞𝐭𝐡 here", "buy meth here", "unicode_style")])
def test_a_harm_word_that_only_unicode_folding_reveals_is_read_like_its_leet_form(product, text, expected, technique):
    """"t3rr0r1st" was read and flagged, "tеrrоrіst" (Cyrillic е, о, і) and "ｍｅｔｈ" were not: look-alike and styled
    letters revealed only the database's own words, not the open vocabulary's harm words."""
    result = product.normalize(text)
    assert result.text == expected
    [match] = [m.as_dict() for m in result.matches]
    assert match["entry_id"].startswith("open_vocabulary.") and technique in match["techniques"]
    assert product.normalize("hello ｗｏｒｌｄ").text == "hello ｗｏｒｌｄ"  # an ordinary word stays as written
