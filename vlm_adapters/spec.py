"""``VisionInputSpec``: the one declared truth about what a backbone's vision input must be.

A spec is pure geometry: sizes, grids, token counts and token ids, no tensors. Adapters build
it from the checkpoint's config and processor (never from literals), and everything else in
the framework (repair of dataset samples, attention reshaping, mapping maps back onto pixels)
asks the spec instead of guessing from tensor shapes.

Kinds are open. A kind is a :class:`SpecBase` subclass that declares ``kind`` (a ``Literal``
field, the JSON discriminator) and computes :meth:`SpecBase.geometry`; a plugin registers it
through the ``register_spec_kinds`` hook, and :func:`spec_from_json` finds it in the registry.
The core's own kinds are registered through the same hook.
"""

from __future__ import annotations

import numbers
from abc import abstractmethod
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .errors import ImageShapeError, SpecError
from .geometry import ImageGeometry, Size

PositiveInt = Annotated[int, Field(gt=0)]
Color = tuple[int, int, int]
Triple = tuple[float, float, float]


class SpecBase(BaseModel):
    """Base of every spec kind: the token ids and normalisation all backbones share, validation,
    JSON round trip, and one job, :meth:`geometry`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    """The kind's name; subclasses narrow it to ``Literal["name"] = "name"``."""
    image_token_id: Annotated[int, Field(ge=0)]
    """Id of the placeholder token that each image feature replaces in ``input_ids``."""
    image_token: str | None = None
    vision_start_token_id: int | None = None
    vision_end_token_id: int | None = None
    token_order: Literal["raster"] = "raster"
    """Order of a view's tokens in the sequence: ``raster`` = row-major over its token grid."""
    image_mean: Triple = (0.0, 0.0, 0.0)
    image_std: Triple = (1.0, 1.0, 1.0)

    @abstractmethod
    def geometry(self, image_size: Size) -> ImageGeometry:
        """Where an image of ``image_size = (height, width)`` goes: its views and tokens."""

    @staticmethod
    def check_size(image_size: Any) -> Size:
        """``(height, width)`` as positive ints; refuses bools, fractions and anything else."""
        try:
            h, w = image_size
        except (TypeError, ValueError):
            h = w = None
        ok = all(isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer() for v in (h, w))
        if not ok:
            raise ImageShapeError(
                "image size is not a (height, width) pair of integers",
                found=repr(image_size)[:80],
                expected="(height, width) of positive ints",
                fix="pass image_size=(height, width), e.g. PIL's (img.height, img.width)",
            )
        h, w = int(h), int(w)  # type: ignore[arg-type]
        if h <= 0 or w <= 0:
            raise ImageShapeError(
                "image size must be positive",
                found=(h, w),
                expected="height > 0 and width > 0",
                fix="check that the image was decoded (an empty image has no geometry)",
            )
        return h, w

    # kept for subclasses written against the first API
    _check_size = check_size


VisionInputSpec = SpecBase
"""Any spec, of any registered kind (the type to annotate with)."""


def _kinds() -> dict[str, type[SpecBase]]:
    from .registry import default_registry

    return default_registry().spec_kinds()


def spec_class(kind: str) -> type[SpecBase]:
    """The registered spec class of ``kind``; a :class:`SpecError` naming the known kinds if none."""
    kinds = _kinds()
    if kind not in kinds:
        raise SpecError(
            f"no spec kind {kind!r} is registered (known: {sorted(kinds)}). Fix: install the plugin that "
            "provides it (see `vlm-adapters list`)"
        )
    return kinds[kind]


def spec_from_dict(data: dict[str, Any]) -> SpecBase:
    """A spec from its ``model_dump()``; the ``kind`` field picks the registered class."""
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise SpecError(f"a spec is a dict with a 'kind' string, got {repr(data)[:80]}")
    return spec_class(data["kind"]).model_validate(data)


def spec_from_json(data: str | bytes) -> SpecBase:
    """Parse a spec serialised with ``spec.model_dump_json()``."""
    import json

    return spec_from_dict(json.loads(data))


def spec_json_schema() -> dict[str, Any]:
    """JSON schema of every registered kind (a union discriminated on ``kind``)."""
    classes = tuple(_kinds().values())
    if len(classes) == 1:
        return classes[0].model_json_schema()
    union: Any = Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007
    return TypeAdapter(union).json_schema()


if TYPE_CHECKING:
    from .dynamic_spec import DynamicSpec as DynamicSpec
    from .fixed_spec import FixedSpec as FixedSpec


def __getattr__(name: str) -> Any:
    """The built-in kinds, importable from here as before they had modules of their own."""
    if name == "FixedSpec":
        from .fixed_spec import FixedSpec

        return FixedSpec
    if name == "DynamicSpec":
        from .dynamic_spec import DynamicSpec

        return DynamicSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
