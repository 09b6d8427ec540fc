"""Attention Course: every implementation the course's notebooks teach, in one package."""

__version__ = "0.1.0"
