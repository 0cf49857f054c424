"""Importers of models trained by the original implementations (``epx import ...``)."""
