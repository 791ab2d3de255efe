"""The Kivy checkout screen: views in `.kv` files, presenters over the core, one app."""
