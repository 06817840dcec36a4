"""The operator's Helm chart: lint, render with several values sets, refuse bad values, and apply
what it renders to the real API server. (The operator tests run with this chart's RBAC.)"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.control_plane import ControlPlane
from tests.support.helm import CHART, KUBE_VERSION, helm, render

ROOT = Path(__file__).resolve().parents[2]

# The ingress-nginx controller's pods, admitted to the web UI behind an Ingress.
INGRESS_NGINX = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
}

VALUES_SETS: dict[str, list[str]] = {
    "default": [],
    "postgresql": ["--set", "storage.type=postgresql", "--set", "storage.postgresql.existingSecret=cerebelum-db"],
    "standby-with-metrics": [
        *("--set", "storage.type=postgresql", "--set", "storage.postgresql.existingSecret=cerebelum-db"),
        *("--set", "replicas=2", "--set", "metrics.enabled=true", "--set", "watchNamespaces={team-a,team-b}"),
    ],
    "sharded": [
        *("--set", "storage.type=postgresql", "--set", "storage.postgresql.existingSecret=cerebelum-db"),
        *("--set", "replicas=3", "--set", "operator.sharding.enabled=true"),
    ],
    "sharded-with-tls": [
        *("--set", "storage.type=postgresql", "--set", "storage.postgresql.existingSecret=cerebelum-db"),
        *("--set", "replicas=3", "--set", "operator.sharding.enabled=true", "--set", "tls.enabled=true"),
    ],
    "no-crds-no-policy": ["--set", "crds.install=false", "--set", "approvalPolicy.enabled=false"],
    "access-policy-and-tls": [
        *(
            "--set-json",
            'auth.accessPolicy={"workers":[{"subjects":["system:serviceaccount:ops:*"],"namespaces":["*"],"queues":["q"]}]}',
        ),
        *("--set", "tls.enabled=true", "--set", "tls.existingSecret=cerebelum-tls"),
    ],
    "tls-generated": ["--set", "tls.enabled=true"],
    "tls-cert-manager": [
        *("--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true"),
        *(
            "--set",
            "tls.certManager.issuerRef.name=cluster-ca",
            "--set",
            "tls.certManager.issuerRef.kind=ClusterIssuer",
        ),
    ],
    "exposed-with-tls": [
        *("--set", "service.type=LoadBalancer", "--set", "tls.enabled=true"),
        *("--set-json", 'networkPolicy.grpc.extraFrom=[{"ipBlock":{"cidr":"10.0.0.0/8"}}]'),
    ],
    "no-auth": ["--set", "auth.mode=none"],
    "ui-ingress": [
        *("--set", "ui.ingress.enabled=true", "--set", "ui.ingress.className=nginx"),
        *("--set", "ui.ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt"),
        *(
            "--set-json",
            'ui.ingress.hosts=[{"host":"cerebelum.corp.example","paths":[{"path":"/","pathType":"Prefix"}]}]',
        ),
        *("--set-json", 'ui.ingress.tls=[{"secretName":"cerebelum-ui-tls","hosts":["cerebelum.corp.example"]}]'),
        *("--set-json", f"networkPolicy.uiFrom={json.dumps([INGRESS_NGINX])}"),
    ],
}


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(docs, "Deployment")
    container: dict[str, Any]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("values", VALUES_SETS.values(), ids=VALUES_SETS.keys())
def test_the_chart_lints_cleanly_with_each_values_set(values: list[str]) -> None:
    result = helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_values_render_a_hardened_operator_on_sqlite_whose_history_outlives_the_release() -> None:
    docs = documents(render())
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "a SQLite volume serves one pod at a time"
    env = {e["name"]: e for e in container["env"]}
    assert env["CEREBELUM_DATABASE_URL"]["value"] == "sqlite:////data/cerebelum.db"
    assert "--lease-name=cerebelum" in container["args"] and pod["serviceAccountName"] == "cerebelum"
    (claim,) = by_kind(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    crds = by_kind(docs, "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "approvals.cerebelum.io",
        "executions.cerebelum.io",
        "schedules.cerebelum.io",
        "signals.cerebelum.io",
        "workflows.cerebelum.io",
    ]
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    (service,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "cerebelum"]
    assert service["spec"]["ports"] == [{"name": "grpc", "port": 7450, "targetPort": "grpc", "appProtocol": "grpc"}]
    assert by_kind(docs, "PodDisruptionBudget") and by_kind(docs, "MutatingAdmissionPolicy")


def test_the_chart_ships_exactly_the_generated_crds() -> None:
    rendered = {c["metadata"]["name"]: c["spec"] for c in by_kind(documents(render()), "CustomResourceDefinition")}
    committed = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        committed[crd["metadata"]["name"]] = crd["spec"]
    assert rendered == committed


def test_postgresql_values_take_the_url_from_a_secret_and_claim_no_volume() -> None:
    docs = documents(render(*VALUES_SETS["standby-with-metrics"]))
    container = operator_container(docs)
    url = {e["name"]: e for e in container["env"]}["CEREBELUM_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "cerebelum-db", "key": "url"}
    assert not by_kind(docs, "PersistentVolumeClaim")
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert [a for a in container["args"] if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    assert services["cerebelum-metrics"]["spec"]["ports"][0]["targetPort"] == "http"


def test_switching_off_the_crds_and_the_policy_leaves_them_out() -> None:
    kinds = {doc["kind"] for doc in documents(render(*VALUES_SETS["no-crds-no-policy"]))}
    assert "CustomResourceDefinition" not in kinds and "MutatingAdmissionPolicy" not in kinds
    assert {"Deployment", "ClusterRole", "Role", "Service"} <= kinds


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["--set", "replcas=2"], "additional properties 'replcas' not allowed"),
        (["--set", "replicas=2"], "at '/replicas': maximum: got 2, want 1"),
        (["--set", "storage.type=mysql"], "at '/storage/type': value must be one of 'sqlite', 'postgresql'"),
        (["--set", "storage.type=postgresql"], "at '/storage/postgresql/existingSecret'"),
        (["--set", "operator.logLevel=loud"], "at '/operator/logLevel'"),
        (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["--set", "podLabels.cerebelum\\.io/role=leader"], "at '/podLabels'"),
    ],
    ids=[
        "typo",
        "two-replicas-on-sqlite",
        "unknown-store",
        "postgresql-without-secret",
        "log-level",
        "pull-policy",
        "pod-labels-with-the-role",
    ],
)
def test_bad_values_fail_before_anything_is_installed_naming_the_value(values: list[str], complaint: str) -> None:
    result = helm("template", "cerebelum", str(CHART), "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


@pytest.mark.kube
@pytest.mark.parametrize("values", ["default", "standby-with-metrics", "tls-generated", "ui-ingress"])
def test_every_manifest_the_chart_renders_is_accepted_by_the_api_server(
    control_plane: ControlPlane, crds: list[str], values: str
) -> None:
    release = f"cb-{secrets.token_hex(3)}"
    namespace = f"chart-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", namespace)
    for watched in ("team-a", "team-b"):  # standby-with-metrics puts a Role in each
        control_plane.kubectl("create", "namespace", watched, check=False)
    manifests = render(*VALUES_SETS[values], release=release, namespace=namespace)
    # Every namespaced object names its namespace, as `helm install` applies it.
    applied = control_plane.kubectl("apply", "-f", "-", input=manifests, check=False)
    assert applied.returncode == 0, applied.stderr
    fullname = f"{release}-cerebelum"  # the release name does not say "cerebelum"
    created = {line.split()[0] for line in applied.stdout.splitlines() if line.endswith(" created")}
    for kind in (
        "deployment.apps",
        "service",
        "serviceaccount",
        "clusterrole.rbac.authorization.k8s.io",
        "poddisruptionbudget.policy",
        "networkpolicy.networking.k8s.io",
    ):
        assert f"{kind}/{fullname}" in created, applied.stdout
    assert f"service/{fullname}-ui" in created, applied.stdout
    if values == "ui-ingress":
        assert f"ingress.networking.k8s.io/{fullname}-ui" in created, applied.stdout
    assert f"role.rbac.authorization.k8s.io/{fullname}-leader-election" in created, applied.stdout
    deployment = control_plane.kubectl("get", "deployment", fullname, "-n", namespace, "-o", "yaml").stdout
    assert "readOnlyRootFilesystem: true" in deployment


@pytest.mark.kube
def test_helm_install_succeeds_and_uninstall_keeps_the_crds_the_resources_and_the_store_volume(
    control_plane: ControlPlane,
) -> None:
    # A control plane of its own: here Helm must own the CRDs from the start, as on a fresh cluster.
    with ControlPlane(control_plane.bin_dir) as fresh:
        kubeconfig = f"--kubeconfig={fresh.kubeconfig}"
        installed = helm("install", "cerebelum", str(CHART), "-n", "cerebelum-system", "--create-namespace", kubeconfig)
        assert "STATUS: deployed" in installed.stdout
        assert "cerebelum.cerebelum-system.svc:7450" in installed.stdout, "NOTES tell workers where to connect"
        fresh.kubectl("wait", "--for=condition=Established", "crd/workflows.cerebelum.io", "--timeout=60s")
        workflow = (ROOT / "examples" / "provision" / "workflow.yaml").read_text()
        fresh.kubectl("apply", "-n", "default", "-f", "-", input=workflow)

        helm("uninstall", "cerebelum", "-n", "cerebelum-system", kubeconfig)

        assert fresh.kubectl("get", "deployment", "cerebelum", "-n", "cerebelum-system", check=False).returncode != 0
        assert fresh.kubectl("get", "clusterrole", "cerebelum", check=False).returncode != 0
        kept = fresh.kubectl("get", "crd", "-o", "name").stdout.split()
        assert sorted(kept) == [
            "customresourcedefinition.apiextensions.k8s.io/approvals.cerebelum.io",
            "customresourcedefinition.apiextensions.k8s.io/executions.cerebelum.io",
            "customresourcedefinition.apiextensions.k8s.io/schedules.cerebelum.io",
            "customresourcedefinition.apiextensions.k8s.io/signals.cerebelum.io",
            "customresourcedefinition.apiextensions.k8s.io/workflows.cerebelum.io",
        ]
        assert fresh.kubectl("get", "workflow/provision-server", "-n", "default", check=False).returncode == 0
        assert fresh.kubectl("get", "pvc", "cerebelum-data", "-n", "cerebelum-system", check=False).returncode == 0


def test_by_default_workers_are_authenticated_by_token_review_which_the_rbac_allows() -> None:
    docs = documents(render())
    args = operator_container(docs)["args"]
    assert "--auth=kubernetes" in args and "--token-audience=cerebelum" in args
    assert not any(arg.startswith(("--access-policy", "--tls-")) for arg in args)
    (role,) = by_kind(docs, "ClusterRole")
    assert {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]} in role["rules"]


def test_an_access_policy_renders_to_a_file_the_operator_parses_and_tls_mounts_the_secret() -> None:
    from cerebelum_operator.api import AccessPolicy, Identity

    docs = documents(render(*VALUES_SETS["access-policy-and-tls"]))
    (config_map,) = by_kind(docs, "ConfigMap")
    policy = AccessPolicy.from_document(yaml.safe_load(config_map["data"]["policy.yaml"]))
    assert policy.worker_namespaces(Identity("system:serviceaccount:ops:worker"), "q") is None
    container = operator_container(docs)
    assert "--access-policy=/etc/cerebelum/access/policy.yaml" in container["args"]
    assert {"--tls-cert=/etc/cerebelum/tls/tls.crt", "--tls-key=/etc/cerebelum/tls/tls.key"} <= set(container["args"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["access-policy"] == "/etc/cerebelum/access" and mounts["tls"] == "/etc/cerebelum/tls"


def test_auth_none_renders_no_policy_and_no_token_options() -> None:
    args = operator_container(documents(render(*VALUES_SETS["no-auth"])))["args"]
    assert "--auth=none" in args and not any(arg.startswith("--token-audience") for arg in args)


def rules_of(role: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every permission a Role or ClusterRole grants."""
    return [
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


ADMISSION_POLICY_READS = {
    ("admissionregistration.k8s.io", resource, verb)
    for resource in ("mutatingadmissionpolicies", "mutatingadmissionpolicybindings")
    for verb in ("get", "list", "watch")
}


def test_with_watch_namespaces_the_operator_writes_only_through_a_role_in_each_of_them() -> None:
    docs = documents(render("--set", "watchNamespaces={team-a,team-b}", "--show-only", "templates/rbac.yaml"))
    (cluster_role,) = by_kind(docs, "ClusterRole")
    cluster_wide = set(rules_of(cluster_role))
    assert not any(group == "cerebelum.io" or resource == "events" for group, resource, _ in cluster_wide)
    assert {verb for _, _, verb in cluster_wide} - {"get", "list", "watch"} == {"create"}
    assert [(g, r) for g, r, v in cluster_wide if v == "create"] == [("authentication.k8s.io", "tokenreviews")]
    assert cluster_wide >= ADMISSION_POLICY_READS
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(docs, "Role")}
    assert set(roles) == {
        ("team-a", "cerebelum"),
        ("team-b", "cerebelum"),
        ("cerebelum-system", "cerebelum-leader-election"),
    }
    for namespace in ("team-a", "team-b"):
        granted = set(rules_of(roles[(namespace, "cerebelum")]))
        assert ("cerebelum.io", "executions", "patch") in granted
        assert ("cerebelum.io", "executions/status", "patch") in granted
        assert ("", "events", "create") in granted
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]): b for b in by_kind(docs, "RoleBinding")}
    for namespace in ("team-a", "team-b"):
        (subject,) = bindings[(namespace, "cerebelum")]["subjects"]
        assert subject == {"kind": "ServiceAccount", "name": "cerebelum", "namespace": "cerebelum-system"}


