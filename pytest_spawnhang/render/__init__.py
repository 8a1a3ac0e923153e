"""Renderers: pure functions from a Report to text in one format each."""
