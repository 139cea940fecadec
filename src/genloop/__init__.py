"""genloop: data-driven generative content, from raw data to published, labelled, improving output."""

__version__ = "0.1.0"
