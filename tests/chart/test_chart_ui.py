"""The chart's web UI: the operator serves it on its own port (`--ui-address`), a Service of its
own selects the pod labelled leader (as the gRPC Service does), an optional Ingress routes to that
Service, and the NetworkPolicy admits only `networkPolicy.uiFrom` to the port (no pod by default:
`kubectl port-forward` connects from inside the pod, where no NetworkPolicy filters)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.helm import CHART, KUBE_VERSION, helm, render

from .test_chart import INGRESS_NGINX, VALUES_SETS, by_kind, documents, network_policy, operator_container

UI_INGRESS = VALUES_SETS["ui-ingress"]
SELECTOR = {"app.kubernetes.io/name": "cerebelum", "app.kubernetes.io/instance": "cerebelum"}


def services(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {service["metadata"]["name"]: service for service in by_kind(docs, "Service")}


def ui_rules(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in policy["spec"]["ingress"] if {"port": "ui", "protocol": "TCP"} in rule["ports"]]


def notes(tmp_path: Path, *values: str) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` leaves it out (and a client-side
    `helm install --dry-run` still asks a cluster), so a copy of the chart renders it with `tpl`."""
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
        (chart / "templates" / "zz-notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
            'data: {notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}}\n'
        )
    result = helm(
        *("template", "cerebelum", str(chart), "-n", "cerebelum-system", "--kube-version", KUBE_VERSION),
        *("--show-only", "templates/zz-notes.yaml", *values),
    )
    text: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return text


def test_by_default_the_ui_is_served_on_its_port_behind_its_own_service_which_reaches_only_the_leader() -> None:
    docs = documents(render())
    container = operator_container(docs)
    assert "--ui-address=0.0.0.0:7452" in container["args"]
    assert {"name": "ui", "containerPort": 7452} in container["ports"]
    by_name = services(docs)
    assert set(by_name) == {"cerebelum", "cerebelum-ui"}
    ui = by_name["cerebelum-ui"]["spec"]
    assert ui["type"] == "ClusterIP"
    assert ui["ports"] == [{"name": "http", "port": 7452, "targetPort": "ui", "appProtocol": "http"}]
    # A standby has no engine to show: the UI Service selects the leader exactly as gRPC's does.
    assert ui["selector"] == by_name["cerebelum"]["spec"]["selector"] == {**SELECTOR, "cerebelum.io/role": "leader"}
    assert not by_kind(docs, "Ingress")


def test_with_standbys_the_ui_service_still_selects_only_the_leader() -> None:
    by_name = services(documents(render(*VALUES_SETS["standby-with-metrics"])))
    assert by_name["cerebelum-ui"]["spec"]["selector"] == {**SELECTOR, "cerebelum.io/role": "leader"}
    assert by_name["cerebelum-metrics"]["spec"]["selector"] == SELECTOR


def test_by_default_the_network_policy_admits_no_pod_to_the_ui_and_never_an_open_rule() -> None:
    """Port-forward reaches the UI without a rule; an ingress rule without `from` would admit everyone."""
    policy = network_policy()
    assert not ui_rules(policy)
    assert all(rule.get("from") for rule in policy["spec"]["ingress"]), "every rule names its peers"


