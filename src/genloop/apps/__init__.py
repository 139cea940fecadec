"""Business applications built only from genloop's own stages (issue #9).

    support/   customer-service pre-replies: query → structured data → retrieved answers
               → a masked, safety-checked, AI-labelled pre-reply

Each application is a library first (plain functions and small classes); the CLI verb
(`genloop support …`) only parses arguments and prints.
"""
