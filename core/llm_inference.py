"""The Stage 2 inference core: one-pass label scoring, shared by every way the tuned model is served.

Used by
- the SageMaker Hugging Face PyTorch inference container: `deployment/inference.py` (the container's entry point,
  packaged as `code/inference.py` in the model archive) calls it from `model_fn` and `predict_fn`; this file
  ships beside it as `code/core/llm_inference.py` (with the rest of `core/` it imports);
- `deployment/local_server.py`, which speaks the container contract (`GET /ping`, `POST /invocations`) on one
  machine;
- the moderator's in-process `transformers` backend (`classifiers/transformers.py`) and the `sagemaker`
  backend's answer check (`validate_response`).
It lives in `core/` because all of them import it from below: it imports only `core/` modules.

Scoring. The prompt is built by `core.prompt.PromptEncoder`, exactly as in training, and ends where the model
writes its answer. One forward pass gives the logits at that position; the softmax over the four labels' first
tokens is the answer (the labels' first tokens differ: `PromptEncoder` checks it when the model loads). The
probability mass those four tokens had under the full-vocabulary softmax is reported too (`label_mass`): a tuned
model puts nearly all of it there, so a low mass means the model is not answering the question it was tuned on.
This is about 8x faster than generating the label token by token and parsing it, and gives calibrated scores.
The same pass reads the harm categories (core.prompt: the category field's placeholders sit at fixed places in
the prompt): for each category, the softmax over " yes" and " no" at the position before its placeholder is
its probability (independent per category).

Batching: texts are sorted by length, cut into batches of `batch_size`, padded (either side works: positions
come from the attention mask and each row is read at its own last real token) and put back in request order.
On a GPU the model runs in bf16 where the GPU supports it natively, else fp16 (a T4); every batch is checked for
finite output. An artifact whose training_config.json records another transformers major than the running one
is refused at load (the saved files do not load correctly across majors).

Artifacts this loads (a directory):
- a full model (`config.json` + weights + tokenizer), e.g. a base model or `training/base_models.py`'s output;
- a training output with a `merged/` full fp16 model inside (preferred when present);
- a PEFT adapter (`adapter_config.json`): the base model comes from the `base_model` argument, else
  `training_config.json`'s `base_model`, else the adapter's `base_model_name_or_path`; it is merged at load.
`labels.json` ({"labels", "label_first_token_ids", "categories", "category_answer_token_ids"}), when present,
must agree with this code's LABELS, CATEGORIES and the tokenizer: an artifact trained for other labels or
categories, or before the prompt carried the category field (no "categories"), is refused. `training_config.json`'s `max_length` is used.

JSON contract (content type application/json):
    request   {"inputs": "one text"} | {"inputs": ["text", ...]}      ("texts"/"text" accepted as aliases)
    response  {"labels": [...LABELS], "model_version": "...",
               "predictions": [{"label": "safe", "scores": {label: p, ...}, "label_mass": 0.97,
                                "categories": {category: p, ...}}, ...]}
`predictions` is always a list, one per text, in request order, whatever the request's shape. `categories` is
either on every prediction (CATEGORIES, each a probability) or on none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.categories import CATEGORIES
from core.labels import LABELS
from core.prompt import PromptEncoder
from core.scores import ClassifierError, check_categories, check_scores

log = logging.getLogger("core.llm_inference")

JSON = "application/json"
DEFAULT_MAX_LENGTH = 512
# SageMaker ends a real-time invocation at 60 s. A T4 scores about 64 short texts in 2-3 s with the 3B model in fp16
# and long texts cost more: 256 texts stay well inside the limit (1,024 could pass it).
MAX_TEXTS_PER_REQUEST = 256


class BadRequest(ValueError):
    """The request body does not follow the JSON contract (the servers answer 400)."""


@dataclass
class Prediction:
    scores: dict[str, float]  # softmax over the labels' first tokens, in LABELS order
    label_mass: float  # the probability the full-vocabulary softmax gave those four tokens together
    categories: dict[str, float] | None = None  # P(yes) of each category's answer, in CATEGORIES order

    @property
    def label(self) -> str:
        return max(self.scores, key=self.scores.__getitem__)

    def as_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "scores": self.scores, "label_mass": self.label_mass}
        if self.categories is not None:
            out["categories"] = self.categories
        return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ClassifierError(f"cannot read {path}: {exc}") from exc


def resolve_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _bf16_native(torch) -> bool:
    """True when the current GPU computes in bf16 natively (Ampere and later). torch's default answer counts
    emulation as support, which would pick bf16 on a T4; emulated bf16 is slow, so it does not count here."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation (and did not count emulation)
        return bool(torch.cuda.is_bf16_supported())


