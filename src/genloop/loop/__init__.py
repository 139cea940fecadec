"""`genloop loop`: generate → publish → feedback → decide → improve → gate, round after round.

rounds.py     one round's phases, resumable (catalog table loop_rounds)
arms.py       champion/challenger counts and Thompson-sampled slots
audience.py   where feedback comes from: a simulated persona over HTTP, or real viewers
"""
