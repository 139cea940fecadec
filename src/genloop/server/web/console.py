"""The console behind the login: dashboard, datasets, runs, models, generate, review, annotate, analytics.

    GET  /console                          counts + latest jobs                          viewer
    GET  /console/datasets[/{id}]          versions, stats, cleaning report              viewer
    GET  /console/runs[/{id}]              runs, loss curves (inline SVG, refreshed live) viewer
    GET  /console/models                   versions, metrics, aliases, gates             viewer
    POST /console/models/{id}/promote      move an alias (gates checked)                 editor
    POST /console/models/{name}/rollback   move an alias back                            editor
    GET  /console/generate, POST           a form → a queued job → /console/jobs/{id}    editor
    GET  /console/review                   items awaiting review, approved items         reviewer
    POST /console/review/{id}/approve|reject|publish                                     reviewer|editor
    GET  /console/annotate, POST /console/annotate/{task}   the next task, its label     reviewer
    GET  /console/analytics                like-rate / rating with Wilson intervals      viewer

Pages redirect anonymous visitors to /login?next=...; every form that changes state
carries the session's CSRF token and posts to a route guarded by `requires(role)`
(which checks the token). A failed action re-renders its page with the error.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from genloop.data.annotate import queue as annotation_queue
from genloop.errors import GenloopError
from genloop.generate import review as review_queue
from genloop.models import versions
from genloop.models.gates import check_gates, current_alias_target
from genloop.server import queries
from genloop.server.auth import Principal, Role, csrf_token, current_principal, requires
from genloop.server.deps import CatalogDep, TemplatesDep, WorkspaceDep
from genloop.server.web.filters import line_chart

router = APIRouter(include_in_schema=False)

MAX_GENERATE_COUNT = 64
LIVE_RUN_STATUSES = frozenset({"running"})


# -- who is looking ------------------------------------------------------------------------------


VisitorDep = Annotated[Principal | None, Depends(current_principal)]
"""Who is looking (None: anonymous); resolved before the route, which then runs in a worker thread."""


def signed_in(
    request: Request, visitor: Principal | None, role: Role = "viewer"
) -> Principal | RedirectResponse:
    """The principal of a console page, or a redirect to /login for an anonymous visitor (403: too weak).

    Page routes are plain `def`s: FastAPI runs them in its thread pool, so their catalog
    reads never block the event loop.
    """
    if visitor is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status.HTTP_303_SEE_OTHER)
    if not visitor.has(role):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this page needs role {role}; you are {visitor.role}")
    return visitor


def page(
    templates: Jinja2Templates,
    request: Request,
    principal: Principal,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    """Render a console page with the principal and its CSRF token (empty for header-key callers)."""
    token = csrf_token(request.app.state.workspace, principal.session) if principal.session else ""
    full = {"principal": principal, "csrf_token": token, **context}
    response: HTMLResponse = templates.TemplateResponse(request, name, full, status_code=status_code)
    return response


def back_to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status.HTTP_303_SEE_OTHER)


def acting(request: Request) -> Principal:
    """The principal `requires(...)` put on the request of a state-changing route."""
    principal: Principal = request.state.principal
    return principal


# -- dashboard, datasets, runs -------------------------------------------------------------------


@router.get("/console", name="console_dashboard", response_model=None)
def dashboard(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep
) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    context = {
        "active": "dashboard",
        "counts": queries.dashboard_counts(catalog),
        "jobs": queries.latest_jobs(catalog),
    }
    return page(templates, request, principal, "console/dashboard.html", context)


@router.get("/console/datasets", name="console_datasets", response_model=None)
def datasets(request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    context = {"active": "datasets", "datasets": queries.list_datasets(catalog)}
    return page(templates, request, principal, "console/datasets.html", context)


@router.get("/console/datasets/{dataset_id}", name="console_dataset", response_model=None)
def dataset(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep, dataset_id: str
) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    row = queries.get_dataset(catalog, dataset_id)
    context = {"active": "datasets", "dataset": row, "steps": queries.cleaning_steps(row.manifest)}
    return page(templates, request, principal, "console/dataset.html", context)


@router.get("/console/runs", name="console_runs", response_model=None)
def runs(request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    context = {"active": "runs", "runs": queries.list_runs(catalog)}
    return page(templates, request, principal, "console/runs.html", context)


def _loss_charts(series: dict[str, list[tuple[int, float]]]) -> list[tuple[str, Any]]:
    """One chart per metric group: losses together, every other metric alone (own scale)."""
    losses = {name: points for name, points in series.items() if "loss" in name}
    others = {name: points for name, points in series.items() if "loss" not in name}
    charts: list[tuple[str, Any]] = []
    if losses:
        charts.append(("loss", line_chart({k: [(float(s), v) for s, v in p] for k, p in losses.items()})))
    for name, points in others.items():
        charts.append((name, line_chart({name: [(float(s), v) for s, v in points]})))
    return charts


@router.get("/console/runs/{run_id}", name="console_run", response_model=None)
def run(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep, run_id: str
) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    row = queries.get_run(catalog, run_id)
    context = {
        "active": "runs",
        "run": row,
        "charts": _loss_charts(queries.run_metrics(catalog, run_id)),
        "live": row.status in LIVE_RUN_STATUSES,
    }
    return page(templates, request, principal, "console/run.html", context)


@router.get("/console/runs/{run_id}/charts", name="console_run_charts", response_model=None)
def run_charts(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep, run_id: str
) -> Response:
    """The charts alone (an HTML fragment): what the run page's script swaps in every few seconds."""
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    row = queries.get_run(catalog, run_id)
    context = {
        "run": row,
        "charts": _loss_charts(queries.run_metrics(catalog, run_id)),
        "live": row.status in LIVE_RUN_STATUSES,
    }
    return page(templates, request, principal, "console/_run_charts.html", context)