def resolve_dtype(dtype: str | None, device: str):
    """Unless told: bf16 on a GPU that supports it (fp16's range, so no overflow), fp16 on a GPU without bf16
    (a T4; outputs are checked for finiteness on every batch), fp32 on a CPU."""
    import torch

    if dtype and dtype != "auto":
        try:
            return {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
                    "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}[dtype]
        except KeyError:
            raise ClassifierError(f"unknown dtype {dtype!r}; use auto, float16, bfloat16 or float32") from None
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if _bf16_native(torch) else torch.float16


def _major(version: Any) -> int | None:
    try:
        return int(str(version).strip().split(".")[0])
    except ValueError:
        return None


def check_library_versions(training_config: dict, where: str | Path = "the artifact") -> None:
    """Refuse an artifact saved by another transformers major than the one running here: across majors the
    files are not compatible (transformers 5 writes tokenizer_class "TokenizersBackend", unknown to 4.x, and
    `rope_parameters`, which 4.x ignores, silently serving the model with the default rope_theta 10000).
    An artifact that does not record its versions (training_config.json `versions`) is loaded as is."""
    import transformers

    trained = (training_config.get("versions") or {}).get("transformers") if isinstance(training_config, dict) else None
    trained_major, running_major = _major(trained), _major(transformers.__version__)
    if trained_major is None:
        if trained not in (None, "not installed"):
            log.warning("%s records transformers %r, which is not a version; not checked", where, trained)
        return
    if trained_major != running_major:
        raise ClassifierError(
            f"{where} was trained with transformers {trained} (major {trained_major}) but this process runs "
            f"transformers {transformers.__version__} (major {running_major}); artifacts do not load correctly "
            f"across transformers majors. Serve it with transformers {trained_major}.x (a matching inference "
            "image, or code/requirements.txt pinning the training versions)"
        )


def locate_artifact(model_dir: str | Path, base_model: str | None = None) -> tuple[Path | str, Path | None]:
    """(the full model to load, the adapter to merge into it or None) for a model directory."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ClassifierError(f"model directory {model_dir} does not exist")
    merged = model_dir / "merged"
    if (merged / "config.json").is_file():
        return merged, None
    if (model_dir / "adapter_config.json").is_file():
        base = base_model
        if not base and (model_dir / "training_config.json").is_file():
            base = _read_json(model_dir / "training_config.json").get("base_model")
        if not base:
            base = _read_json(model_dir / "adapter_config.json").get("base_model_name_or_path")
        if not base:
            raise ClassifierError(f"{model_dir} is an adapter but names no base model; pass base_model")
        return base, model_dir
    if (model_dir / "config.json").is_file():
        return model_dir, None
    raise ClassifierError(f"{model_dir} holds neither a model (config.json), a merged/ model nor an adapter")


def _artifact_version(model_dir: Path) -> str:
    """A short content hash of the artifact's small descriptive files and weight-file sizes (cheap, stable)."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:  # the container may compile code/ before asking
            digest.update(str(path.relative_to(model_dir)).encode())
            if path.suffix in (".json", ".txt") and path.stat().st_size < 1_000_000:
                digest.update(path.read_bytes())
            else:
                digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:12]


