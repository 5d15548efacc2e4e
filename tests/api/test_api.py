"""The API contract end to end over HTTP, with the shipped model: what a client sees."""

import json
import time

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from core.labels import LABELS
from core.settings import DEFAULT_PATTERN_DB

FIELDS = {
    "request_id", "original_text", "normalized_text", "algospeak_detected", "classification", "scores",
    "confidence", "matches", "stage1_status", "stage2_status", "mock_mode", "model", "latency_ms",
    "raw_classification", "normalized_classification", "evasion_gap", "pattern_db_version",
}  # fmt: skip


def moderate(client, text, **kw):
    response = client.post("/moderate", json={"text": text}, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def test_moderate_returns_the_whole_contract(client):
    response = client.post("/moderate", json={"text": "ppl who say unal1ve should just say it"})
    assert response.status_code == 200
    body = response.json()
    assert FIELDS <= set(body)
    assert body["normalized_text"] == "ppl who say kill should just say it"
    assert body["algospeak_detected"] is True
    assert body["classification"] in LABELS
    assert set(body["scores"]) == set(LABELS)
    assert abs(sum(body["scores"].values()) - 1) < 1e-4
    assert body["mock_mode"] is True and body["model"]["backend"] == "embedded"
    assert body["stage1_status"] == "ok" and body["stage2_status"] == "ok"
    assert body["request_id"] == response.headers["x-request-id"]
    [match] = body["matches"]
    assert body["original_text"][match["start"] : match["end"]] == "unal1ve"
    assert body["normalized_text"][match["norm_start"] : match["norm_end"]] == "kill"


def test_request_id_is_taken_from_the_caller(client):
    response = client.post("/moderate", json={"text": "hello"}, headers={"X-Request-ID": "abc-123"})
    assert response.json()["request_id"] == "abc-123"
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    "text, at_least",
    [
        ("i will find you and k i l l you", "harmful"),
        ("you are a worthless piece of sh1t, go unalive yourself", "harmful"),
        ("shut up you stupid b1tch", "potentially_harmful"),
    ],
)
def test_coded_threats_and_insults_are_flagged(client, text, at_least):
    body = moderate(client, text)
    assert body["algospeak_detected"]
    assert LABELS.index(body["classification"]) >= LABELS.index(at_least), body


@pytest.mark.parametrize("text", ["what a lovely morning, off to the park with the kids", "you killed it at work today!"])
def test_ordinary_texts_are_safe(client, text):
    body = moderate(client, text)
    assert body["classification"] == "safe", body


@pytest.fixture(scope="module")
def scripted_client(server_settings):
    """A server whose classifier scores by exact text: the coded text's raw and decoded readings disagree."""
    from moderator import Moderator
    from normalizer.reload import ReloadingNormalizer
    from tests.api.conftest import LiveServer
    from tests.scripted import EXTREME, SAFE, Scripted

    table = {
        "go k1ll yourself": EXTREME, "go kill yourself": SAFE,  # normalizing would make it look safer
        "i will unal1ve you": SAFE, "i will kill you": EXTREME,  # normalizing reveals it
    }  # fmt: skip
    settings = server_settings.model_copy(update={"prediction_log_url": ""})
    moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), Scripted(table), settings)
    with LiveServer(settings, moderator) as c:
        yield c


@pytest.mark.parametrize("path", ["/moderate", "/moderate/batch"])
@pytest.mark.parametrize(
    "text, normalized_label, raw_label, gap",
    [("go k1ll yourself", "safe", "extremely_harmful", -3), ("i will unal1ve you", "extremely_harmful", "safe", 3)],
)
def test_normalizing_never_makes_a_text_look_safer(scripted_client, path, text, normalized_label, raw_label, gap):
    """The rule decides here: one reading is safe, the other extremely harmful; the answer is the severe one,
    with its scores, and both readings and their gap are reported."""
    if path == "/moderate":
        body = moderate(scripted_client, text)
    else:
        [body] = scripted_client.post(path, json={"texts": [text]}).json()["results"]
    assert body["original_text"] == text and body["normalized_text"] != text
    assert body["classification"] == "extremely_harmful"
    assert body["scores"]["extremely_harmful"] == pytest.approx(0.8)
    assert body["confidence"] == pytest.approx(0.8)
    assert body["normalized_classification"] == normalized_label
    assert body["raw_classification"] == raw_label
    assert body["evasion_gap"] == gap


