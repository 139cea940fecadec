"""Safety checks: each looks at a finished artifact and gives a Verdict with its reason."""
