"""``generate``: text to image, optionally guided by reference ``images``."""

from gemflow.kinds.gemini_image import GeminiImageKind


class Generate(GeminiImageKind):
    name = "generate"
