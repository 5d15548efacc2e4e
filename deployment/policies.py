"""The IAM policies in deployment/iam/, filled in for an account: print one, ready for `aws iam put-role-policy`.

    uv run --all-extras python -m deployment.policies training --account 123456789012 --bucket my-bucket \\
        --region eu-west-1 --hf-token-secret hf-token > training_role_policy.filled.json
    uv run --all-extras python -m deployment.policies execution --account 123456789012 --bucket my-bucket \\
        --kms-key-arn arn:aws:kms:eu-west-1:123456789012:key/...        # the data-capture key, if any
    uv run --all-extras python -m deployment.policies caller --account 123456789012 --bucket my-bucket \\
        --training-role algospeak-sagemaker-training --execution-role algospeak-sagemaker-execution

Placeholders: ${ACCOUNT}, ${REGION}, ${BUCKET}, ${PREFIX} (S3_PREFIX), ${ECR_ACCOUNT} (the account that publishes
the Hugging Face images in that region, read from the SageMaker SDK's image table: 763104351884 in most regions,
another in e.g. ap-east-1 or me-south-1), ${HF_TOKEN_SECRET}, ${KMS_KEY_ARN}, ${TRAINING_ROLE}, ${EXECUTION_ROLE}.
A statement whose optional placeholder is not given (no hub-token secret, no KMS key) is left out rather than
granted on a wildcard.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python deployment/policies.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import re
import sys
from typing import Any

from core.settings import ROOT, get_settings

IAM_DIR = ROOT / "deployment" / "iam"
FILES = {"training": "training_role_policy.json", "execution": "execution_role_policy.json",
         "caller": "caller_policy.json", "trust": "execution_role_trust_policy.json"}
OPTIONAL = ("HF_TOKEN_SECRET", "KMS_KEY_ARN")
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


class PolicyError(ValueError):
    """A placeholder has no value."""


def ecr_account(region: str, scope: str = "training") -> str:
    """The account that publishes the Hugging Face PyTorch `scope` images in `region` (the SDK's offline image
    table, newest version: the registry does not change between versions)."""
    from sagemaker.core import image_uris

    versions = image_uris.config_for_framework("huggingface")[scope]["versions"]
    for version in reversed(list(versions)):
        for name, framework in versions[version].items():
            if name.startswith("pytorch") and isinstance(framework, dict) and region in framework.get("registries", {}):
                return framework["registries"][region]
    raise ValueError(f"the SageMaker SDK knows no Hugging Face {scope} image in region {region}")


def render(kind: str, values: dict[str, str | None]) -> dict[str, Any]:
    """The policy `kind` with its placeholders replaced by `values`; statements that need an optional value that
    is absent are dropped; PolicyError for a required one."""
    policy = json.loads((IAM_DIR / FILES[kind]).read_text(encoding="utf-8"))
    statements = []
    for statement in policy["Statement"]:
        text = json.dumps(statement)
        names = set(_PLACEHOLDER.findall(text))
        missing = sorted(n for n in names if not values.get(n))
        if any(n in OPTIONAL for n in missing):
            continue
        if missing:
            raise PolicyError(f"{FILES[kind]} needs {', '.join('${' + n + '}' for n in missing)} "
                              f"(statement {statement.get('Sid', '?')})")
        statements.append(json.loads(_PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)))
    policy["Statement"] = statements
    return policy


def build_parser() -> argparse.ArgumentParser:
    s = get_settings()
    p = argparse.ArgumentParser(prog="python -m deployment.policies", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=sorted(FILES))
    p.add_argument("--account", required=True, help="12-digit AWS account id")
    p.add_argument("--region", default=s.aws_region, help="default %(default)s (AWS_REGION)")
    p.add_argument("--bucket", default=s.s3_bucket, help="S3_BUCKET")
    p.add_argument("--prefix", default=s.s3_prefix, help="default %(default)s (S3_PREFIX)")
    p.add_argument("--hf-token-secret", help="name of the Secrets Manager secret holding the hub token")
    p.add_argument("--kms-key-arn", help="the customer-managed key of the bucket or of data capture")
    p.add_argument("--training-role", default="algospeak-sagemaker-training")
    p.add_argument("--execution-role", default="algospeak-sagemaker-execution")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = {"ACCOUNT": args.account, "REGION": args.region, "BUCKET": args.bucket, "PREFIX": args.prefix,
              "HF_TOKEN_SECRET": args.hf_token_secret, "KMS_KEY_ARN": args.kms_key_arn,
              "TRAINING_ROLE": args.training_role, "EXECUTION_ROLE": args.execution_role}
    try:
        if args.kind in ("training", "execution"):
            values["ECR_ACCOUNT"] = ecr_account(args.region, "training" if args.kind == "training" else "inference")
        print(json.dumps(render(args.kind, values), indent=2))
    except (PolicyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["FILES", "IAM_DIR", "PolicyError", "ecr_account", "render"]
