"""One module per report section. Each exposes ``render(context) -> Section``."""
