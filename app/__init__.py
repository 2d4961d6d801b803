"""AssetMon: a self-hosted attack-surface monitor."""

__version__ = "0.1.0"
