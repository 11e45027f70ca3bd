"""The hub: an interoperability adapter hub for Danish healthcare and social-care messaging."""

__version__ = "0.1.0"
