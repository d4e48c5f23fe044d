"""Static checks of the deployment files: docker-compose.yml, deploy/Dockerfile, the proxy and deploy/k8s/.

No Docker engine or cluster is needed: the files are parsed and held to the settings classes (every
`CALHUB_*` / `<SERVICE>_*` name must be a real setting), to the service catalogue (`calhub.services.SERVICES`)
and to each other (the proxy and the Ingress route the same paths). When `kustomize` or `kubectl` is installed,
the Kustomize overlay is also built; nothing is ever downloaded.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from calhub.services import SERVICES, definition_of
from shared.settings import PlatformSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
K8S = ROOT / "deploy" / "k8s"
K8S_BASE = K8S / "base"
K8S_EXAMPLE = K8S / "overlays" / "example"

CONTAINER_PORT = "8000"  # every service listens on 8000 in a container
INFRASTRUCTURE = {"kafka", "postgres", "migrate", "otel-collector", "jaeger", "kafka-ui", "proxy"}
# Settings that hold secrets: never in a ConfigMap, and only overridable defaults in compose.
SECRET_SETTINGS = {"CALHUB_DATABASE_URL", "CALHUB_MEMBER_ID_SECRET"}

# The one base URL: path prefix -> service (docs/decisions/0002-run-modes-and-deployment.md).
ROUTES = {
    "/v1/referrals": "referrals",
    "/fhir": "referrals",
    "/v1/authorizations": "authorizations",
    "/v1/reports/authorization-sla": "authorizations",
    "/v1/members": "eligibility",
    "/v1/eligibility": "eligibility",
    "/v1/encounters": "claims",
    "/v1/claims": "claims",
    "/v1/remittances": "claims",
    "/v1/denials": "claims",
    "/v1/payouts": "claims",
    "/v1/reports/timely-payment": "claims",
    "/v1/files": "sftp-gateway",
    "/ops": "ops",
    "/v1/ops": "ops",
    "/v1/journal": "ops",
    "/v1/dead-letters": "ops",
    "/health": "ops",
}


# ---------------------------------------------------------------------------------------------- settings


def env_names(settings: type[BaseSettings]) -> set[str]:
    """The environment variable names of a settings class: prefix + field name, upper-cased."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{field}".upper() for field in settings.model_fields}


@cache
def service_prefixes() -> dict[str, str]:
    """Service name -> its settings' environment prefix."""
    return {name: str(definition_of(name).settings.model_config.get("env_prefix", "")) for name in SERVICES}


@cache
def service_env_names(service: str) -> frozenset[str]:
    return frozenset(env_names(definition_of(service).settings))


@cache
def platform_env_names() -> frozenset[str]:
    return frozenset(env_names(PlatformSettings))


def unknown_settings(names: Iterable[str], service: str | None) -> list[str]:
    """Names that look like CalHub settings (CALHUB_* or any service's prefix) but that the process reading
    them does not have: the platform's, plus `service`'s own or, for service=None, any service's."""
    prefixes = ("CALHUB_", *service_prefixes().values())
    allowed = set(platform_env_names())
    for name in SERVICES if service is None else [service]:
        allowed |= service_env_names(name)
    return sorted(n for n in names if n.startswith(prefixes) and n not in allowed)


def test_settings_prefixes_are_distinct() -> None:
    prefixes = ["CALHUB_", *service_prefixes().values()]
    assert all(p.endswith("_") for p in prefixes)
    for a in prefixes:
        for b in prefixes:
            assert a == b or not a.startswith(b), f"{a} starts with {b}: names could not be told apart"


def test_unknown_settings_are_found() -> None:
    """The checker itself: a typo, another service's setting and a made-up name are reported."""
    assert unknown_settings(["CALHUB_MODE", "CLAIMS_PORT", "PATH"], "claims") == []
    assert unknown_settings(["CALHUB_MODDE", "REFERRALS_PORT", "CLAIMS_NOPE"], "claims") == [
        "CALHUB_MODDE", "CLAIMS_NOPE", "REFERRALS_PORT"]
    assert unknown_settings(["REFERRALS_DATABASE_URL"], None) == []