# -- models: metrics, gates, promote / rollback --------------------------------------------------


def _models_context(request: Request, catalog: Any, workspace: Any) -> dict[str, Any]:
    infos = versions.list_model_versions(catalog)
    metrics = queries.latest_metrics(catalog, [info.id for info in infos])
    gates = list(workspace.config.gates)
    rows = []
    for info in infos:
        evaluated_on, values = metrics.get(info.id, (None, {}))
        champion = current_alias_target(catalog, info.name, versions.CHAMPION)
        results = check_gates(catalog, info.id, gates) if gates and info.archived_at is None else []
        rows.append(
            {
                "info": info,
                "metrics": {k: v for k, v in values.items() if isinstance(v, int | float)},
                "evaluated_on": evaluated_on,
                "gates": results,
                "is_champion": champion == info.id,
                "has_champion": champion is not None,
            }
        )
    return {
        "active": "console_models",
        "rows": rows,
        "gates": gates,
        "history": queries.alias_events(catalog),
    }


@router.get("/console/models", name="console_models", response_model=None)
def models(
    request: Request,
    visitor: VisitorDep,
    catalog: CatalogDep,
    workspace: WorkspaceDep,
    templates: TemplatesDep,
) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    return page(
        templates, request, principal, "console/models.html", _models_context(request, catalog, workspace)
    )