def test_batch_keeps_order_and_agrees_with_single_calls(client):
    texts = ["have a nice day", "i will unalive you", "seggs work is work", "gr8 game last night"]
    response = client.post("/moderate/batch", json={"texts": texts})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["original_text"] for r in results] == texts
    for text, result in zip(texts, results):
        single = moderate(client, text)
        assert single["classification"] == result["classification"]
        assert single["normalized_text"] == result["normalized_text"]


def test_normalize_is_stage_one_alone(client):
    body = client.post("/normalize", json={"text": "s-u-i-c-i-d-e and sewer slide"}).json()
    assert body["normalized_text"] == "suicide and suicide"
    assert {m["entry_id"] for m in body["matches"]} >= {"self_harm.sewer_slide"}
    assert "classification" not in body


def test_health_ready_and_metrics(client):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    moderate(client, "unalive")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'algospeak_http_requests_total{path="/moderate",status="200"}' in metrics.text
    assert "algospeak_predictions_total" in metrics.text


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/moderate", "/moderate/batch", "/normalize", "/health", "/ready", "/metrics"} <= set(spec["paths"])
    # what a client developer reads: what the service does, and the error answers each endpoint can give
    assert spec["info"]["description"].startswith("Stage 1 decodes coded language (algospeak); Stage 2 labels")
    for path in ("/moderate", "/moderate/batch", "/normalize"):
        assert {"413", "422"} <= set(spec["paths"][path]["post"]["responses"]), path
    assert "503" in spec["paths"]["/moderate"]["post"]["responses"]


def test_the_server_command_line_explains_itself_and_refuses_a_bad_worker_count(capsys):
    """main.py's arguments, in-process (tests/test_cli.py starts it as a user does): --help names the setting
    behind --workers, and a worker count that is not a number stops it with argparse's one-line error."""
    import main

    with pytest.raises(SystemExit) as done:
        main.main(["--help"])
    assert done.value.code == 0
    assert "server processes (default: SERVER_WORKERS; 0 = one per core)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as refused:
        main.main(["--workers", "two"])
    assert refused.value.code == 2 and "invalid int value: 'two'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"text": ""}, 422, "empty"),
        ({"text": "   \n\t "}, 422, "empty"),
        ({"text": 42}, 422, "string"),
        ({"text": None}, 422, "string"),
        ({"text": ["a"]}, 422, "string"),
        ({}, 422, "required"),
        ({"text": "hi", "extra": 1}, 422, "not permitted"),
        ({"text": "x" * 5_001}, 422, "limit is 5000"),
    ],
)
def test_bad_bodies_get_clear_4xx(client, body, status, says):
    response = client.post("/moderate", json=body)
    assert response.status_code == status
    assert says in json.dumps(response.json()["detail"]).lower()
    assert response.json()["request_id"]