class LabelScorer:
    """A causal LM that scores LABELS for texts in one forward pass per batch."""

    def __init__(self, model, tokenizer, *, max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 16,
                 version: str = "unversioned", expected_first_ids: Sequence[int] | None = None,
                 expected_category_ids: Sequence[int] | None = None):
        import torch

        self.torch = torch
        self.model = model.eval()
        self.tokenizer = tokenizer
        try:
            self.encoder = PromptEncoder(tokenizer, max_length)  # checks the labels' first tokens differ
        except ValueError as exc:
            raise ClassifierError(str(exc)) from exc
        if expected_first_ids is not None and list(expected_first_ids) != self.encoder.label_first_ids:
            raise ClassifierError(
                f"labels.json records label first tokens {list(expected_first_ids)}, this tokenizer gives "
                f"{self.encoder.label_first_ids}: the artifact's tokenizer is not the one it was trained with"
            )
        if expected_category_ids is not None and list(expected_category_ids) != list(self.encoder.category_answer_ids):
            raise ClassifierError(
                f"labels.json records category answer tokens {list(expected_category_ids)}, this tokenizer gives "
                f"{list(self.encoder.category_answer_ids)}: the artifact's tokenizer is not the one it was trained with"
            )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ClassifierError("the tokenizer has neither a pad nor an eos token")
        self.batch_size = max(1, int(batch_size))
        self.version = version
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self._label_ids = torch.tensor(self.encoder.label_first_ids, device=self.device)
        self._category_ids = torch.tensor(self.encoder.category_answer_ids, device=self.device)
        self._category_offsets = torch.tensor(self.encoder.category_offsets, device=self.device)
        self._lock = threading.Lock()  # one forward pass at a time per model

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dir(cls, model_dir: str | Path, *, base_model: str | None = None, device: str | None = None,
                 dtype: str | None = None, batch_size: int = 16, max_length: int | None = None) -> "LabelScorer":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        model_path, adapter = locate_artifact(model_dir, base_model)
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        meta_dir = model_path if adapter is None and isinstance(model_path, Path) else model_dir
        labels_meta = _read_json(meta_dir / "labels.json") if (meta_dir / "labels.json").is_file() else None
        if labels_meta is None and (model_dir / "labels.json").is_file():
            labels_meta = _read_json(model_dir / "labels.json")
        if labels_meta is not None and tuple(labels_meta.get("labels", ())) != LABELS:
            raise ClassifierError(f"{model_dir}: trained for labels {labels_meta.get('labels')}, "
                                  f"this code expects {list(LABELS)}")
        if labels_meta is not None and tuple(labels_meta.get("categories", ())) != CATEGORIES:
            raise ClassifierError(
                f"{model_dir}: labels.json records categories {labels_meta.get('categories')}, this code expects "
                f"{list(CATEGORIES)}" + ("" if "categories" in labels_meta else
                                         " (the artifact was trained before the prompt carried the category field: "
                                         "retrain it)"))
        training_config = {}
        for candidate in (meta_dir / "training_config.json", model_dir / "training_config.json"):
            if candidate.is_file():
                training_config = _read_json(candidate)
                break
        check_library_versions(training_config, model_dir)
        max_length = max_length or int(training_config.get("max_length") or DEFAULT_MAX_LENGTH)

        tokenizer_dir = meta_dir if (Path(meta_dir) / "tokenizer_config.json").is_file() else model_path
        started = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
            model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch_dtype)
            if adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            model.to(device)
        except ClassifierError:
            raise
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise ClassifierError(f"cannot load the model from {model_dir}: {exc}") from exc
        scorer = cls(model, tokenizer, max_length=max_length, batch_size=batch_size,
                     version=_artifact_version(model_dir),
                     expected_first_ids=labels_meta.get("label_first_token_ids") if labels_meta else None,
                     expected_category_ids=labels_meta.get("category_answer_token_ids") if labels_meta else None)
        scorer.score(["load check"])  # fails here, not on the first request, if fp16 overflows
        log.info("loaded %s (%s%s) on %s as %s in %.1fs", model_dir, model_path,
                 f" + adapter {adapter}" if adapter else "", device, torch_dtype, time.perf_counter() - started)
        return scorer

    # ------------------------------------------------------------------ scoring
    def score(self, texts: Sequence[str]) -> list[Prediction]:
        """One Prediction per text, in order."""
        if not texts:
            return []
        encoded = [self.encoder.prompt_ids(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]), reverse=True)
        out: list[Prediction | None] = [None] * len(texts)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                for i, prediction in zip(rows, self._score_batch([encoded[i] for i in rows])):
                    out[i] = prediction
        return out  # type: ignore[return-value]

    def _score_batch(self, batch: list[list[int]]) -> list[Prediction]:
        torch = self.torch
        width = max(len(ids) for ids in batch)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            span = slice(width - len(ids), width) if left else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(ids)
            mask[row, span] = 1
        # Positions count real tokens only, so left and right padding give the same logits.
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        last = (mask * torch.arange(width)).argmax(1)  # each row's last real token
        input_ids, mask, positions, last = (t.to(self.device) for t in (input_ids, mask, positions, last))
        with torch.inference_mode():
            hidden = self.model.get_decoder()(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                              use_cache=False).last_hidden_state
            rows = torch.arange(len(batch), device=self.device)
            head = self.model.get_output_embeddings()
            logits = head(hidden[rows, last]).float()  # the whole vocabulary only at the answer (for label_mass)
            # each category's answer position: only the " yes" and " no" rows of the output layer are needed
            answer_at = hidden[rows[:, None], last[:, None] - self._category_offsets[None, :]]
            category_logits = (answer_at @ head.weight[self._category_ids].T).float()  # (batch, categories, 2)
            if getattr(head, "bias", None) is not None:
                category_logits = category_logits + head.bias[self._category_ids].float()
            if not (bool(torch.isfinite(logits).all()) and bool(torch.isfinite(category_logits).all())):
                raise ClassifierError(f"the model produced non-finite logits in {self.dtype} "
                                      "(fp16 overflow?); serve it in float32 or bfloat16")
            label_logits = logits[:, self._label_ids]
            probs = torch.softmax(label_logits, dim=-1)
            mass = torch.exp(torch.logsumexp(label_logits, -1) - torch.logsumexp(logits, -1))
            yes = torch.softmax(category_logits, dim=-1)[..., 0]  # P(" yes") per category
        probs_list, mass_list, yes_list = probs.cpu().tolist(), mass.cpu().tolist(), yes.cpu().tolist()
        return [Prediction(dict(zip(LABELS, p)), m, dict(zip(CATEGORIES, c)))
                for p, m, c in zip(probs_list, mass_list, yes_list)]

    # ------------------------------------------------------------------ the slow way (benchmark baseline)
    def generate_labels(self, texts: Sequence[str]) -> list[str | None]:
        """Generate each answer greedily, token by token, and parse the label (None when it is not one)."""
        torch = self.torch
        encoded = [self.encoder.prompt_ids(text) for text in texts]
        new_tokens = max(len(ids) for ids in self.encoder.answer_ids.values())
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(texts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(encoded):  # generation needs left padding
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        with self._lock, torch.inference_mode():
            out = self.model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                      max_new_tokens=new_tokens, do_sample=False,
                                      pad_token_id=self.pad_id)
        answers = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        parsed = []
        for answer in answers:
            word = answer.strip().split()[0] if answer.strip() else ""
            parsed.append(word if word in LABELS else None)
        return parsed


