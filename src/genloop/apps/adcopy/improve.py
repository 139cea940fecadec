"""The copy model learns from the audience: the loop's sft / dpo / kto recipes on ad-copy feedback.

    published candidates ─► likes / clicks / dislikes (gallery, batch API, ad-platform CSV import)
        ─► improve.dispatch.improve_model for `adcopy@champion`: each liked line is a (prompt =
           the product's attribute prefix, completion = the line as shown) example; two lines of
           one product, one liked over the other, are a preference pair
        ─► challenger version `adcopy-vN` (alias `challenger`, parent the champion), its run
           listing the feedback dataset version (lineage to the events)

`improve_model` improves `{project.name}@champion`; the studio's model has its own name, so the
workspace's config is copied with project.name = the copy model's name and [improve] set from
the arguments — genloop.toml is not changed. Write with the challenger:
`genloop adcopy generate -m adcopy@challenger`; promote it with `genloop models promote`.
"""

from __future__ import annotations

from genloop.apps.adcopy.training import MODEL_NAME
from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.improve.dispatch import SEQUENCE_RECIPES, ImproveOutcome, improve_model
from genloop.workspace import Workspace

RECIPES = ("auto", *SEQUENCE_RECIPES)


def improve_copy_model(
    workspace: Workspace,
    catalog: Catalog,
    *,
    model: str = MODEL_NAME,
    recipe: str = "auto",
    steps: int | None = None,
    seed: int = 0,
    evaluate: bool = True,
) -> ImproveOutcome:
    """Fine-tune `model@champion` on the feedback its published lines got → a challenger version
    (`evaluate`: also compare both on the champion's held-out data — 200 samples, ~30 s on a CPU)."""
    if recipe not in RECIPES:
        raise GenloopError(
            f"unknown recipe {recipe!r} for the copy model", hint=f"use one of {', '.join(RECIPES)}"
        )
    config = workspace.config
    improve = {"recipe": recipe, "evaluate": evaluate, **({"steps": steps} if steps else {})}
    copied = config.model_copy(
        update={
            "project": config.project.model_copy(update={"name": model}),
            "improve": config.improve.model_copy(update=improve),
        }
    )
    return improve_model(workspace, catalog, copied, seed=seed)
