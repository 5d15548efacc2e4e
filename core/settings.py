"""All configuration in one place: environment variables and `.env`, documented in `.env.example`.

Use `get_settings()` (cached) rather than a module-level instance, so importing a module never
needs a full environment. Tests that change the environment call `get_settings.cache_clear()`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATTERN_DB = ROOT / "data" / "dataset" / "algospeak_patterns.json"
DEFAULT_EMBEDDED_MODEL = ROOT / "models" / "embedded" / "model.npz"
DEFAULT_ENCODER_MODEL = ROOT / "models" / "encoder" / "model.npz"

# The classifier backends, named once: classifiers/registry.py builds each, settings accept them.
BACKEND_NAMES: tuple[str, ...] = ("embedded", "encoder", "sagemaker", "transformers")
# The ones that run offline, without the tuned LLM: their answers say mock_mode=true.
OFFLINE_BACKENDS: frozenset[str] = frozenset({"embedded", "encoder"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    # Raw text never reaches logs or the prediction log unless this is on.
    log_text: bool = False

    # --- Stage 1: the normalizer
    pattern_db_path: Path = DEFAULT_PATTERN_DB
    # Seconds between checks of the pattern database file for changes (0 disables hot reload).
    pattern_db_reload_seconds: float = 2.0
    # Where a server keeps a copy of the last database it loaded: a server process (or a moderation child) that
    # starts while the file holds a broken edit serves that copy instead of failing to start. Unset: the server
    # uses a private folder under the system's temp folder (normalizer.reload.default_last_good).
    pattern_db_last_good_path: Path | None = None

    # --- Stage 2: the classifier
    # embedded: the shipped n-gram model (offline). sagemaker: the endpoint. transformers: in-process model.
    # auto: sagemaker when an endpoint name is set, else embedded.
    # encoder: the slower offline tier (n-grams + a sentence encoder; the encoder extra).
    classifier_backend: Literal["auto", *BACKEND_NAMES] = "auto"
    embedded_model_path: Path = DEFAULT_EMBEDDED_MODEL
    encoder_model_path: Path = DEFAULT_ENCODER_MODEL
    sagemaker_endpoint_name: str | None = None
    aws_region: str = "us-east-1"
    # Read timeout (seconds) of one invocation: sized for the 3B model in fp16 on a T4 (about 2-3 s per 64 short
    # texts), under SageMaker's own 60 s; a read timeout is not retried.
    sagemaker_timeout_seconds: float = 8.0
    sagemaker_max_retries: int = 2
    # What to do when the remote classifier fails: answer with the embedded model (and say so), or 503.
    fallback_policy: Literal["embedded", "error"] = "embedded"
    # SageMaker client: connect and read timeouts (seconds), own retries with exponential backoff and jitter on
    # throttling, 5xx and timeouts, a circuit breaker (open after N consecutive failures, one trial call after
    # the reset time), and at most this many texts per invocation.
    sagemaker_connect_timeout_seconds: float = Field(2.0, gt=0)
    sagemaker_backoff_base_seconds: float = Field(0.1, ge=0)
    sagemaker_backoff_max_seconds: float = Field(2.0, ge=0)
    sagemaker_breaker_failures: int = Field(5, ge=1)
    sagemaker_breaker_reset_seconds: float = Field(30.0, ge=0)
    sagemaker_batch_max_texts: int = Field(32, ge=1, le=256)  # the container takes at most 256 per invocation
    # Invocations of one classify() call in flight at once (a long batch is split; its chunks run concurrently).
    sagemaker_concurrency: int = Field(4, ge=1, le=64)
    # ... and at most this many bytes of (UTF-8 JSON) request body per invocation: SageMaker real-time endpoints
    # refuse bodies over 6 MB. A single text whose body alone is larger fails the call (ClassifierError).
    sagemaker_max_payload_bytes: int = Field(5_000_000, ge=1024, le=6 * 1024 * 1024)
    # Wall-clock budget (seconds) for one classify() call, all chunks and retries together: no attempt starts
    # after it and the call fails (the moderator falls back). An attempt in flight still ends by its read timeout.
    sagemaker_deadline_seconds: float = Field(10.0, gt=0)
    # Merge concurrent classify() calls from different threads into one invocation, waiting up to this long for
    # company (0 = off; the API already merges the requests of one event-loop turn).
    sagemaker_batch_wait_ms: float = Field(0.0, ge=0)
    # In-process model (CLASSIFIER_BACKEND=transformers): a model dir, a training output with merged/, or an
    # adapter (its base from TRANSFORMERS_BASE_MODEL, else the artifact's training_config.json).
    transformers_model_path: Path | None = None
    transformers_base_model: str | None = None
    transformers_device: str = "auto"  # auto = cuda when available, else cpu
    transformers_dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"  # auto = fp16 on GPU, fp32 on CPU
    transformers_batch_size: int = Field(16, ge=1)

    # Per-label decision thresholds: the most severe label whose P(label or worse) reaches its threshold wins.
    # Unset: the thresholds the model was tuned with (the embedded model's are chosen on validation for a
    # false-flag budget), or 0.5 for a model without any.
    threshold_potentially_harmful: float | None = Field(None, ge=0.0, le=1.0)
    threshold_harmful: float | None = Field(None, ge=0.0, le=1.0)
    threshold_extremely_harmful: float | None = Field(None, ge=0.0, le=1.0)
    # The label mix of your traffic, for the embedded model's probabilities ("safe=0.9,potentially_harmful=0.06,
    # harmful=0.03,extremely_harmful=0.01"); unset: the mix the model states (models/embedded/model_card.json).
    label_prior: str | None = None

    # --- API limits and auth
    max_text_chars: int = Field(20_000, gt=0)
    max_batch_size: int = Field(256, gt=0)
    max_body_bytes: int = Field(2_000_000, gt=0)
    # Normalizing, classifying, logging and rendering run on this many worker threads, never on the event loop;
    # at most MODERATION_QUEUE_SIZE jobs (a /moderate micro-batch or a /moderate/batch call is one job) run or
    # wait at once, and beyond that the API answers 503 with Retry-After.
    moderation_workers: int = Field(4, ge=1, le=256)
    moderation_queue_size: int = Field(64, ge=1)
    # Child processes per server process that normalize and classify the long texts: every text of at least
    # MODERATION_PROCESS_MIN_CHARS characters (the threads above then only wait for them, record and render);
    # shorter texts stay on the threads, so that normal traffic never queues behind a long batch. The event loop
    # shares no GIL and no heap with the long work: /health stays under 50 ms while batches of worst-case texts
    # of 20,000 characters are moderated (tests/api/test_hardening.py). Unset: 1 with an offline Stage 2 (CPU
    # work), 0 with a remote one (its calls wait on the network, which threads do well). 0: all on the threads.
    moderation_processes: int | None = Field(None, ge=0, le=64)
    moderation_process_min_chars: int = Field(2_000, ge=0)
    # At most this many matches per text in an answer (the rest are counted in matches_omitted): a text of 20,000
    # characters can hold 5,000 matches, and a batch of them made answers of 120 MB.
    max_matches_per_text: int = Field(100, ge=0)
    # A request body that has not fully arrived after this many seconds is answered 408 and its connection closed.
    body_read_timeout_seconds: float = Field(30.0, gt=0)
    # ... and a request whose line and headers have not all arrived this long after the server began waiting for
    # it (slowloris: headers sent a byte at a time) has its connection closed (408 when part of it arrived).
    header_read_timeout_seconds: float = Field(10.0, gt=0)
    # Server processes (python main.py; --workers overrides). 0 = one per usable core, at most 8. Each is a whole
    # server with its own worker threads, micro-batcher, prediction-log writer and database reload thread.
    server_workers: int = Field(0, ge=0, le=64)
    # How often (milliseconds) a thread holding the GIL is asked to let another run (Python's default: 5). The
    # event loop and short requests wait for it while a worker thread moderates a long text; 0.5 kept 3.6x more
    # normal traffic moving under an attack of worst-case batches (bench/bench_adversarial.py).
    gil_switch_interval_ms: float = Field(0.5, gt=0, le=100)
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000

    # --- Monitoring
    prediction_log_url: str | None = "sqlite:///predictions.db"
    prediction_log_queue_size: int = 10_000
    # Durable prediction log: a folder for write-ahead journals (unset = off). Each record is appended to this
    # process's journal (and fsynced, with PREDICTION_LOG_JOURNAL_FSYNC) before its answer is sent; the writer moves
    # journals into the database, and a journal left by a killed process is replayed at the next start.
    prediction_log_journal_dir: Path | None = None
    prediction_log_journal_fsync: bool = True
    # The secret key of the text digests in the prediction log (HMAC-SHA256). Required in production; unset in
    # development, a random key per process (with a warning), so digests only match within one run.
    text_hash_key: SecretStr | None = None

    # --- Data and AWS
    s3_bucket: str | None = None
    s3_prefix: str = "algospeak"
    aws_endpoint_url: str | None = None  # set to a moto_server URL in tests
    sagemaker_role_arn: str | None = None
    # Stage 2 base model: a hub id or a local directory. Qwen2.5-3B-Instruct is under the Qwen research licence
    # (non-commercial); Qwen/Qwen2.5-1.5B-Instruct (Apache-2.0) is the commercial choice.
    base_model_id: str = "Qwen/Qwen2.5-3B-Instruct"
    # Deployment gate: a candidate model must reach these on the test split (and not fall behind the production
    # model's report by more than the allowed drop) before the deployment step will ship it.
    gate_min_macro_f1: float = Field(0.60, ge=0.0, le=1.0)
    gate_max_macro_f1_drop: float = Field(0.01, ge=0.0, le=1.0)
    # Floors the production embedded model meets (false alarms 0.082, ECE 0.117 on its report); a candidate is
    # also held to production's own figures when the gate is given production's report (--baseline).
    gate_max_false_alarm_rate: float = Field(0.10, ge=0.0, le=1.0)
    gate_max_ece: float = Field(0.15, ge=0.0, le=1.0)
    # The functional suite (data/dataset/functional_suite.json) against production's report: harmful cases flagged
    # may not fall, nor harmless cases flagged rise, by more than this share.
    gate_max_functional_regression: float = Field(0.02, ge=0.0, le=1.0)
    # Harm categories against production's report: a category's recall on the same data, and a functional-suite
    # family's share routed to its category, may not fall by more than this.
    gate_max_category_recall_drop: float = Field(0.05, ge=0.0, le=1.0)
    # Experiment tracking (MLflow): unset means a local mlruns/ folder.
    mlflow_tracking_uri: str | None = None

    @field_validator("label_prior")
    @classmethod
    def _prior_is_a_mix(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_prior(value)  # raises ValueError with the reason
        return value

    @field_validator("sagemaker_endpoint_name", "api_key", "label_prior", "s3_bucket", "mlflow_tracking_uri", "aws_endpoint_url",
                     "transformers_model_path", "transformers_base_model", "threshold_potentially_harmful",
                     "threshold_harmful", "threshold_extremely_harmful", "text_hash_key",
                     "prediction_log_journal_dir", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_key")
    @classmethod
    def _api_key_is_sendable(cls, value: str | None) -> str | None:
        # An HTTP header carries bytes that servers read as Latin-1 and clients send as UTF-8: a key outside
        # printable ASCII could never match what a client sends.
        if value is not None and not all("!" <= c <= "~" for c in value):
            raise ValueError("API_KEY must be printable ASCII without spaces (it travels in an HTTP header)")
        return value

    @model_validator(mode="after")
    def _production_is_guarded(self) -> "Settings":
        if self.environment == "production" and not self.api_key:
            raise ValueError("API_KEY must be set when ENVIRONMENT=production")
        if self.environment == "production" and len(self.api_key or "") < 16:
            raise ValueError("API_KEY must have at least 16 characters when ENVIRONMENT=production")
        if self.environment == "production" and self.prediction_log_url and not self.text_hash_key:
            raise ValueError("TEXT_HASH_KEY must be set when ENVIRONMENT=production (the prediction log's text digests)")
        if self.text_hash_key is not None and len(self.text_hash_key.get_secret_value()) < 16:
            raise ValueError("TEXT_HASH_KEY must have at least 16 characters")
        return self

    @property
    def resolved_backend(self) -> str:
        if self.classifier_backend == "auto":
            return "sagemaker" if self.sagemaker_endpoint_name else "embedded"
        return self.classifier_backend

    @property
    def thresholds(self) -> dict[str, float | None]:
        """The thresholds set here; None where the model's own (or 0.5) applies."""
        return {
            "potentially_harmful": self.threshold_potentially_harmful,
            "harmful": self.threshold_harmful,
            "extremely_harmful": self.threshold_extremely_harmful,
        }

    @property
    def prior(self) -> list[float] | None:
        return parse_prior(self.label_prior) if self.label_prior else None


