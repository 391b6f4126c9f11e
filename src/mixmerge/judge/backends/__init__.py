"""Judge backends, one module each; each registers itself (mixmerge.judge.settings.register_backend).

A new backend: a module here with a `Judge` subclass and a `register_backend(name, factory, ...)`
call at its end (copy openai_judge.py), and its name in the judge `backend` enum of the config
schema (tests/test_catalog.py checks the enum against the registry).
"""
