"""Support pre-replies (issue #9): a library, the `genloop support` verb, API routes and a console page.

knowledge.py        question → answer entries (chatterbot-corpus or your tickets), held-out split
intent.py           a linear intent classifier over hashed n-grams (torch), trained on the entries
slots.py            order number, phone, e-mail, 身份证号, product, dates, amounts
structure.py        query → language + intent + slots
retrieve.py         a persisted BM25 (+ optional embedding) index, hit@k
reply.py            the pre-reply: template + answers + slots, PII masked, safety-checked, labelled
app.py              build / load / ask: the pieces above over a workspace folder
evaluation.py       intent accuracy, slot F1, hit@1/hit@5
registration.py     each built app as a catalog model version `support-vN` (run + copied folder)
queue.py            the agent queue in the catalog: submit → content item + private publication +
                    ticket; accept / edit / reject → like / edit / dislike feedback event
improve.py          decided tickets → knowledge entries + intent labels → the next app version
simulated_agent.py  accepts pre-replies holding the right answer's key facts, else edits them
"""