def test_the_operator_may_create_executions_delete_them_with_their_approvals_and_signals_and_nothing_more() -> None:
    """Issue 17: the least the operator needs for Signals, child Executions and Schedules (no update);
    issue 19: delete, for finished Executions past their time-to-live and what names them."""
    for values in ((), ("--set", "watchNamespaces={team-a}")):
        docs = documents(render(*values, "--show-only", "templates/rbac.yaml"))
        roles = by_kind(docs, "Role" if values else "ClusterRole")
        granted = {rule for role in roles for rule in rules_of(role) if rule[0] == "cerebelum.io"}
        kinds = ("workflows", "executions", "approvals", "signals", "schedules")
        assert granted == {
            *(("cerebelum.io", kind, verb) for kind in kinds for verb in ("get", "list", "watch", "patch")),
            ("cerebelum.io", "executions", "create"),
            *(("cerebelum.io", kind, "delete") for kind in ("executions", "approvals", "signals")),
            *(("cerebelum.io", f"{kind}/status", verb) for kind in kinds for verb in ("get", "patch")),
        }, values


def test_serving_every_namespace_one_cluster_role_holds_it_all_including_the_admission_policy_check() -> None:
    docs = documents(render("--show-only", "templates/rbac.yaml"))
    (cluster_role,) = by_kind(docs, "ClusterRole")
    granted = set(rules_of(cluster_role))
    assert ("cerebelum.io", "executions", "patch") in granted and granted >= ADMISSION_POLICY_READS
    assert [r["metadata"]["name"] for r in by_kind(docs, "Role")] == ["cerebelum-leader-election"]


