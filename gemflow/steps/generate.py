"""``generate``: text to image, optionally guided by reference ``images``."""

from gemflow.steps.api import GeminiImageKind


class Generate(GeminiImageKind):
    name = "generate"
