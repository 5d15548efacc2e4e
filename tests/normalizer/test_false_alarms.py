"""Stage 1 on real safe texts from shared/data: rewrites must stay rare (README states the measured rate)."""

import pytest

from bench.false_alarms import false_alarm_report, safe_texts


@pytest.mark.shared_data
@pytest.mark.slow
def test_few_real_safe_texts_are_rewritten(product):
    texts = safe_texts()
    assert len(texts) >= 2000
    report = false_alarm_report(product, texts)
    print(f"\n{report['rewritten']} of {report['safe_texts']} safe texts rewritten ({report['rate']:.2%})")
    assert report["rate"] < 0.03, report["top_entries"]
    # No single entry may account for a large share of safe texts: that would be an ordinary word.
    assert all(count < 0.01 * len(texts) for _, count in report["top_entries"]), report["top_entries"]
