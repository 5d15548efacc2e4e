"""Issue 13 over HTTP: nothing a client sends or a slow dependency does freezes the server or slips harm past it."""

from normalizer.decode import Budget

ISSUE_UNIT = "4.l.i.k.l.3.$.0.a.$.1.o.4.l.a.@.i.i.!.o.o.0.6.|.1.!.|.|.4.t.t.t.3.!.!.!.o.7.@.t zz "


def test_control_characters_do_not_hide_algospeak(client):
    """Finding 6: 'go un\\u0001alive yourself' was safe with no algospeak; 'k\\u0000ill yourself' lost severity."""
    body = client.post("/moderate", json={"text": "go un\u0001alive yourself"}).json()
    assert body["algospeak_detected"] and body["normalized_text"] == "go kill yourself"
    assert body["classification"] == client.post("/moderate", json={"text": "go unalive yourself"}).json()["classification"]
    hidden = client.post("/moderate", json={"text": "k\u0000ill yourself"}).json()
    plain = client.post("/moderate", json={"text": "kill yourself"}).json()
    assert hidden["normalized_text"] == "kill yourself"
    assert hidden["classification"] == plain["classification"]


def test_the_spaced_leet_input_answers_promptly(client):
    """Finding 1: at 5,000 characters (this server's limit) the issue's input took about 19 s; now milliseconds."""
    text = (ISSUE_UNIT * 100)[:5_000]
    response = client.post("/moderate", json={"text": text})
    assert response.status_code == 200
    assert response.json()["stage1_status"] == "ok"
    assert response.elapsed.total_seconds() < 2


def test_a_degraded_normalization_is_reported(client, monkeypatch):
    monkeypatch.setattr(Budget, "for_text", staticmethod(lambda length: Budget(0)))
    body = client.post("/moderate", json={"text": "k 1 l l them all"}).json()
    assert body["stage1_status"] == "degraded"
    assert body["normalized_text"] == "k 1 l l them all"
