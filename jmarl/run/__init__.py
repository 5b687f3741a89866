"""The driver of ``jmarl train`` / ``jmarl evaluate``: configs, checkpoints, recorder, plots."""
