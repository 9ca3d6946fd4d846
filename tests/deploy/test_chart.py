"""The Helm chart, rendered with `helm template` for each values variant: what appears, what not, and key fields.

Needs the helm and yq binaries that scripts/install-tools builds into .cache/tools (or $HELM / $YQ); without them
these tests fail in CI and are skipped elsewhere (`tests.support.tools.require_tool`); scripts/check-deploy builds
them first.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.tools import require_tool
from worker.config import WorkerConfig
from worker.mics.transport import BACKENDS, DEFAULT_BACKEND

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mics-worker"
CI_VALUES = REPO / "helm" / "ci"
HELM = Path(os.environ.get("HELM") or REPO / ".cache" / "tools" / "helm")
YQ = Path(os.environ.get("YQ") or REPO / ".cache" / "tools" / "yq")
RELEASE = "mics-worker"
FULLNAME = "mics-worker"
CRD_FREE_TOKEN = "ci-not-a-real-token"
WORKER_DRAIN_TIMEOUT_S = next(f.default for f in dataclasses.fields(WorkerConfig) if f.name == "drain_timeout_s")

INSTALL_HINT = "run scripts/install-tools (needs Go; scripts/check-deploy runs it)"


@pytest.fixture(autouse=True, scope="module")
def _helm_and_yq() -> None:
    """Every test here renders the chart: fail in CI, skip elsewhere, when helm or yq is missing."""
    require_tool("helm", HELM, INSTALL_HINT)
    require_tool("yq", YQ, INSTALL_HINT)


Manifest = dict[str, Any]


@functools.cache
def _render(*args: str) -> tuple[Manifest, ...]:
    """`helm template` with these extra arguments, each manifest as a dict (via yq's YAML → JSON)."""
    helm = subprocess.run(
        [str(HELM), "template", RELEASE, str(CHART), "--namespace", "mics", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    as_json = subprocess.run(
        [str(YQ), "--output-format=json", "--indent=0", "eval-all", "[.]"],
        input=helm.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(document for document in json.loads(as_json.stdout) if document)


def render(values_file: str | None = None, *sets: str) -> tuple[Manifest, ...]:
    args = ["-f", str(CI_VALUES / values_file)] if values_file else []
    for assignment in sets:
        args += ["--set", assignment]
    return _render(*args)


def refusal(*args: str) -> str:
    """The error of a `helm template` that must fail."""
    result = subprocess.run(
        [str(HELM), "template", RELEASE, str(CHART), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0, "the chart accepted values it must refuse"
    return result.stderr


def kinds(manifests: tuple[Manifest, ...]) -> list[str]:
    return sorted(manifest["kind"] for manifest in manifests)


def one(manifests: tuple[Manifest, ...], kind: str) -> Manifest:
    found = [manifest for manifest in manifests if manifest["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} manifests"
    return found[0]


def worker_pod(manifests: tuple[Manifest, ...]) -> Manifest:
    pod: Manifest = one(manifests, "Deployment")["spec"]["template"]
    return pod


def worker_container(manifests: tuple[Manifest, ...]) -> Manifest:
    containers = worker_pod(manifests)["spec"]["containers"]
    assert [container["name"] for container in containers] == ["worker"]
    container: Manifest = containers[0]
    return container


def dashboards(manifests: tuple[Manifest, ...]) -> list[Manifest]:
    """The ConfigMaps that Grafana's sidecar loads."""
    return [m for m in manifests if m["kind"] == "ConfigMap" and "grafana_dashboard" in m["metadata"]["labels"]]


def env_of(manifests: tuple[Manifest, ...]) -> dict[str, Any]:
    return {item["name"]: item for item in worker_container(manifests).get("env", [])}


class TestDefaultRelease:
    def test_renders_only_the_unconditional_objects(self) -> None:
        """Defaults: ServiceAccount, ConfigMap, Service, Deployment and the test Pod; nothing optional."""
        assert kinds(render()) == ["ConfigMap", "Deployment", "Pod", "Service", "ServiceAccount"]

    def test_pod_and_container_are_locked_down(self) -> None:
        """Non-root 10001:10001 with fsGroup, RuntimeDefault seccomp, read-only root, no escalation, no capabilities."""
        pod_security = worker_pod(render())["spec"]["securityContext"]
        assert pod_security == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        container_security = worker_container(render())["securityContext"]
        assert container_security["readOnlyRootFilesystem"] is True
        assert container_security["allowPrivilegeEscalation"] is False
        assert container_security["runAsNonRoot"] is True
        assert container_security["capabilities"] == {"drop": ["ALL"]}
        assert container_security["seccompProfile"] == {"type": "RuntimeDefault"}

    def test_tmp_is_a_writable_empty_dir(self) -> None:
        """The only writable path, /tmp, is an emptyDir volume."""
        pod = worker_pod(render())["spec"]
        mounts = {mount["mountPath"]: mount["name"] for mount in worker_container(render())["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]

    def test_probes_hit_healthz_and_readyz_on_the_health_port(self) -> None:
        """Liveness GETs /healthz and readiness /readyz on the named port 9102, with the timings from values."""
        container = worker_container(render())
        assert container["ports"] == [{"name": "metrics", "containerPort": 9102, "protocol": "TCP"}]
        liveness, readiness = container["livenessProbe"], container["readinessProbe"]
        assert liveness["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert readiness["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert (liveness["periodSeconds"], liveness["failureThreshold"], liveness["timeoutSeconds"]) == (10, 6, 3)
        assert (readiness["periodSeconds"], readiness["failureThreshold"]) == (5, 3)

    def test_probe_timings_follow_values(self) -> None:
        """A probe timing set in values is the one rendered."""
        manifests = render(None, "readinessProbe.periodSeconds=17")
        assert worker_container(manifests)["readinessProbe"]["periodSeconds"] == 17

    def test_configuration_comes_from_the_configmap(self) -> None:
        """The container loads the chart's ConfigMap whole through envFrom."""
        manifests = render()
        assert worker_container(manifests)["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]
        assert one(manifests, "ConfigMap")["metadata"]["name"] == FULLNAME

    def test_configmap_carries_every_setting(self) -> None:
        """Each config value becomes its MICS_WORKER_* variable, as a string."""
        data = one(render(), "ConfigMap")["data"]
        assert data == {
            "MICS_WORKER_BOOTSTRAP_SERVERS": "kafka:9092",
            "MICS_WORKER_GROUP_ID": "mics-worker",
            "MICS_WORKER_TOPICS": "mics-events",
            "MICS_WORKER_ROUTES": "mics-events=envelope",
            "MICS_WORKER_DLQ_TOPIC": "mics-worker-dlq",
            "MICS_WORKER_API_BASE_URL": "https://api.mediarithmics.com",
            "MICS_WORKER_HTTP_BACKEND": "httptools",
            "MICS_WORKER_HEALTH_PORT": "9102",
            "MICS_WORKER_LOG_FORMAT": "json",
            "MICS_WORKER_LOG_LEVEL": "INFO",
            "MICS_WORKER_DRAIN_TIMEOUT_S": "30",
        }

    def test_grace_period_is_drain_timeout_plus_margin(self) -> None:
        """terminationGracePeriodSeconds = 30 s drain + 15 s margin by default."""
        assert worker_pod(render())["spec"]["terminationGracePeriodSeconds"] == 45

    def test_grace_period_follows_the_drain_timeout(self) -> None:
        """A 50 s drain with a 20 s margin gives 70 s, and the worker is told the same 50 s."""
        manifests = render(None, "config.drainTimeoutSeconds=50", "terminationGraceMarginSeconds=20")
        assert worker_pod(manifests)["spec"]["terminationGracePeriodSeconds"] == 70
        assert one(manifests, "ConfigMap")["data"]["MICS_WORKER_DRAIN_TIMEOUT_S"] == "50"

    def test_config_checksum_changes_with_the_config(self) -> None:
        """checksum/config differs when a setting changes, so the pods roll."""
        before = worker_pod(render())["metadata"]["annotations"]["checksum/config"]
        after = worker_pod(render(None, "config.logLevel=DEBUG"))["metadata"]["annotations"]["checksum/config"]
        assert len(before) == 64
        assert before != after

    def test_service_exposes_the_metrics_port_of_the_worker_pods(self) -> None:
        """The Service selects exactly the Deployment's pods and forwards to the named metrics port."""
        manifests = render()
        service = one(manifests, "Service")
        selector = one(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
        assert service["spec"]["selector"] == selector
        assert service["spec"]["ports"] == [
            {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
        ]

    def test_service_account_token_is_not_mounted(self) -> None:
        """The worker calls no Kubernetes API: no service-account token in the pod."""
        manifests = render()
        assert one(manifests, "ServiceAccount")["automountServiceAccountToken"] is False
        assert worker_pod(manifests)["spec"]["automountServiceAccountToken"] is False


# What the worker does after its drain deadline before it exits: close the consumer (commit, leave the group) and
# flush the dead-letter producer. The chart's schema allows no smaller terminationGraceMarginSeconds.
SHUTDOWN_AFTER_DRAIN_S = 5
VARIANTS = [None, *sorted(p.name for p in CI_VALUES.glob("*-values.yaml") if p.name != "bad-values.yaml")]


class TestShutdownBudget:
    """Kubernetes SIGKILLs a pod terminationGracePeriodSeconds after SIGTERM: past the drain deadline the worker
    is actually given (what its ConfigMap says, else the worker's own default), or the drain dies mid-way and the
    replacement consumes the whole uncommitted window again."""

    @pytest.mark.parametrize("values_file", VARIANTS)
    def test_grace_period_outlasts_the_workers_drain(self, values_file: str | None) -> None:
        manifests = render(values_file)
        grace = worker_pod(manifests)["spec"]["terminationGracePeriodSeconds"]
        settings = [
            m["data"] for m in manifests if m["kind"] == "ConfigMap" and "MICS_WORKER_DRAIN_TIMEOUT_S" in m["data"]
        ]
        assert len(settings) == 1
        assert "MICS_WORKER_DRAIN_TIMEOUT_S" not in env_of(manifests)  # nothing overrides the ConfigMap's value
        drain = float(settings[0].get("MICS_WORKER_DRAIN_TIMEOUT_S", WORKER_DRAIN_TIMEOUT_S))
        assert grace >= drain + SHUTDOWN_AFTER_DRAIN_S

    def test_longer_drain_still_fits(self) -> None:
        """Raising only the drain timeout raises the grace period with it."""
        manifests = render(None, "config.drainTimeoutSeconds=600")
        assert worker_pod(manifests)["spec"]["terminationGracePeriodSeconds"] >= 600 + SHUTDOWN_AFTER_DRAIN_S

    def test_chart_default_drain_is_the_workers_default(self) -> None:
        """The chart's default drainTimeoutSeconds is the worker's own DRAIN_TIMEOUT_S default."""
        data = one(render(), "ConfigMap")["data"]
        assert float(data["MICS_WORKER_DRAIN_TIMEOUT_S"]) == WORKER_DRAIN_TIMEOUT_S

    def test_schema_offers_exactly_the_workers_backends_and_defaults_to_its_default(self) -> None:
        """The chart's httpBackend choices are the worker's BACKENDS, and its default is the worker's default."""
        schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
        assert set(schema["properties"]["config"]["properties"]["httpBackend"]["enum"]) == set(BACKENDS)
        assert one(render(), "ConfigMap")["data"]["MICS_WORKER_HTTP_BACKEND"] == DEFAULT_BACKEND

    def test_schema_keeps_the_margin(self) -> None:
        """values.schema.json refuses a margin smaller than the worker's shutdown after its drain."""
        schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
        assert schema["properties"]["terminationGraceMarginSeconds"]["minimum"] >= SHUTDOWN_AFTER_DRAIN_S


class TestServiceLinks:
    @pytest.mark.parametrize("values_file", VARIANTS)
    def test_service_links_are_off(self, values_file: str | None) -> None:
        """Kubernetes adds `MICS_WORKER_SERVICE_HOST`, `MICS_WORKER_PORT_…` for a Service named mics-worker… unless
        the pod spec turns service links off; the worker's unknown-variable check must not meet them."""
        assert worker_pod(render(values_file))["spec"]["enableServiceLinks"] is False


class TestChartTestPod:
    def test_checks_readyz_through_the_service(self) -> None:
        """The helm test hook runs `mics-worker check` against the Service's /readyz."""
        pod = one(render(), "Pod")
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        args = pod["spec"]["containers"][0]["args"]
        assert f"http://{FULLNAME}:9102/readyz" in args
        assert pod["spec"]["enableServiceLinks"] is False  # the same image, the same unknown-variable check

    def test_is_not_selected_by_the_service(self) -> None:
        """Its labels fall outside the worker selector, so the Service never routes to it."""
        manifests = render()
        labels = one(manifests, "Pod")["metadata"]["labels"]
        selector = one(manifests, "Service")["spec"]["selector"]
        assert not all(labels.get(key) == value for key, value in selector.items())


class TestApiToken:
    def test_chart_secret_is_mounted_as_a_file(self) -> None:
        """apiToken.value: the chart's Secret holds it, mounted read-only and named by MICS_WORKER_API_TOKEN_FILE."""
        manifests = render("pdb-values.yaml")
        secret = one(manifests, "Secret")
        assert base64.b64decode(secret["data"]["token"]).decode() == CRD_FREE_TOKEN
        volume = next(v for v in worker_pod(manifests)["spec"]["volumes"] if "secret" in v)
        assert volume["secret"]["secretName"] == secret["metadata"]["name"]
        assert volume["secret"]["items"] == [{"key": "token", "path": "api-token"}]
        mount = next(m for m in worker_container(manifests)["volumeMounts"] if m["name"] == volume["name"])
        assert mount["readOnly"] is True
        assert env_of(manifests)["MICS_WORKER_API_TOKEN_FILE"]["value"] == mount["mountPath"] + "/api-token"

    def test_token_appears_nowhere_but_the_secret(self) -> None:
        """The token is in no ConfigMap, env value or annotation: only base64 in the Secret."""
        manifests = render("pdb-values.yaml")
        others = [manifest for manifest in manifests if manifest["kind"] != "Secret"]
        assert CRD_FREE_TOKEN not in json.dumps(others)
        assert "MICS_WORKER_API_TOKEN" not in one(manifests, "ConfigMap")["data"]

    def test_existing_secret_is_referenced_not_created(self) -> None:
        """apiToken.existingSecret: no Secret rendered; the pod mounts the named Secret's key."""
        manifests = render("existing-secret-values.yaml")
        assert "Secret" not in kinds(manifests)
        volume = next(v for v in worker_pod(manifests)["spec"]["volumes"] if "secret" in v)
        assert volume["secret"]["secretName"] == "mics-api"
        assert volume["secret"]["items"] == [{"key": "api-token", "path": "api-token"}]
        assert "MICS_WORKER_API_TOKEN_FILE" in env_of(manifests)

    def test_secret_checksum_changes_with_the_token(self) -> None:
        """checksum/secret differs when the token changes, so the pods roll onto the new one."""
        first = worker_pod(render(None, "apiToken.value=one"))["metadata"]["annotations"]["checksum/secret"]
        second = worker_pod(render(None, "apiToken.value=two"))["metadata"]["annotations"]["checksum/secret"]
        assert first != second

    def test_value_and_existing_secret_together_are_refused(self) -> None:
        """Both token sources at once fail the render with a message naming both."""
        error = refusal("--set", "apiToken.value=x", "--set", "apiToken.existingSecret.name=mics-api")
        assert "apiToken.value and apiToken.existingSecret.name are both set" in error


class TestTopics:
    def test_topic_pattern_replaces_the_topic_list(self) -> None:
        """With topicPattern, the ConfigMap carries MICS_WORKER_TOPIC_PATTERN and no MICS_WORKER_TOPICS."""
        data = one(render("existing-secret-values.yaml"), "ConfigMap")["data"]
        assert data["MICS_WORKER_TOPIC_PATTERN"] == "^mics-.*"
        assert "MICS_WORKER_TOPICS" not in data
        assert data["MICS_WORKER_ALLOWED_DATAMARTS"] == "1509"

    def test_topics_and_pattern_together_are_refused(self) -> None:
        """Setting both subscriptions fails the render with a message naming both."""
        assert "config.topics and config.topicPattern are both set" in refusal("--set", "config.topicPattern=^x")


class TestProduction:
    def test_librdkafka_properties_render_as_worker_variables(self) -> None:
        """config.kafka entries become MICS_WORKER_KAFKA_*; large numbers stay integers (no 5.24288e+07)."""
        data = one(render("production-values.yaml"), "ConfigMap")["data"]
        assert data["MICS_WORKER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert data["MICS_WORKER_KAFKA_FETCH_MAX_BYTES"] == "52428800"
        assert data["MICS_WORKER_MAX_IN_FLIGHT"] == "4000"
        assert data["MICS_WORKER_DLQ_GUARD_MAX_RATIO"] == "0.25"

    def test_kafka_password_comes_from_a_secret_reference(self) -> None:
        """config.kafkaSecrets become env entries that reference the Secret, never a value."""
        entry = env_of(render("production-values.yaml"))["MICS_WORKER_KAFKA_SASL_PASSWORD"]
        assert entry == {
            "name": "MICS_WORKER_KAFKA_SASL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "kafka-mics-worker", "key": "password"}},
        }

    def test_image_pinned_by_digest(self) -> None:
        """A digest in values wins over the tag."""
        image = worker_container(render("production-values.yaml"))["image"]
        assert image.endswith("@sha256:" + "0123456789abcdef" * 4)

    def test_secret_like_kafka_property_in_plain_config_is_refused(self) -> None:
        """A password in config.kafka (a ConfigMap) is refused by the schema."""
        assert "sasl.password" in refusal("--set", "config.kafka.sasl\\.password=hunter2")


class TestPodDisruptionBudget:
    def test_absent_for_a_single_replica(self) -> None:
        """One replica: no PDB (it would block node drains or protect nothing)."""
        assert "PodDisruptionBudget" not in kinds(render())

    def test_present_for_several_replicas(self) -> None:
        """Two replicas: a PDB over the worker pods."""
        manifests = render("pdb-values.yaml")
        pdb = one(manifests, "PodDisruptionBudget")
        assert pdb["spec"]["selector"] == one(manifests, "Deployment")["spec"]["selector"]
        assert pdb["spec"]["maxUnavailable"] == 1

    def test_present_when_an_autoscaler_may_run_several(self) -> None:
        """HPA with maxReplicas 5: a PDB, even though replicaCount is 1."""
        assert "PodDisruptionBudget" in kinds(render("hpa-values.yaml"))


class TestAutoscaling:
    def test_keda_scales_on_consumer_group_lag(self) -> None:
        """keda: a ScaledObject on the Deployment with one kafka lag trigger per topic; replicas left to KEDA."""
        manifests = render("keda-values.yaml")
        scaled = one(manifests, "ScaledObject")
        assert scaled["spec"]["scaleTargetRef"]["name"] == one(manifests, "Deployment")["metadata"]["name"]
        assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 6)
        triggers = scaled["spec"]["triggers"]
        assert [trigger["type"] for trigger in triggers] == ["kafka", "kafka"]
        assert [trigger["metadata"]["topic"] for trigger in triggers] == ["web-activities", "crm-profiles"]
        for trigger in triggers:
            assert trigger["metadata"]["bootstrapServers"] == "kafka:9092"
            assert trigger["metadata"]["consumerGroup"] == "mics-worker"
            assert trigger["metadata"]["lagThreshold"] == "500"
            assert trigger["authenticationRef"] == {"name": "kafka-sasl"}
        assert "replicas" not in one(manifests, "Deployment")["spec"]
        assert "HorizontalPodAutoscaler" not in kinds(manifests)

    def test_keda_with_a_topic_pattern_measures_the_whole_group(self) -> None:
        """With a topicPattern and no keda.topics, one trigger without a topic: every topic of the group."""
        manifests = render("existing-secret-values.yaml", "keda.enabled=true")
        triggers = one(manifests, "ScaledObject")["spec"]["triggers"]
        assert len(triggers) == 1
        assert "topic" not in triggers[0]["metadata"]

    def test_hpa_is_the_alternative(self) -> None:
        """autoscaling: a CPU HPA on the Deployment; replicas left to it; no ScaledObject."""
        manifests = render("hpa-values.yaml")
        hpa = one(manifests, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == FULLNAME
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
        assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
        assert "replicas" not in one(manifests, "Deployment")["spec"]
        assert "ScaledObject" not in kinds(manifests)

    def test_both_autoscalers_are_refused(self) -> None:
        """KEDA and HPA together fail the render: they would fight over the replica count."""
        error = refusal("--set", "keda.enabled=true", "--set", "autoscaling.enabled=true")
        assert "keda.enabled and autoscaling.enabled are both true" in error


class TestMonitoring:
    def test_absent_by_default(self) -> None:
        """No monitoring objects unless switched on (they need the operators' CRDs)."""
        assert {"ServiceMonitor", "PrometheusRule"}.isdisjoint(kinds(render()))
        assert dashboards(render()) == []

    def test_service_monitor_scrapes_the_service(self) -> None:
        """The ServiceMonitor selects the Service's labels and scrapes its metrics port at /metrics."""
        manifests = render("monitoring-values.yaml")
        monitor = one(manifests, "ServiceMonitor")
        service_labels = one(manifests, "Service")["metadata"]["labels"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert all(service_labels[key] == value for key, value in selector.items())
        assert monitor["spec"]["endpoints"] == [
            {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
        ]
        assert monitor["metadata"]["labels"]["release"] == "prometheus"

    def test_prometheus_rule_carries_the_rule_file(self) -> None:
        """The PrometheusRule's spec is files/prometheus-rules.yaml, unaltered (no Helm templating of {{ $labels }})."""
        rule = one(render("monitoring-values.yaml"), "PrometheusRule")
        expected = subprocess.run(
            [str(YQ), "--output-format=json", ".", str(CHART / "files" / "prometheus-rules.yaml")],
            capture_output=True,
            text=True,
            check=True,
        )
        assert rule["spec"] == json.loads(expected.stdout)
        assert rule["spec"]["groups"]

    def test_dashboard_configmap_is_labelled_for_grafana(self) -> None:
        """The dashboard ConfigMap has grafana_dashboard: "1" and the dashboard JSON as it is in files/."""
        manifests = render("monitoring-values.yaml")
        found = dashboards(manifests)
        assert len(found) == 1
        dashboard = found[0]
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert dashboard["metadata"]["namespace"] == "monitoring"
        shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text(encoding="utf-8"))
        assert json.loads(dashboard["data"]["mics-worker.json"]) == shipped


class TestValuesSchema:
    def test_bad_values_file_is_refused_with_both_faults_named(self) -> None:
        """helm/ci/bad-values.yaml: the unknown key and the wrong type are both reported."""
        error = refusal("-f", str(CI_VALUES / "bad-values.yaml"))
        assert "additional properties 'replicas' not allowed" in error
        assert "/config/drainTimeoutSeconds" in error
        assert "want integer" in error

    @pytest.mark.parametrize(
        ("assignment", "fragment"),
        [
            ("config.httpBackend=requests", "httpBackend"),
            ("config.logLevel=VERBOSE", "logLevel"),
            ("securityContext.runAsUser=0", "runAsUser"),
            ("config.drainTimeoutSeconds=0", "drainTimeoutSeconds"),
            ("image.pullPolicy=Sometimes", "pullPolicy"),
            ("config.extra.API_TOKEN=leak", "API_TOKEN"),
        ],
    )
    def test_out_of_range_values_are_refused(self, assignment: str, fragment: str) -> None:
        """Enums, minimums and reserved names in values.schema.json refuse the value and name it."""
        assert fragment in refusal("--set", assignment)


class TestMemoryLimitFitsTheByteWindow:
    """limits.memory ≥ 2 x MAX_IN_FLIGHT_BYTES + 200 MiB (helm/mics-worker/values.yaml, `resources`).

    The worker holds at most about MAX_IN_FLIGHT_BYTES of records, counted twice (a record is held as received and
    again while it is decoded and sent: 2,000 envelopes of 250 kB took ~1 GiB before the byte window), plus
    librdkafka's fetch queue (`queued.max.messages.kbytes`, 16 MiB) and fetch buffers and the interpreter (~100 MiB):
    the 200 MiB. Raising the window (config.extra) or lowering the limit alone fails here.
    """

    HEADROOM = 200 * 2**20
    # Two-letter suffixes first, so `Mi` is not read as `M`.
    UNITS = (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40), ("k", 10**3), ("M", 10**6), ("G", 10**9))

    @classmethod
    def quantity_bytes(cls, quantity: str | int) -> int:
        """A Kubernetes memory quantity (`512Mi`, `1G`, `536870912`) in bytes."""
        text = str(quantity)
        for suffix, factor in cls.UNITS:
            if text.endswith(suffix):
                return int(text.removesuffix(suffix)) * factor
        return int(text)

    @classmethod
    def limit_and_window(cls, manifests: tuple[Manifest, ...]) -> tuple[int, int]:
        """(limits.memory, the worker's MAX_IN_FLIGHT_BYTES: the chart's setting, else the worker's default)."""
        from worker.config import WorkerConfig

        limit = cls.quantity_bytes(worker_container(manifests)["resources"]["limits"]["memory"])
        window = one(manifests, "ConfigMap")["data"].get("MICS_WORKER_MAX_IN_FLIGHT_BYTES")
        return limit, int(window) if window is not None else WorkerConfig.max_in_flight_bytes

    def test_default_limit_holds_twice_the_default_window_and_the_rest(self) -> None:
        """The defaults: 512Mi ≥ 2 x 64 MiB + 200 MiB."""
        limit, window = self.limit_and_window(render())
        assert limit >= 2 * window + self.HEADROOM, (limit, window)

    @pytest.mark.parametrize(
        ("sets", "fits"),
        [
            (("config.extra.MAX_IN_FLIGHT_BYTES=268435456",), False),
            (("resources.limits.memory=256Mi",), False),
            (("config.extra.MAX_IN_FLIGHT_BYTES=268435456", "resources.limits.memory=768Mi"), True),
        ],
    )
    def test_raising_one_without_the_other_breaks_the_rule(self, sets: tuple[str, ...], fits: bool) -> None:
        """The check reads what the chart renders: a 256 MiB window needs 712 MiB; 256Mi is too small for 64 MiB."""
        limit, window = self.limit_and_window(render(None, *sets))
        assert (limit >= 2 * window + self.HEADROOM) is fits, (limit, window)