# ---------------------------------------------------------------------------------------- the JSON contract
def parse_request(body: bytes | str, content_type: str | None = JSON) -> list[str]:
    """The texts of a request body; BadRequest when it does not follow the contract."""
    if content_type and content_type.split(";")[0].strip().lower() not in (JSON, "application/x-json"):
        raise BadRequest(f"content type {content_type!r} is not supported; send {JSON}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    if isinstance(data, dict):
        for key in ("inputs", "texts", "text"):
            if key in data:
                data = data[key]
                break
        else:
            raise BadRequest('send {"inputs": "text"} or {"inputs": ["text", ...]}')
    texts = [data] if isinstance(data, str) else data
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest('"inputs" must be a string or a non-empty list of strings')
    if len(texts) > MAX_TEXTS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_TEXTS_PER_REQUEST} texts per request, got {len(texts)}")
    return texts


def render_response(predictions: Sequence[Prediction], version: str) -> dict[str, Any]:
    return {"labels": list(LABELS), "model_version": version,
            "predictions": [p.as_dict() for p in predictions]}


def validate_response(data: Any, expected: int) -> tuple[list[dict[str, float]], list[dict[str, float]] | None]:
    """(label probabilities, category probabilities or None) of a response body, refused (ClassifierError)
    unless they follow the contract: one prediction per text, each with a finite probability for every label,
    summing to 1 (`check_scores`, the rule every backend's answer passes), and `categories` on every prediction
    or on none, each with exactly CATEGORIES and a probability for each (`check_categories`)."""
    if not isinstance(data, dict) or not isinstance(data.get("predictions"), list):
        raise ClassifierError("the endpoint's answer has no predictions list")
    items = data["predictions"]
    scores = check_scores([item.get("scores") if isinstance(item, dict) else None for item in items], expected,
                          "the endpoint")
    carried = [isinstance(item, dict) and "categories" in item for item in items]
    if not any(carried):
        return scores, None
    if not all(carried):
        raise ClassifierError(f"the endpoint answered categories for {sum(carried)} of {len(items)} predictions; "
                              "a category block goes on every prediction or on none")
    return scores, check_categories([item["categories"] for item in items], expected, "the endpoint")

