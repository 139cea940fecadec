# Shortcuts; each target is also a plain script in scripts/.
.PHONY: setup demo test lint format clean

setup:        ## create .venv with genloop and the test tools
	scripts/setup.sh --dev

demo:         ## set up and run the whole loop on built-in MNIST digits
	scripts/demo.sh

test:         ## set up and run lint, types and the full test suite
	scripts/test.sh

lint:
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks
	.venv/bin/mypy

format:
	.venv/bin/ruff check --fix src tests benchmarks
	.venv/bin/ruff format src tests benchmarks

clean:
	rm -rf genloop-demo test-artifacts .pytest_cache .mypy_cache .ruff_cache
