"""Presenters that belong to no single screen: the cart, the session, input routing, the
writer thread, customer messages and the context every presenter is built with.

A screen's own presenter lives beside its view and `.kv` as `<screen>_presenter.py`.
"""
