"""The check flow, scheduled daily: does each target still match its code, ledger and backups?

Per target: the revision against head (pending revisions listed), model drift, applied revision
files changed since they ran, unfinished ledger rows, backups outside the retention policy or
failing their sha256, and the application's health. Each target gets a Markdown artifact
``migration-check-<target>``; a target with anything wrong emits
``autopr.migration.check-failed`` (``autopr-migrate setup`` turns that into an alert) and the
run ends Completed under the name "Problems found" (the check did its job; the event is the
alert). A check that cannot run at all ends Failed, and the failed-run automation pages.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from autopr_migrate.errors import ConfigurationError
from autopr_migrate.operations.target_check import TargetCheck
from autopr_migrate.orchestration import events
from autopr_migrate.orchestration.secrets import secret_block
from autopr_migrate.orchestration.steps.target_check import check_target
from autopr_migrate.policy.parameters import MigrationPolicy
from autopr_migrate.targets.targets import default_target_name, resolve_target


def _run_name() -> str:
    return f"check-{'-'.join(flow_run.parameters.get('targets') or ['default'])}"


@flow(name="check", flow_run_name=_run_name)
def check(targets: list[str] | None = None, policy: MigrationPolicy | None = None) -> State:
    """Check each target (default: the default target) and report what is wrong."""
    policy = policy or MigrationPolicy()
    logger = get_run_logger()
    names = targets or [default_target_name()]
    failing, unusable = [], []
    for name in names:
        try:
            target = resolve_target(name, secrets=secret_block)
        except ConfigurationError as exc:  # check the others; the run still ends Failed
            logger.error("%s", exc)
            unusable.append(name)
            continue
        result = check_target(target, policy)
        create_markdown_artifact(
            markdown=render(result),
            key=f"migration-check-{target.name}",
            description=f"{'clean' if not result.problems else 'PROBLEMS'}: {target.name}",
        )
        for finding in result.findings:
            log = logger.info if finding.ok else logger.warning
            log("%s %s: %s", target.name, finding.area, finding.summary)
        if result.problems:
            failing.append(f"{target.name} ({', '.join(f.area for f in result.problems)})")
            events.emit(
                target, events.CHECK_FAILED, problems={f.area: f.summary for f in result.problems}
            )
    if unusable:
        return Failed(
            message=f"could not check {', '.join(unusable)} (not configured); "
            f"problems on {'; '.join(failing) or 'none of the others'}"
        )
    if failing:
        return Completed(name="Problems found", message=f"problems on {'; '.join(failing)}")
    return Completed(message=f"{len(names)} target(s) clean: {', '.join(names)}")


def render(result: TargetCheck) -> str:
    verdict = (
        "**Clean**: nothing needs attention."
        if not result.problems
        else f"**{len(result.problems)} problem(s)** need attention."
    )
    lines = [
        f"# Check of {result.target}",
        "",
        verdict,
        "",
        f"Database: `{result.masked_url}`",
        "",
        "| area | | finding |",
        "|---|---|---|",
        *(
            f"| {f.area} | {'ok' if f.ok else '**PROBLEM**'} | {f.summary} |"
            for f in result.findings
        ),
    ]
    for finding in result.problems:
        if finding.details:
            lines += ["", f"### {finding.area}", "", *(f"- {line}" for line in finding.details)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    check()
