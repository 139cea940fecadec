"""Post-processors: `Artifact → Artifact` steps, chained per channel and modality in config."""