def test_the_ui_port_service_and_ingress_follow_their_values() -> None:
    docs = documents(
        render(
            *UI_INGRESS,
            *("--set", "ui.port=9443", "--set", "ui.service.annotations.team=ops"),
        )
    )
    container = operator_container(docs)
    assert "--ui-address=0.0.0.0:9443" in container["args"]
    assert {"name": "ui", "containerPort": 9443} in container["ports"]
    service = services(docs)["cerebelum-ui"]
    assert service["metadata"]["annotations"] == {"team": "ops"}
    assert service["spec"]["ports"][0]["port"] == 9443
    (ingress,) = by_kind(docs, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1" and ingress["metadata"]["name"] == "cerebelum-ui"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "cerebelum-ui-tls", "hosts": ["cerebelum.corp.example"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "cerebelum.corp.example"
    (path,) = rule["http"]["paths"]
    assert path == {
        "path": "/",
        "pathType": "Prefix",
        "backend": {"service": {"name": "cerebelum-ui", "port": {"name": "http"}}},
    }
    assert path["backend"]["service"]["port"]["name"] == service["spec"]["ports"][0]["name"]
    (ui,) = ui_rules(network_policy(*UI_INGRESS))
    assert ui == {"ports": [{"port": "ui", "protocol": "TCP"}], "from": [INGRESS_NGINX]}


def test_an_ingress_host_left_empty_matches_every_host() -> None:
    docs = documents(
        render(
            *("--set", "ui.ingress.enabled=true", "--set-json", f"networkPolicy.uiFrom={json.dumps([INGRESS_NGINX])}"),
            *("--set-json", 'ui.ingress.hosts=[{"host":"","paths":[{"path":"/cerebelum"}]}]'),
        )
    )
    (ingress,) = by_kind(docs, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule and "ingressClassName" not in ingress["spec"] and "tls" not in ingress["spec"]
    assert rule["http"]["paths"][0]["path"] == "/cerebelum" and rule["http"]["paths"][0]["pathType"] == "Prefix"


def test_ui_disabled_leaves_out_the_flag_the_port_the_service_the_ingress_and_the_policy_rule(
    tmp_path: Path,
) -> None:
    off = ("--set", "ui.enabled=false", "--set-json", f"networkPolicy.uiFrom={json.dumps([INGRESS_NGINX])}")
    docs = documents(render(*off))
    container = operator_container(docs)
    assert not any(arg.startswith("--ui-address") for arg in container["args"])
    assert [port["name"] for port in container["ports"]] == ["grpc", "http"]
    assert set(services(docs)) == {"cerebelum"}
    assert not by_kind(docs, "Ingress")
    assert not ui_rules(network_policy(*off))
    text = notes(tmp_path, *off)
    assert "UI: off (ui.enabled)" in text and "port-forward" not in text


def test_the_notes_say_how_to_open_the_ui(tmp_path: Path) -> None:
    default = notes(tmp_path)
    assert "kubectl -n cerebelum-system port-forward svc/cerebelum-ui 7452" in default
    assert "http://localhost:7452" in default and "--audience cerebelum" in default
    assert "no pod (kubectl port-forward only)" in default
    with_ingress = notes(tmp_path, *UI_INGRESS)
    assert "https://cerebelum.corp.example/" in with_ingress
    assert "port-forward svc/cerebelum-ui" in with_ingress
    without_tls = notes(tmp_path, *UI_INGRESS, "--set-json", "ui.ingress.tls=[]")
    assert "http://cerebelum.corp.example/" in without_tls and "the Ingress has NO TLS" in without_tls


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            ["--set", "ui.ingress.enabled=true"],
            "ui.ingress.enabled=true: the NetworkPolicy admits no pod to the web UI",
        ),
        (
            ["--set", "ui.service.type=LoadBalancer"],
            "ui.service.type=LoadBalancer: the NetworkPolicy admits no pod to the web UI",
        ),
        (
            ["--set", "auth.mode=none", *UI_INGRESS],
            "auth.mode=none with ui.ingress.enabled=true serves the web UI without a login outside the cluster",
        ),
        (
            ["--set", "ui.enabled=false", "--set", "ui.ingress.enabled=true"],
            "ui.ingress.enabled=true but ui.enabled=false",
        ),
        (["--set", "ui.port=8080"], "ui.port=8080 is taken on the pod"),
        (["--set", "ui.port=80"], "at '/ui/port': minimum: got 80, want 1,024"),
        (["--set", "ui.ingres.enabled=true"], "additional properties 'ingres' not allowed"),
        (["--set-json", 'ui.ingress.hosts=[{"host":"a.example","paths":[{"path":"ui"}]}]'], "at '/ui/ingress/hosts/0"),
        (["--set-json", 'networkPolicy.uiFrom=[{"podSelecter":{}}]'], "at '/networkPolicy/uiFrom/0'"),
    ],
    ids=[
        "ingress-behind-the-policy",
        "load-balancer-behind-the-policy",
        "ingress-without-auth",
        "ingress-without-ui",
        "port-taken",
        "privileged-port",
        "typo",
        "relative-path",
        "peer-typo",
    ],
)
def test_ui_values_that_could_not_work_or_would_expose_it_are_refused_naming_them(
    values: list[str], complaint: str
) -> None:
    result = helm("template", "cerebelum", str(CHART), "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode != 0, "rendered"
    assert complaint in result.stderr, result.stderr


def test_the_values_schema_is_valid_and_documents_every_ui_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    ui = schema["properties"]["ui"]
    assert set(ui["properties"]) == set(defaults["ui"])
    assert set(ui["properties"]["ingress"]["properties"]) == set(defaults["ui"]["ingress"])
    assert set(ui["properties"]["service"]["properties"]) == set(defaults["ui"]["service"])
    described = [ui, *ui["properties"].values(), *ui["properties"]["ingress"]["properties"].values()]
    assert all(node.get("description") for node in described)
    assert schema["properties"]["networkPolicy"]["properties"]["uiFrom"]["description"]


def test_an_upgrade_reusing_the_values_of_a_chart_without_the_ui_keeps_it_off_and_says_how_to_turn_it_on(
    tmp_path: Path,
) -> None:
    """`helm upgrade --reuse-values` renders the new templates with the old chart's values (helm's
    upgrade action: chart.Values = the old coalesced values), which have no `ui`."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    del values["ui"], values["networkPolicy"]["uiFrom"]
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    render_old = ("template", "cerebelum", str(chart), "--kube-version", KUBE_VERSION)
    docs = documents(helm(*render_old).stdout)
    assert not any(arg.startswith("--ui-address") for arg in operator_container(docs)["args"])
    assert set(services(docs)) == {"cerebelum"} and not by_kind(docs, "Ingress")
    refused = helm(*render_old, "--set", "ui.enabled=true", check=False)
    assert refused.returncode != 0 and "upgrade with --reset-then-reuse-values" in refused.stderr, refused.stderr
