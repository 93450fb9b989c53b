"""stream-rec: streaming, diversity-aware recommendations for e-commerce storefronts."""

__version__ = "0.1.0"