# ---------------------------------------------------------------------------------------------- compose


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment, from the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def host_ports(service: dict[str, Any]) -> list[str]:
    """The host ports a compose service publishes (short and long syntax)."""
    ports = []
    for spec in service.get("ports") or []:
        if isinstance(spec, dict):
            if spec.get("published") is not None:
                ports.append(str(spec["published"]))
            continue
        parts = str(spec).split("/")[0].split(":")
        if len(parts) >= 2:  # [ip:]host:container
            ports.append(parts[-2])
    return ports


def test_compose_has_every_service() -> None:
    missing = (INFRASTRUCTURE | set(SERVICES)) - set(compose()["services"])
    assert not missing, f"docker-compose.yml lacks {sorted(missing)}"


def test_compose_service_containers_serve_their_service() -> None:
    served = []
    for key, service in compose()["services"].items():
        command = service.get("command")
        if isinstance(command, str):
            command = command.split()
        if command and command[0] == "serve":
            assert len(command) == 2 and command[1] in SERVICES, f"{key}: {command} names no service"
            assert command[1] == key, f"compose service {key} serves {command[1]}"
            served.append(command[1])
    assert sorted(served) == sorted(SERVICES), "each service runs in exactly one container"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_service_container(name: str) -> None:
    service = compose()["services"][name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    depends = service.get("depends_on")
    assert isinstance(depends, dict) and "migrate" in depends, f"{name} must depend on migrate"
    assert depends["migrate"].get("condition") == "service_completed_successfully"

    env = compose_env(service)
    assert unknown_settings(set(env), name) == [], f"{name}: not settings of this service"
    assert env["CALHUB_MODE"] == "distributed"
    assert env["CALHUB_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["CALHUB_DATABASE_URL"].endswith("@postgres:5432/calhub")
    assert env["CALHUB_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["CALHUB_OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert "CALHUB_MEMBER_ID_SECRET" in env
    port = f"{service_prefixes()[name]}PORT"
    assert env.get(port) == CONTAINER_PORT, f"{name}: {port} must be {CONTAINER_PORT}"


def test_compose_migrate_runs_once_before_the_services() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["build"]["dockerfile"] == "deploy/Dockerfile"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    env = compose_env(migrate)
    assert unknown_settings(set(env), None) == []
    assert env["CALHUB_DATABASE_URL"] == compose_env(services["referrals"])["CALHUB_DATABASE_URL"]


def test_compose_secrets_are_overridable_local_defaults() -> None:
    """A secret in compose is `${VAR:-local default}`: the environment (or .env) always wins."""
    for key, service in compose()["services"].items():
        env = compose_env(service)
        for name in SECRET_SETTINGS & set(env):
            if name == "CALHUB_DATABASE_URL":
                assert "${POSTGRES_PASSWORD:-" in env[name], f"{key}: the database password must be a variable"
            else:
                assert env[name].startswith(f"${{{name}:-"), f"{key}: {name} must be ${{{name}:-...}}"
    assert compose_env(compose()["services"]["postgres"])["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:-")


def test_compose_published_ports_are_unique() -> None:
    ports = [p for service in compose()["services"].values() for p in host_ports(service)]
    duplicates = [p for p, n in Counter(ports).items() if n > 1]
    assert not duplicates, f"host ports published twice: {duplicates}"
    assert "2222" in host_ports(compose()["services"]["sftp-gateway"])
    assert "8080" in host_ports(compose()["services"]["proxy"])


def test_compose_infrastructure() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    kafka_env = compose_env(kafka)
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert "healthcheck" in kafka

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    pg_env = compose_env(postgres)
    assert pg_env["POSTGRES_USER"] == pg_env["POSTGRES_DB"] == "calhub"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert compose_env(services["jaeger"])["COLLECTOR_OTLP_ENABLED"] == "true"
    assert compose_env(services["kafka-ui"])["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == "kafka:9092"
    collector = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text(encoding="utf-8"))
    traces = collector["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert all(collector["exporters"][e]["endpoint"].startswith("jaeger:") for e in traces["exporters"])


def test_compose_bind_mounts_exist() -> None:
    for key, service in compose()["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{key} mounts {source}, which does not exist"


# ---------------------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return instructions


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    by_keyword: dict[str, list[str]] = {}
    for keyword, args in instructions:
        by_keyword.setdefault(keyword, []).append(args)
    assert by_keyword["FROM"] == ["python:3.11-slim"]
    assert any("pip install" in run and " -e ." in run for run in by_keyword["RUN"]), "editable install"
    user = by_keyword["USER"][-1].split(":")[0]
    assert user not in {"root", "0"}, "the image runs as a non-root user"
    assert by_keyword["ENTRYPOINT"] == ['["calhub"]']
    cmd = yaml.safe_load(by_keyword["CMD"][-1])
    assert cmd[0] == "serve" and cmd[1] in SERVICES
    assert f"127.0.0.1:{CONTAINER_PORT}/health" in by_keyword["HEALTHCHECK"][-1]
    assert "python" in by_keyword["HEALTHCHECK"][-1]

    env = dict(token.split("=", 1) for args in by_keyword["ENV"] for token in args.split() if "=" in token)
    assert unknown_settings(set(env), None) == []
    for prefix in service_prefixes().values():
        assert env[f"{prefix}PORT"] == CONTAINER_PORT


def test_dockerignore_keeps_the_code_and_drops_local_state() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)
    for required in (".git", ".dev", "data", "**/__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert required in patterns, f"{DOCKERIGNORE.name} must exclude {required}"

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch.fnmatch(prefix, p.removeprefix("**/")) or fnmatch.fnmatch(prefix, p)
                   for p in patterns for prefix in prefixes)

    keep = ["pyproject.toml", "README.md", "shared/settings.py", "calhub/cli.py"]
    for name, package in SERVICES.items():
        keep += [f"services/{name}/{package}/bootstrap.py", f"services/{name}/migrations/env.py"]
    for path in keep:
        assert (ROOT / path).exists(), path
        assert not ignored(path), f"{path} is needed in the image"


# ---------------------------------------------------------------------------------------------- Kubernetes


def k8s_documents(folder: Path = K8S) -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                assert isinstance(doc, dict), f"{path}: a document is not a mapping"
                docs.append((path, doc))
    return docs


def of_kind(kind: str, folder: Path = K8S_BASE) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents(folder) if doc.get("kind") == kind]


def test_k8s_yaml_parses() -> None:
    docs = k8s_documents()
    assert docs
    for path, doc in docs:
        assert "kind" in doc, f"{path}: a document without kind"


def test_kustomization_references_exist() -> None:
    kustomizations = [(p, d) for p, d in k8s_documents() if d.get("kind") == "Kustomization"]
    assert {p.parent for p, _ in kustomizations} == {K8S_BASE, K8S_EXAMPLE}
    for path, doc in kustomizations:
        for resource in doc.get("resources", []):
            target = path.parent / resource
            assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{path}: {resource} missing"
        for patch in doc.get("patches", []):
            if "path" in patch:
                assert (path.parent / patch["path"]).is_file(), f"{path}: patch {patch['path']} missing"
        for generator in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
            for source in generator.get("files", []) + generator.get("envs", []):
                assert (path.parent / source.split("=")[-1]).is_file(), f"{path}: {source} missing"
    listed = {path.parent / r for path, doc in kustomizations for r in doc.get("resources", [])}
    unlisted = {p for p in K8S_BASE.glob("*.yaml") if p.name != "kustomization.yaml"} - listed
    assert not unlisted, f"manifests no kustomization uses: {sorted(str(p) for p in unlisted)}"


def configmap_settings() -> dict[str, str]:
    """The calhub-config keys: generator literals in every kustomization, and any ConfigMap manifest."""
    values: dict[str, str] = {}
    for _, doc in k8s_documents():
        if doc.get("kind") == "Kustomization":
            for generator in doc.get("configMapGenerator", []):
                if generator["name"] == "calhub-config":
                    values.update(item.split("=", 1) for item in generator.get("literals", []))
        elif doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "calhub-config":
            values.update(doc.get("data", {}))
    return values


def test_k8s_configmap_holds_real_non_secret_settings() -> None:
    values = configmap_settings()
    assert values["CALHUB_MODE"] == "distributed"
    assert all(name.startswith("CALHUB_") for name in values)
    assert unknown_settings(set(values), None) == []
    secret_like = sorted(n for n in values if n in SECRET_SETTINGS or n.endswith("DATABASE_URL"))
    assert not secret_like, f"secrets belong in calhub-secrets, not the ConfigMap: {secret_like}"


def test_k8s_commits_no_secret_values() -> None:
    for path, doc in k8s_documents():
        assert doc.get("kind") != "Secret", f"{path}: Secrets are created outside the repository"
        assert not doc.get("secretGenerator"), f"{path}: no secretGenerator with values in the repository"
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    for key in sorted(SECRET_SETTINGS):
        assert key in platform_env_names()
        assert f"`{key}`" in readme, f"deploy/k8s/README.md must document the Secret key {key}"
    assert "Strimzi" in readme and "CloudNativePG" in readme


def pod_checks(name: str, pod: dict[str, Any], service: str | None) -> None:
    """Non-root, read-only root file system with a writable /tmp, and only real settings."""
    pod_security = pod.get("securityContext", {})
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        security = {**pod_security, **container.get("securityContext", {})}
        assert security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
        assert security.get("runAsUser", 1) != 0, f"{name}: runAsUser 0"
        assert security.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
        if security.get("readOnlyRootFilesystem"):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp emptyDir"
        env = [e["name"] for e in container.get("env", [])]
        assert unknown_settings(env, service) == [], f"{name}: not settings of this process"
        required = {("configMapRef", "calhub-config"), ("secretRef", "calhub-secrets")}
        refs = {(kind, ref[kind]["name"], ref[kind].get("optional", False))
                for ref in container.get("envFrom", []) for kind in ref}
        assert required <= {(kind, ref) for kind, ref, _ in refs}, f"{name}: envFrom {sorted(refs)}"
        extra = [r for r in refs if r[:2] not in required]
        assert all(kind == "secretRef" and optional for kind, _, optional in extra), f"{name}: {extra}"
        assert container["resources"]["requests"], f"{name}: resource requests"
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume:
            claims = {c["metadata"]["name"] for c in of_kind("PersistentVolumeClaim")}
            assert volume["persistentVolumeClaim"]["claimName"] in claims, f"{name}: unknown claim"


def test_k8s_deployments() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    assert set(deployments) == set(SERVICES)
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        (container,) = pod["containers"]
        assert container["args"] == ["serve", name]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert str(ports["http"]) == CONTAINER_PORT
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        port = f"{service_prefixes()[name]}PORT"
        assert env.get(port) == CONTAINER_PORT, f"{name}: {port} must be {CONTAINER_PORT}"
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            assert probe in container, f"{name}: no {probe}"
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, f"{name}: {probe}"
        pod_checks(name, pod, name)
        service = services[name]
        assert service["spec"]["selector"].items() <= labels.items()
        assert {p["name"] for p in service["spec"]["ports"]} >= {"http"}


def test_compose_sftp_gateway_serves_sftp() -> None:
    gateway = compose()["services"]["sftp-gateway"]
    env = compose_env(gateway)
    assert env["SFTP_GATEWAY_SFTP_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:2222:{env['SFTP_GATEWAY_SFTP_PORT']}" in gateway["ports"]
    targets = {v.split(":")[1] for v in gateway["volumes"]}
    assert {env["CALHUB_FILE_STORE_DIR"], "/var/lib/calhub/sftp-gateway"} <= targets


def test_k8s_sftp_gateway_exposes_sftp() -> None:
    (deployment,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "sftp-gateway"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "sftp", "containerPort": 2222} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SFTP_GATEWAY_SFTP_HOST"] == "0.0.0.0" and env["SFTP_GATEWAY_SFTP_PORT"] == "2222"
    sftp_services = [s for s in of_kind("Service") if any(p["port"] == 2222 for p in s["spec"]["ports"])]
    assert len(sftp_services) == 1 and sftp_services[0]["spec"]["selector"].items() <= labels.items()
    mounts = [m["name"] for m in container["volumeMounts"]]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert any("persistentVolumeClaim" in volumes[m] for m in mounts), "the file store is a PVC"
    on_claims = {m["mountPath"] for m in container["volumeMounts"] if "persistentVolumeClaim" in volumes[m["name"]]}
    assert {configmap_settings()["CALHUB_FILE_STORE_DIR"], "/var/lib/calhub/sftp-gateway"} <= on_claims


def test_k8s_migrate_job() -> None:
    (job,) = of_kind("Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    assert pod["containers"][0]["args"] == ["migrate"]
    pod_checks(job["metadata"]["name"], pod, None)


def test_k8s_example_overlay() -> None:
    (overlay,) = of_kind("Kustomization", K8S_EXAMPLE)
    assert overlay["resources"] == ["../../base"]
    (image,) = overlay["images"]
    assert image["name"] == "calhub" and image.get("newTag")
    replicas = {r["name"]: r["count"] for r in overlay.get("replicas", [])}
    for patch in overlay.get("patches", []):
        if patch.get("target", {}).get("kind") == "Deployment":
            for op in yaml.safe_load(patch["patch"]):
                if op["path"] == "/spec/replicas":
                    replicas[patch["target"]["name"]] = op["value"]
    assert replicas == {"authorizations": 2}


# ---------------------------------------------------------------------------------------------- routes


def nginx_routes() -> dict[tuple[str, bool], str]:
    """(path, exact) -> upstream service, from `location [=] PATH { set $upstream NAME:PORT; ... }`."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    routes: dict[tuple[str, bool], str] = {}
    pattern = r"location\s+(=\s*)?(/[^\s{]*)\s*\{\s*set\s+\$upstream\s+([a-z0-9-]+):(\d+)\s*;"
    for exact, path, upstream, port in re.findall(pattern, text):
        assert port == CONTAINER_PORT, f"{path}: {upstream}:{port}"
        assert (path, bool(exact)) not in routes, f"{path} routed twice"
        routes[(path, bool(exact))] = upstream
    return routes


def ingress_routes() -> dict[tuple[str, bool], str]:
    routes: dict[tuple[str, bool], str] = {}
    for ingress in of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for item in rule["http"]["paths"]:
                assert item["pathType"] in {"Prefix", "Exact"}
                key = (item["path"], item["pathType"] == "Exact")
                assert key not in routes, f"{item['path']} routed twice"
                routes[key] = item["backend"]["service"]["name"]
    return routes


def test_proxy_routes_every_path_to_its_service() -> None:
    routes = {path: service for (path, _), service in nginx_routes().items()}
    assert routes == ROUTES
    assert set(routes.values()) == set(SERVICES)
    assert set(routes.values()) <= set(compose()["services"]), "upstreams are compose services"
    assert any("deploy/nginx.conf" in str(v) for v in compose()["services"]["proxy"].get("volumes", []))


def test_ingress_routes_the_same_paths_as_the_proxy() -> None:
    assert ingress_routes() == nginx_routes()
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    for ingress in of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for item in rule["http"]["paths"]:
                backend = item["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports


# ---------------------------------------------------------------------------------------------- kustomize build


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def test_kustomize_builds_the_example_overlay() -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed (nothing is downloaded); "
                    "the static Kubernetes checks above still ran")
    built = {}
    for folder in (K8S_BASE, K8S_EXAMPLE):
        result = subprocess.run([*command, str(folder)], capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, f"{' '.join(command)} {folder}: {result.stderr}"
        built[folder] = [d for d in yaml.safe_load_all(result.stdout) if d]
    docs = built[K8S_EXAMPLE]
    assert len(docs) == len(built[K8S_BASE])
    (overlay,) = of_kind("Kustomization", K8S_EXAMPLE)
    (image,) = overlay["images"]
    expected_image = f"{image.get('newName', 'calhub')}:{image['newTag']}"
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"].startswith("calhub-config-"), "generated with a content hash"
    for doc in docs:
        assert doc["metadata"].get("namespace") == overlay["namespace"] or doc["kind"] == "Namespace"
        if doc["kind"] in {"Deployment", "Job"}:
            pod = doc["spec"]["template"]["spec"]
            assert all(c["image"] == expected_image for c in pod["containers"])
            config_refs = {r["configMapRef"]["name"] for c in pod["containers"] for r in c["envFrom"]
                           if "configMapRef" in r}
            assert config_refs == {configmap["metadata"]["name"]}
        if doc["kind"] == "Deployment":
            expected = 2 if doc["metadata"]["name"] == "authorizations" else 1
            assert doc["spec"]["replicas"] == expected, doc["metadata"]["name"]
