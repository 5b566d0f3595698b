"""Helpers shared by the tests: real servers and processes, scripted visitors, the browser,
the in-process harness on a fake clock, and one way to wait (``waiting.eventually``).

conftest.py holds only fixtures; test modules import helpers from here."""
