"""The local main job: MNIST data, channels, evaluation and the report."""
