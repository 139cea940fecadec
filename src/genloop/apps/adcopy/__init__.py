"""The ad-copy studio (issue #9): ranked lines per product that honour every constraint.

products.py     the product table (CSV/JSONL): attributes + must-include, banned, max length
constraints.py  length (zh characters / en words), keywords, banned words; impossible ones found up front
conditioning.py the attribute prefix the GPT is trained and prompted with
pastcopy.py     your past copy → text records (prefix + line); standin.py the built-in sample
generator.py    the copy model (genloop GPT, or SmolLM2-135M + LoRA) behind sample / log-likelihood
repair.py       honest repairs: banned words out, required words hooked in, trimmed on a boundary
candidates.py   over-generate → repair → re-check → drop (reasons counted)
ranker.py       fluency + margin + novelty (MMR) + a preference learned from feedback
training.py     past copy → dataset version → the copy model (gpt, or hf-causal-lm for English)
studio.py       write, finish (safety, labels) and store each product's lines
creatives.py    a generated product image + each of the top lines → labelled PNGs, published as A/B arms
feedback.py     liked / not-liked rows from a file or the catalog (a creative's reactions count for its line)
shelf.py        stored candidates read back (rank, constraints re-checked, arms) and published as A/B arms
improve.py      the loop's sft / dpo / kto on the lines' feedback → a challenger copy model
"""