def test_invalid_json_and_non_utf8(client):
    for raw in (b'{"text": "unterminated', b"\xff\xfe\x00garbage", b'{"text": "\xff\xfe"}', b"", b"[]"):
        response = client.post("/moderate", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422, (raw, response.status_code, response.text)
        assert response.json()["detail"]


def test_valid_json_the_parser_refuses_is_told_why(client):
    """JSON nested too deeply or with a number of over 4,300 digits is valid JSON that Python's parser refuses: the
    answer says so, instead of calling the body invalid JSON."""
    for raw, why in ((b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
                     (b'{"text": "hi", "n": ' + b"9" * 5000 + b"}", "too many digits")):
        response = client.post("/moderate", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422 and why in response.json()["detail"], (why, response.text)


def test_lone_surrogates_are_refused_not_crashed_on(client):
    response = client.post("/moderate", content=b'{"text": "k\\ud800ill"}', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "surrogate" in response.json()["detail"]


def test_invisible_only_text_is_refused(client):
    response = client.post("/moderate", json={"text": "\u200b\u200b\u2060"})
    assert response.status_code == 422 and "invisible" in response.json()["detail"]


def test_chunked_body_over_the_limit_is_413(client):
    def chunks():
        yield b'{"text": "'
        for _ in range(30):
            yield b"a" * 10_000
        yield b'"}'

    response = client.post("/moderate", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_body_size_limit_is_413(client):
    response = client.post("/moderate", content=b'{"text": "' + b"a" * 300_000 + b'"}', headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_batch_limits(client):
    assert client.post("/moderate/batch", json={"texts": []}).status_code == 422
    too_many = client.post("/moderate/batch", json={"texts": ["hi"] * 17})
    assert too_many.status_code == 422 and "limit is 16" in too_many.json()["detail"]
    one_bad = client.post("/moderate/batch", json={"texts": ["fine", " "]})
    assert one_bad.status_code == 422 and "texts[1]" in one_bad.json()["detail"]


def test_hot_reload_through_the_api(client, live_db):
    original = live_db.read_text(encoding="utf-8")
    try:
        _edit_database_while_serving(client, live_db, original)
    finally:
        live_db.write_text(original, encoding="utf-8")


def _edit_database_while_serving(client, live_db, original):
    assert client.post("/normalize", json={"text": "zorblax"}).json()["algospeak_detected"] is False
    document = json.loads(original)
    document["entries"].append(
        {"id": "violence.zorblax", "forms": ["zorblax"], "replacement": "kill", "technique": "euphemism",
         "category": "violence", "severity": 3, "source": [next(iter(document["sources"]))],
         "examples": {"positive": ["zorblax them"], "negative": []}}
    )  # fmt: skip
    live_db.write_text(json.dumps(document), encoding="utf-8")
    # The reload runs on a background thread (never on a request): the new database is in force shortly after.
    assert _eventually(lambda: client.post("/normalize", json={"text": "zorblax"}).json()["normalized_text"] == "kill")
    live_db.write_text("{ not json", encoding="utf-8")
    assert _eventually(lambda: "not valid JSON" in (client.get("/ready").json()["pattern_db_error"] or ""))
    body = client.post("/normalize", json={"text": "zorblax"}).json()
    assert body["normalized_text"] == "kill"  # the last good database stays in force


def _eventually(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_predictions_are_logged_without_raw_text(client, server_settings):
    moderate(client, "a text that must not be stored verbatim")
    engine = create_engine(server_settings.prediction_log_url)
    for _ in range(50):
        with engine.connect() as conn:
            rows = conn.execute(sql("select * from predictions")).mappings().all()
        if rows:
            break
        time.sleep(0.1)
    assert rows
    assert all("must not be stored" not in json.dumps(dict(r), default=str) for r in rows)


def test_the_schema_states_the_typed_result_with_the_labels_from_labels(client):
    from core.result import ModerationResult

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    result = schemas["ModerationResult"]
    assert list(result["properties"]) == list(ModerationResult.__annotations__) == result["required"]
    assert result["properties"]["classification"]["enum"] == list(LABELS)
    assert schemas["Scores"]["required"] == list(LABELS)
    body = moderate(client, "have a nice day")
    assert list(body) == list(ModerationResult.__annotations__) and list(body["scores"]) == list(LABELS)


def test_head_asks_health_and_readiness_for_their_status_alone(client):
    """Uptime checkers often send HEAD; a 405 there reads as "down"."""
    for path in ("/health", "/ready"):
        answer = client.head(path)
        assert answer.status_code == 200 and answer.content == b""
    assert "head" not in client.get("/openapi.json").json()["paths"]["/health"]
