"""The model registry: `@register_model("name")` on a function that returns an nn.Module."""

from registry import Registry

# Every model function takes the dataset's class count and image shape first, then its own knobs.
MODELS = Registry("model", supplied=("num_classes", "image_shape"))
register_model = MODELS.register
