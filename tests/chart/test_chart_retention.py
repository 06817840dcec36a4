"""The chart's retention values (issue 19): the Execution objects' time-to-live and the store's
retention period reach the operator, an export volume is claimed and mounted, and combinations that
would leave objects without their histories fail before anything is installed."""

from __future__ import annotations

import pytest

from tests.support.helm import CHART, KUBE_VERSION, helm, render

from .test_chart import by_kind, documents, operator_container


def test_by_default_finished_execution_objects_go_after_a_day_and_the_store_keeps_every_history() -> None:
    docs = documents(render())
    args = operator_container(docs)["args"]
    assert "--execution-ttl=24h" in args
    assert not any(arg.startswith(("--retention=", "--retention-export")) for arg in args)
    assert [claim["metadata"]["name"] for claim in by_kind(docs, "PersistentVolumeClaim")] == ["cerebelum-data"]


def test_a_retention_period_with_exports_claims_a_kept_volume_and_mounts_it_where_the_operator_writes() -> None:
    docs = documents(
        render(*("--set", "storage.retention.period=30d", "--set", "storage.retention.export.enabled=true"))
    )
    container = operator_container(docs)
    assert {"--retention=30d", "--retention-export=/exports", "--execution-ttl=24h"} <= set(container["args"])
    assert {"name": "exports", "mountPath": "/exports"} in container["volumeMounts"]
    claims = {claim["metadata"]["name"]: claim for claim in by_kind(docs, "PersistentVolumeClaim")}
    assert claims["cerebelum-exports"]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (deployment,) = by_kind(docs, "Deployment")
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["exports"]["persistentVolumeClaim"]["claimName"] == "cerebelum-exports"


def test_an_existing_claim_for_exports_is_used_and_none_is_made() -> None:
    docs = documents(
        render(
            *("--set", "storage.retention.period=30d", "--set", "storage.retention.export.enabled=true"),
            *("--set", "storage.retention.export.existingClaim=archive"),
        )
    )
    assert "cerebelum-exports" not in {claim["metadata"]["name"] for claim in by_kind(docs, "PersistentVolumeClaim")}
    (deployment,) = by_kind(docs, "Deployment")
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["exports"]["persistentVolumeClaim"]["claimName"] == "archive"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["--set", "storage.retention.export.enabled=true"], "storage.retention.export.enabled writes what"),
        (
            ["--set", "storage.retention.period=30d", "--set", "operator.executionTtl=never"],
            "operator.executionTtl=never keeps Execution objects for ever: they would outlive their histories",
        ),
        (["--set", "operator.executionTtl=soon"], "at '/operator/executionTtl'"),
        (["--set", "storage.retention.period=a month"], "at '/storage/retention/period'"),
    ],
    ids=["export-without-period", "never-with-period", "bad-ttl", "bad-period"],
)
def test_retention_values_that_cannot_work_fail_before_anything_is_installed(values: list[str], complaint: str) -> None:
    result = helm("template", "cerebelum", str(CHART), "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr
