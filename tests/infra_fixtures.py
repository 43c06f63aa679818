"""Helpers for the CDK tests: small staged assets and a synthesized stack.

The stack's unit tests do not need real MNIST channels: they stage tiny files with the same
names, so the template is built in well under a second per variant. The real app (with the
real channels) is synthesized once, through the CLI, in `test_infra_app.py`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aws_cdk as cdk
from aws_cdk.assertions import Template

from artifacts.pack import pack_directory
from infra.assets import CHANNEL_FILES, SOURCE_ARCHIVE
from infra.settings import Settings
from infra.stack import VaeAnomalyStack, VaeAnomalyStackProps

PROJECT_DIR = Path(__file__).resolve().parents[1]
CDK_JSON = PROJECT_DIR / "cdk.json"


def stage_fake_assets(root: Path, marker: bytes = b"v1") -> tuple[Path, Path]:
    """Tiny channel files and a packed one-file source dir under `root`."""
    data_dir, code_dir, source_dir = root / "data", root / "code", root / "source"
    for channel, names in CHANNEL_FILES.items():
        (data_dir / channel).mkdir(parents=True, exist_ok=True)
        for name in names:
            (data_dir / channel / name).write_bytes(marker + channel.encode() + name.encode())
    source_dir.mkdir(parents=True, exist_ok=True)
    (source_dir / "train.py").write_text("print('train')\n")
    pack_directory(source_dir, code_dir / SOURCE_ARCHIVE)
    return data_dir, code_dir


def settings_from_cdk_json(**overrides) -> Settings:
    """The settings of the checked-in `cdk.json`, with field overrides."""
    return dataclasses.replace(Settings.from_cdk_json(CDK_JSON), **overrides)


def synth_stack(
    assets: tuple[Path, Path], settings: Settings, env: cdk.Environment | None = None
) -> VaeAnomalyStack:
    app = cdk.App()
    data_dir, code_dir = assets
    return VaeAnomalyStack(
        app,
        settings.stack_name,
        props=VaeAnomalyStackProps(settings=settings, data_dir=data_dir, code_dir=code_dir),
        env=env,
    )


def template_of(stack: VaeAnomalyStack) -> Template:
    return Template.from_stack(stack)
