"""Support pre-replies (issue #9, first slice): a library and the `genloop support` verb.

knowledge.py   question → answer entries (chatterbot-corpus or your tickets), held-out split
intent.py      a linear intent classifier over hashed n-grams (torch), trained on the entries
slots.py       order number, phone, e-mail, 身份证号, product, dates, amounts
structure.py   query → language + intent + slots
retrieve.py    a persisted BM25 (+ optional embedding) index, hit@k
reply.py       the pre-reply: template + answers + slots, PII masked, safety-checked, labelled
app.py         build / load / ask: the pieces above over a workspace folder
evaluation.py  intent accuracy, slot F1, hit@1/hit@5
"""