@router.post(
    "/console/models/{version_id}/promote", name="console_promote", response_model=None, **requires("editor")
)
def promote(
    request: Request,
    catalog: CatalogDep,
    workspace: WorkspaceDep,
    templates: TemplatesDep,
    version_id: str,
    alias: Annotated[str, Form(max_length=64)] = versions.CHAMPION,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    principal = acting(request)
    try:
        versions.promote(
            catalog,
            version_id,
            alias=alias,
            gates=workspace.config.gates,
            reason=reason.strip() or None,
            actor=principal.name,
        )
    except GenloopError as error:
        context = {**_models_context(request, catalog, workspace), "error": error}
        return page(templates, request, principal, "console/models.html", context, status.HTTP_409_CONFLICT)
    return back_to(f"/console/models?promoted={quote(version_id)}")


@router.post(
    "/console/models/{name}/rollback", name="console_rollback", response_model=None, **requires("editor")
)
def rollback(
    request: Request,
    catalog: CatalogDep,
    workspace: WorkspaceDep,
    templates: TemplatesDep,
    name: str,
    alias: Annotated[str, Form(max_length=64)] = versions.CHAMPION,
) -> Response:
    principal = acting(request)
    try:
        versions.rollback(catalog, name, alias=alias, actor=principal.name)
    except GenloopError as error:
        context = {**_models_context(request, catalog, workspace), "error": error}
        return page(templates, request, principal, "console/models.html", context, status.HTTP_409_CONFLICT)
    return back_to(f"/console/models?rolled_back={quote(name)}")


# -- generate → job -------------------------------------------------------------------------------


def _generate_context(catalog: Any) -> dict[str, Any]:
    models = [info for info in versions.list_model_versions(catalog, include_archived=False)]
    return {"active": "generate", "models": models, "jobs": queries.latest_jobs(catalog, kind="generate")}


@router.get("/console/generate", name="console_generate", response_model=None)
def generate_form(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep
) -> Response:
    principal = signed_in(request, visitor, "editor")
    if isinstance(principal, Response):
        return principal
    return page(templates, request, principal, "console/generate.html", _generate_context(catalog))


def _split(text: str, separators: str) -> list[str]:
    for separator in separators[1:]:
        text = text.replace(separator, separators[0])
    return [part.strip() for part in text.split(separators[0]) if part.strip()]


@router.post("/console/generate", name="console_generate_submit", response_model=None, **requires("editor"))
def generate_submit(
    request: Request,
    catalog: CatalogDep,
    templates: TemplatesDep,
    model: Annotated[str, Form(min_length=1, max_length=160)],
    labels: Annotated[str, Form(max_length=2000)] = "",
    prompts: Annotated[str, Form(max_length=8000)] = "",
    count: Annotated[int, Form()] = 4,
    seed: Annotated[int, Form()] = 0,
) -> Response:
    principal = acting(request)
    try:
        if not 1 <= count <= MAX_GENERATE_COUNT:
            raise GenloopError(f"count must be 1–{MAX_GENERATE_COUNT} (got {count})")
        if not 0 <= seed < 2**31:
            raise GenloopError(f"seed must be 0 – 2³¹−1 (got {seed})")
        version_id = versions.resolve_model_version(catalog, model)
        params = {
            "model": version_id,
            "labels": _split(labels, ",，、\n") or None,
            "prompts": [line.strip() for line in prompts.splitlines() if line.strip()] or None,
            "per_class": count,
            "count": count,
            "seed": seed,
        }
        try:
            from genloop.jobs.queue import enqueue  # lazily: the job queue is its own module
        except ImportError as missing:
            raise GenloopError(
                "this installation has no job queue (genloop.jobs.queue)",
                hint="generate on the command line: `genloop generate`",
            ) from missing
        job_id = enqueue(catalog, "generate", params, created_by=principal.name)
    except GenloopError as error:
        context = {
            **_generate_context(catalog),
            "error": error,
            "form": {"model": model, "labels": labels, "prompts": prompts, "count": count, "seed": seed},
        }
        return page(
            templates, request, principal, "console/generate.html", context, status.HTTP_400_BAD_REQUEST
        )
    return back_to(f"/console/jobs/{quote(job_id)}")


@router.get("/console/jobs/{job_id}", name="console_job", response_model=None)
def job(
    request: Request,
    visitor: VisitorDep,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    job_id: str,
) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    row = queries.get_job(catalog, job_id)
    content_ids = [str(i) for i in (row.result or {}).get("content_ids", [])][:200]
    context = {
        "active": "generate",
        "job": row,
        "content_ids": content_ids,
        "media": queries.card_media(workspace, catalog, content_ids),
        "finished": row.status in ("done", "failed", "cancelled"),
    }
    return page(templates, request, principal, "console/job.html", context)


# -- review queue ---------------------------------------------------------------------------------


def _review_context(workspace: Any, catalog: Any) -> dict[str, Any]:
    waiting = review_queue.list_items(catalog, "review")
    approved = review_queue.list_items(catalog, "approved")
    ids = [item.id for item in waiting + approved]
    return {
        "active": "review",
        "waiting": waiting,
        "approved": approved,
        "media": queries.card_media(workspace, catalog, ids),
    }


@router.get("/console/review", name="console_review", response_model=None)
def review(
    request: Request,
    visitor: VisitorDep,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
) -> Response:
    principal = signed_in(request, visitor, "reviewer")
    if isinstance(principal, Response):
        return principal
    context = {**_review_context(workspace, catalog), "done": request.query_params.get("done")}
    return page(templates, request, principal, "console/review.html", context)


def _review_action(
    request: Request, workspace: Any, catalog: Any, templates: Jinja2Templates, action: Any, done: str
) -> Response:
    try:
        action()
    except GenloopError as error:
        context = {**_review_context(workspace, catalog), "error": error}
        return page(
            templates, request, acting(request), "console/review.html", context, status.HTTP_400_BAD_REQUEST
        )
    return back_to(f"/console/review?done={quote(done)}")


@router.post(
    "/console/review/{content_id}/approve",
    name="console_approve",
    response_model=None,
    **requires("reviewer"),
)
def approve(
    request: Request,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    content_id: str,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    actor = acting(request).name

    def act() -> None:
        review_queue.approve(catalog, [content_id], note=note.strip() or None, actor=actor)

    return _review_action(request, workspace, catalog, templates, act, "approved")


@router.post(
    "/console/review/{content_id}/reject", name="console_reject", response_model=None, **requires("reviewer")
)
def reject(
    request: Request,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    content_id: str,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    actor = acting(request).name

    def act() -> None:
        review_queue.reject(catalog, [content_id], reason=reason, actor=actor)

    return _review_action(request, workspace, catalog, templates, act, "rejected")


@router.post(
    "/console/review/{content_id}/publish", name="console_publish", response_model=None, **requires("editor")
)
def publish(
    request: Request,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    content_id: str,
) -> Response:
    def act() -> None:
        from genloop.publish import publish_content

        item = review_queue.show(catalog, content_id)
        outcome = publish_content(catalog, [item.id], item.channel)
        if item.id in outcome.held:
            raise GenloopError(f"content item {item.id} is {outcome.held[item.id]}; approve it first")

    return _review_action(request, workspace, catalog, templates, act, "published")


# -- annotation queue -----------------------------------------------------------------------------


def _record_view(workspace: Any, catalog: Any, dataset_version_id: str, record_id: str) -> dict[str, Any]:
    """What the annotator looks at: the text, or the image as a data: URL (as `genloop annotations next`)."""
    from genloop.data.datasets import open_dataset_version

    try:
        dataset = open_dataset_version(workspace, catalog, dataset_version_id)
        records = dataset.iter_records()
        for record in records:
            if record.id == record_id:
                return _shown(record)
    except (GenloopError, OSError) as error:  # the version's files are gone: say so, still label it
        return {"missing": str(error)}
    return {}


def _shown(record: Any) -> dict[str, Any]:
    if record.modality == "text":
        return {"text": record.payload.decode("utf-8", errors="replace")}
    if record.modality == "image":
        return {"image": "data:image/png;base64," + base64.b64encode(record.payload).decode("ascii")}
    return {"where": f"{record.modality} {record.where}"}


def _label_choices(manifest: dict[str, Any], suggested: str | None) -> list[str]:
    classes = manifest.get("classes") or [k for k in (manifest.get("labels") or {}) if k != "(none)"]
    choices = [str(c) for c in classes][:50]
    if suggested and suggested not in choices:
        choices.insert(0, suggested)
    return choices


def _annotate_context(workspace: Any, catalog: Any, principal: Principal) -> dict[str, Any]:
    task = annotation_queue.next_task(catalog, principal.name)
    context: dict[str, Any] = {
        "active": "annotate",
        "task": task,
        "counts": annotation_queue.queue_counts(catalog),
    }
    if task is not None:
        manifest = queries.get_dataset(catalog, task.dataset_version_id).manifest
        context["choices"] = _label_choices(manifest, task.suggested_label)
        context["record"] = _record_view(workspace, catalog, task.dataset_version_id, task.record_id)
    return context


@router.get("/console/annotate", name="console_annotate", response_model=None)
def annotate(
    request: Request,
    visitor: VisitorDep,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
) -> Response:
    principal = signed_in(request, visitor, "reviewer")
    if isinstance(principal, Response):
        return principal
    context = {**_annotate_context(workspace, catalog, principal), "done": request.query_params.get("done")}
    return page(templates, request, principal, "console/annotate.html", context)


@router.post(
    "/console/annotate/{task_id}", name="console_annotate_submit", response_model=None, **requires("reviewer")
)
def annotate_submit(
    request: Request,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    task_id: int,
    label: Annotated[str, Form(min_length=1, max_length=annotation_queue.MAX_LABEL)],
) -> Response:
    principal = acting(request)
    try:
        annotation_queue.submit(catalog, task_id, principal.name, label.strip())
    except GenloopError as error:
        context = {**_annotate_context(workspace, catalog, principal), "error": error}
        return page(
            templates, request, principal, "console/annotate.html", context, status.HTTP_400_BAD_REQUEST
        )
    return back_to(f"/console/annotate?done={task_id}")


# -- analytics ------------------------------------------------------------------------------------


def _over_time_chart(catalog: Any) -> Any:
    """Cumulative like-rate per model version by day (cumulative: one vote a day is not a trend)."""
    series: dict[str, list[tuple[float, float]]] = {}
    labels: dict[float, str] = {}
    by_day = queries.like_rate_by_day(catalog)
    days = sorted({day for rows in by_day.values() for day, _, _ in rows})
    index = {day: float(i) for i, day in enumerate(days)}
    for version_id, rows in by_day.items():
        likes = votes = 0
        points = []
        for day, day_likes, day_dislikes in rows:
            likes, votes = likes + day_likes, votes + day_likes + day_dislikes
            if votes:
                points.append((index[day], likes / votes))
                labels[index[day]] = day[5:]
        series[version_id] = points
    return line_chart(series, x_labels=labels, y_range=(0.0, 1.0))


def _loop_context(catalog: Any) -> dict[str, Any]:
    """`genloop loop`: like-rate per round (one line per model) and the allocation decisions."""
    from genloop.loop.rounds import RoundSummary, loop_history

    rounds, decisions = loop_history(catalog)
    series: dict[str, list[tuple[float, float]]] = {}
    rows = []
    for row in rounds:
        summary = RoundSummary(row.round, str(row.champion_id), row.challenger_id, dict(row.stats or {}))
        if summary.like_rate is not None:
            series.setdefault(row.model_name, []).append((float(row.round), summary.like_rate))
        rows.append({"row": row, "summary": summary})
    labels = {float(row.round): f"round {row.round}" for row in rounds}
    chart = line_chart(series, x_labels=labels, y_range=(0.0, 1.0)) if series else None
    return {"loop_chart": chart, "loop_rounds": rows, "decisions": decisions}


@router.get("/console/analytics", name="console_analytics", response_model=None)
def analytics(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep
) -> Response:
    principal = signed_in(request, visitor)
    if isinstance(principal, Response):
        return principal
    context = {
        "active": "analytics",
        "groups": {by: queries.feedback_groups(catalog, by) for by in queries.GROUPINGS},
        "over_time": _over_time_chart(catalog),
        **_loop_context(catalog),
    }
    return page(templates, request, principal, "console/analytics.html", context)
