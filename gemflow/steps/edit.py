"""``edit``: change one or more input images as the prompt says ("the first image", "the second")."""

from gemflow.steps.api import GeminiImageKind


class Edit(GeminiImageKind):
    name = "edit"
    images_required = True
