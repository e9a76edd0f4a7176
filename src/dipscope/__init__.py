"""dipscope: run the Deep Image Prior fast, and measure its spectral bias."""

from __future__ import annotations

__version__ = "0.1.0"
