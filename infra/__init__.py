"""The CDK app's constructs, stack and settings."""