def test_workers_reach_the_pod_labelled_leader_while_every_replica_may_be_ready_and_is_scraped() -> None:
    docs = documents(render(*VALUES_SETS["standby-with-metrics"]))
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(docs, "Service")}
    selector = {"app.kubernetes.io/name": "cerebelum", "app.kubernetes.io/instance": "cerebelum"}
    assert services["cerebelum"]["selector"] == {**selector, "cerebelum.io/role": "leader"}
    assert services["cerebelum-metrics"]["selector"] == selector, "the standbys' metrics are scraped too"
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "cerebelum.io/role" not in deployment["spec"]["selector"]["matchLabels"]
    assert "cerebelum.io/role" not in deployment["spec"]["template"]["metadata"]["labels"], "each pod sets its own"
    container = operator_container(docs)
    assert "--pod-role-label" in container["args"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert (env["POD_NAME"], env["POD_NAMESPACE"]) == ("metadata.name", "metadata.namespace")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (budget,) = by_kind(docs, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == selector


def test_sharded_replicas_all_serve_behind_the_service_advertise_their_pod_ip_and_reach_each_other() -> None:
    docs = documents(render(*VALUES_SETS["sharded"]))
    selector = {"app.kubernetes.io/name": "cerebelum", "app.kubernetes.io/instance": "cerebelum"}
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(docs, "Service")}
    assert services["cerebelum"]["selector"] == selector, "every replica serves: no leader label"
    headless = services["cerebelum-replicas"]
    assert (headless["clusterIP"], headless["selector"], headless["ports"][0]["port"]) == ("None", selector, 7450)
    container = operator_container(docs)
    assert "--shard-group=cerebelum" in container["args"]
    assert "--pod-role-label" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["CEREBELUM_ADVERTISE_ADDRESS"]["value"] == "$(POD_IP):7450"
    (role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("leader-election")]
    (leases,) = [rule for rule in role["rules"] if rule["resources"] == ["leases"]]
    assert "list" in leases["verbs"], "each replica lists its group's Leases"
    (policy,) = by_kind(docs, "NetworkPolicy")
    own = {"podSelector": {"matchLabels": selector}}
    assert any(own in rule.get("from", []) for rule in policy["spec"]["ingress"]), "replicas forward to each other"
    assert any(own in rule.get("to", []) for rule in policy["spec"]["egress"])


def test_sharded_replicas_serving_tls_verify_each_other_with_the_secret_s_ca_and_the_service_name() -> None:
    docs = documents(render(*VALUES_SETS["sharded-with-tls"]))
    container = operator_container(docs)
    assert "--peer-tls-ca=/etc/cerebelum/tls/ca.crt" in container["args"]
    assert "--peer-tls-server-name=cerebelum.cerebelum-system.svc" in container["args"]
    (secret,) = [d for d in by_kind(docs, "Secret") if d["type"] == "kubernetes.io/tls"]
    assert "ca.crt" in secret["data"]
    (deployment,) = by_kind(docs, "Deployment")
    (tls,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    assert [item["key"] for item in tls["secret"]["items"]] == ["tls.crt", "tls.key", "ca.crt"]
    unsharded = documents(render(*VALUES_SETS["tls-generated"]))
    assert not any(arg.startswith("--peer-tls") for arg in operator_container(unsharded)["args"])
    (deployment,) = by_kind(unsharded, "Deployment")
    (tls,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    assert [item["key"] for item in tls["secret"]["items"]] == ["tls.crt", "tls.key"], "no CA without sharding"


@pytest.mark.parametrize("watch", [[], ["--set", "watchNamespaces={team-a,team-b}"]], ids=["cluster", "namespaces"])
def test_the_operator_may_label_pods_only_in_the_release_namespace_and_do_nothing_else_to_them(
    watch: list[str],
) -> None:
    docs = documents(render(*watch, "--show-only", "templates/rbac.yaml"))
    pods = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): sorted(
            verb for group, resource, verb in rules_of(doc) if (group, resource) == ("", "pods")
        )
        for doc in by_kind(docs, "Role") + by_kind(docs, "ClusterRole")
    }
    assert {ref: verbs for ref, verbs in pods.items() if verbs} == {
        ("Role", "cerebelum-system", "cerebelum-leader-election"): ["get", "patch"]
    }


def network_policy(*values: str) -> dict[str, Any]:
    (policy,) = by_kind(documents(render(*values)), "NetworkPolicy")
    return policy


def test_by_default_a_network_policy_admits_grpc_only_from_worker_pods_and_lets_the_operator_reach_dns_and_the_api() -> (
    None
):
    spec = network_policy()["spec"]
    assert spec["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "cerebelum",
        "app.kubernetes.io/instance": "cerebelum",
    }
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    grpc, metrics = spec["ingress"]
    assert grpc["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    worker_labels = {"app.kubernetes.io/part-of": "cerebelum", "app.kubernetes.io/component": "worker"}
    assert grpc["from"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": worker_labels}}]
    assert metrics["ports"] == [{"port": "http", "protocol": "TCP"}]
    # The worker chart's pods carry exactly the labels the policy admits.
    from tests.chart.test_worker_chart import render as render_worker

    (worker,) = [d for d in render_worker() if d["kind"] == "Deployment"]
    assert worker_labels.items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    dns, api = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    assert len(spec["egress"]) == 2, "SQLite: no database to reach"


def test_the_network_policy_follows_its_values_and_lets_the_operator_reach_postgresql() -> None:
    spec = network_policy(
        *VALUES_SETS["postgresql"],
        *("--set-json", 'networkPolicy.grpc.namespaceSelector={"matchLabels":{"team":"payments"}}'),
        *("--set-json", 'networkPolicy.egress.database.to=[{"ipBlock":{"cidr":"10.9.0.0/16"}}]'),
        *("--set", "networkPolicy.egress.database.port=6432", "--set-json", "networkPolicy.metricsFrom=[]"),
    )["spec"]
    (grpc,) = spec["ingress"]
    assert grpc["from"][0]["namespaceSelector"] == {"matchLabels": {"team": "payments"}}
    database = spec["egress"][2]
    assert database == {"ports": [{"port": 6432, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}]}
    assert not by_kind(documents(render("--set", "networkPolicy.enabled=false")), "NetworkPolicy")


def test_tls_with_cert_manager_asks_for_a_certificate_for_every_name_of_the_service() -> None:
    docs = documents(render(*VALUES_SETS["tls-cert-manager"], "--set", "tls.extraDnsNames={engine.example.com}"))
    (certificate,) = by_kind(docs, "Certificate")
    assert certificate["spec"]["secretName"] == "cerebelum-tls"
    assert certificate["spec"]["issuerRef"] == {
        "name": "cluster-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert certificate["spec"]["dnsNames"] == [
        "cerebelum",
        "cerebelum.cerebelum-system",
        "cerebelum.cerebelum-system.svc",
        "cerebelum.cerebelum-system.svc.cluster.local",
        "engine.example.com",
    ]
    container = operator_container(docs)
    assert {"--tls-cert=/etc/cerebelum/tls/tls.crt", "--tls-key=/etc/cerebelum/tls/tls.key"} <= set(container["args"])
    (deployment,) = by_kind(docs, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "cerebelum-tls"
    assert not by_kind(docs, "Secret"), "cert-manager writes the Secret"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            ["--set", "auth.mode=none", "--set", "networkPolicy.enabled=false"],
            "auth.mode=none with networkPolicy.enabled=false lets every pod in the cluster take",
        ),
        (
            ["--set", "auth.mode=none", "--set", "service.type=NodePort", "--set", "tls.enabled=true"],
            "auth.mode=none with service.type=NodePort serves unauthenticated gRPC outside the cluster",
        ),
        (
            ["--set", "service.type=LoadBalancer"],
            "service.type=LoadBalancer with tls.enabled=false sends workers' tokens and step payloads in plaintext",
        ),
        (
            ["--set", "service.type=LoadBalancer", "--set", "tls.enabled=true"],
            "list them in networkPolicy.grpc.extraFrom",
        ),
        (
            ["--set", "auth.mode=none", "--set-json", 'auth.accessPolicy={"clients":[{"subjects":["group:ops"]}]}'],
            "auth.accessPolicy is enforced only with auth.mode=kubernetes",
        ),
        (["--set", "tls.existingSecret=mine"], "tls.existingSecret is set but tls.enabled=false"),
        (["--set", "tls.certManager.enabled=true"], "tls.certManager.enabled=true but tls.enabled=false"),
        (
            ["--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true", "--set", "tls.existingSecret=x"],
            "tls.existingSecret and tls.certManager.enabled both name where the certificate comes from",
        ),
        (
            ["--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true"],
            "tls.certManager.enabled=true needs tls.certManager.issuerRef.name",
        ),
        (["--set", "operator.sharding.enabled=true"], "operator.sharding.enabled needs storage.type=postgresql"),
        (["--set", "tls.enable=true"], "additional properties 'enable' not allowed"),
        (["--set", "networkPolicy.grpc.podSelector.matchLabel.a=b"], "additional properties 'matchLabel' not allowed"),
        (
            ["--set-json", 'auth.accessPolicy={"workers":[{"subjects":["system:serviceaccount:ops:*"]}]}'],
            "missing properties 'namespaces', 'queues'",
        ),
    ],
    ids=[
        "no-auth-no-network-policy",
        "no-auth-exposed",
        "exposed-plaintext",
        "exposed-behind-the-policy",
        "policy-without-auth",
        "secret-without-tls",
        "cert-manager-without-tls",
        "two-certificate-sources",
        "cert-manager-without-issuer",
        "sharding-on-sqlite",
        "tls-typo",
        "selector-typo",
        "open-worker-rule",
    ],
)
def test_unsafe_combinations_of_values_are_refused_naming_the_values_and_the_way_out(
    values: list[str], complaint: str
) -> None:
    result = helm("template", "cerebelum", str(CHART), "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode != 0, "rendered"
    assert complaint in result.stderr, result.stderr


def test_the_certificate_helm_generates_is_served_by_the_engine_and_trusted_through_the_worker_chart_s_ca(
    tmp_path: Path,
) -> None:
    from cerebelum import Client, TlsSettings, UnavailableError
    from tests.chart.test_worker_chart import render as render_worker
    from tests.support.security import GuardedEngine

    (secret,) = by_kind(documents(render(*VALUES_SETS["tls-generated"])), "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    files = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    for key, content in files.items():
        (tmp_path / key).write_bytes(content)
    assert b"PRIVATE KEY" in files["tls.key"] and files["ca.crt"] != files["tls.crt"]
    # The CA goes to the workers through the worker chart, as the NOTES say.
    worker_docs = render_worker("--set-file", f"engine.tls.ca={tmp_path / 'ca.crt'}")
    (config_map,) = [d for d in worker_docs if d["kind"] == "ConfigMap"]
    (tmp_path / "worker-ca.crt").write_text(config_map["data"]["ca.crt"])

    token = "chart-tls-test-token-0123456789"
    engine = GuardedEngine(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        extra_args=("--token", token, "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key")),
    )
    engine.launch()
    try:
        assert engine.serving(timeout=30), engine.log_path.read_text()
        trusted = TlsSettings(ca_file=str(tmp_path / "worker-ca.crt"), server_name="cerebelum.cerebelum-system.svc")
        with Client(engine.address, token=token, tls=trusted, timeout=10) as client:
            assert client.list_workflows() == []
        wrong_name = TlsSettings(ca_file=str(tmp_path / "worker-ca.crt"), server_name="elsewhere.example")
        with Client(engine.address, token=token, tls=wrong_name, timeout=3) as client, pytest.raises(UnavailableError):
            client.list_workflows()
    finally:
        engine.stop()


def test_the_approval_policy_on_a_cluster_older_than_1_36_is_refused_naming_the_value() -> None:
    """MutatingAdmissionPolicy is v1 from Kubernetes 1.36: on 1.30-1.35 the install would fail
    half-way with "no matches for kind"; the chart says why before anything is installed."""
    old = helm("template", "cerebelum", str(CHART), "--kube-version", "1.35.4", check=False)
    assert old.returncode != 0
    assert "approvalPolicy.enabled needs Kubernetes 1.36 or later" in old.stderr, old.stderr
    without = helm(
        "template", "cerebelum", str(CHART), "--kube-version", "1.30.0", "--set", "approvalPolicy.enabled=false"
    )
    assert "MutatingAdmissionPolicy" not in without.stdout
