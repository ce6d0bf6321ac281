"""``edit``: change one or more input images as the prompt says ("the first image", "the second")."""

from gemflow.kinds.gemini_image import GeminiImageKind


class Edit(GeminiImageKind):
    name = "edit"
    images_required = True