def parse_prior(text: str) -> list[float]:
    """"safe=0.9,potentially_harmful=0.06,harmful=0.03,extremely_harmful=0.01" -> shares in LABELS order."""
    from core.labels import LABELS

    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if not name:
            raise ValueError("LABEL_PRIOR: an empty entry (a stray comma?); give label=share for each of " + ", ".join(LABELS))
        if name in shares:
            raise ValueError(f"LABEL_PRIOR: {name} is given twice")
        if name not in LABELS:
            raise ValueError(f"LABEL_PRIOR: unknown label {name!r}; give all of {', '.join(LABELS)} as label=share")
        try:
            if not value.strip().isascii():
                raise ValueError
            shares[name] = float(value)
        except ValueError:
            raise ValueError(f"LABEL_PRIOR: {name}={value.strip()!r} is not a number") from None
    missing = [label for label in LABELS if label not in shares]
    if missing:
        raise ValueError(f"LABEL_PRIOR: missing {', '.join(missing)}")
    if any(not 0 < v < 1 for v in shares.values()) or abs(sum(shares.values()) - 1) > 1e-3:
        raise ValueError("LABEL_PRIOR: every share must be between 0 and 1 (exclusive) and they must sum to 1")
    return [shares[label] for label in LABELS]


@lru_cache
def get_settings() -> Settings:
    return Settings()
