"""The chart's and the image's checks that no off-the-shelf tool makes (run by scripts/check-chart).

Subcommands:
  split RENDER OUT        writes RENDER's built-in objects to OUT/builtin.yaml and each custom
                          resource to OUT/<group>_<kind>_<version>.<n>.json (named as its schema)
  crds SCHEMAS OBJECT...  each custom resource is valid by SCHEMAS/<group>_<kind>_<version>.json
  assert RENDERS BINARY   the chart's promises, over every render (a folder of <values>.yaml)
  dashboards RENDER DIR   each dashboard file in DIR is one ConfigMap in RENDER, byte for byte
  rules RENDER FILE [VALUES]
                          the PrometheusRule's groups in RENDER are FILE's groups (with VALUES'
                          monitoring.prometheusRule.runbookBaseUrl in place of chart/README.md)
  image DOCKERFILE BINARY the runtime stage's packages provide what `ldd BINARY` needs
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import jsonschema
import yaml

BUILTIN_GROUPS = {"", "apps", "policy", "networking.k8s.io", "autoscaling", "batch", "rbac.authorization.k8s.io"}
CREDENTIAL_ENV = {"MP3C_MYSQL_URL", "MP3C_MONGODB_URL", "MP3C_AMQP_URL", "MP3C_JWT_SECRET", "MP3C_CLUSTER_COOKIE",
                  "MP3C_SMTP_USERNAME", "MP3C_SMTP_PASSWORD"}
# Read by the service straight from the environment (Secret::from_env_or_file), so not in --help.
ENV_NOT_IN_HELP = {"MP3C_JWT_SECRET", "MP3C_CLUSTER_COOKIE", "MP3C_SMTP_PASSWORD"}
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]+:[^/@\s]+@")
# What debian:12-slim brings that the binary links directly: the C runtime.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1"}
# Runtime packages that provide no linked library, and why they are there.
NON_LIBRARY_PACKAGES = {"ca-certificates": "CA roots for TLS to the backends and SMTP"}
QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTP]i|[kMGTP])?$")
UNITS = {None: 1, **{u: 1000 ** (n + 1) for n, u in enumerate("kMGTP")},
         **{f"{u}i": 1024 ** (n + 1) for n, u in enumerate("KMGTP")}}
# The relative runbook links of the rule file, and the annotation Stakater Reloader acts on.
RUNBOOK_PREFIX = "chart/README.md#"
RELOADER = "secret.reloader.stakater.com/reload"

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def load(path):
    return [doc for doc in yaml.safe_load_all(pathlib.Path(path).read_text()) if doc]


def group_version(doc):
    group, _, version = doc["apiVersion"].rpartition("/")
    return group, version


def split(render, out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    builtin = []
    for n, doc in enumerate(load(render)):
        group, version = group_version(doc)
        if group in BUILTIN_GROUPS:
            builtin.append(doc)
        else:
            name = f"{group}_{doc['kind'].lower()}_{version}.{n}.json"
            (out / name).write_text(json.dumps(doc, indent=1))
    (out / "builtin.yaml").write_text(yaml.safe_dump_all(builtin))


def crds(schemas, *objects):
    """Validates without checking the schemas themselves: some carry Go regexes (`(?i)` not at
    the start) that only matter for fields the chart does not set."""
    kinds = set()
    for path in objects:
        schema_path = pathlib.Path(schemas) / re.sub(r"\.\d+\.json$", ".json", pathlib.Path(path).name)
        if not schema_path.exists():
            check(False, f"no schema {schema_path} for {path}")
            continue
        validator = jsonschema.Draft7Validator(json.loads(schema_path.read_text()))
        for error in validator.iter_errors(json.loads(pathlib.Path(path).read_text())):
            check(False, f"{path}: {error.json_path}: {error.message}")
        kinds.add(schema_path.stem)
    print(f"  custom resources valid by their schemas: {', '.join(sorted(kinds))}")


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def config_maps(docs):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def quantity_bytes(value):
    match = QUANTITY.match(str(value))
    if not match:
        raise SystemExit(f"not a size: {value!r}")
    return int(float(match[1]) * UNITS[match[2]])


def smtp_port(url):
    """The port an SMTP URL names, if it names one."""
    match = re.match(r"^[a-z]+://(\[[^]]*\]|[^/?#:]*)(?::([0-9]+))?(?:[/?#].*)?$", url or "")
    return int(match[2]) if match and match[2] else None


def known_env(binary):
    help_text = subprocess.run([binary, "up", "--help"], check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"\[env: (MP3C_[A-Z0-9_]+)=", help_text)) | ENV_NOT_IN_HELP


def assert_deployment(name, dep, docs, known):
    spec = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    where = f"{name}: Deployment {dep['metadata']['name']}"
    check(spec.get("automountServiceAccountToken") is False, f"{where}: the service account token is mounted")
    pod_sc = spec.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not set")
    check(pod_sc.get("runAsUser", 0) >= 10000, f"{where}: runs as a low uid (checkov's CKV_K8S_40 is skipped for the trial backends only)")
    check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp is not RuntimeDefault")
    (container,) = spec["containers"]
    sc = container.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, f"{where}: the root filesystem is writable")
    check(sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation is allowed")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: not every capability is dropped")
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    check("/data" in mounts, f"{where}: no volume for the data folder")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{where}: liveness is not /healthz")
    check(container["startupProbe"]["httpGet"]["path"] == "/healthz", f"{where}: no startup probe on /healthz")
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{where}: readiness is not /readyz")
    env = env_of(container)
    settings = {}
    for source in container.get("envFrom", []):
        settings.update(config_maps(docs)[source["configMapRef"]["name"]]["data"])
    roles = env["MP3C_ROLES"]["value"].split(",") if "MP3C_ROLES" in env else []
    check("MP3C_SHUTDOWN_GRACE_SECONDS" in env and "MP3C_SHUTDOWN_GRACE_SECONDS" not in settings,
          f"{where}: the shutdown grace is not the Deployment's own (env, not the ConfigMap)")
    grace = int(env.get("MP3C_SHUTDOWN_GRACE_SECONDS", {}).get("value", settings.get("MP3C_SHUTDOWN_GRACE_SECONDS", 0)))
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    check(spec["terminationGracePeriodSeconds"] > grace + pre_stop,
          f"{where}: terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} is not past the "
          f"pre-stop wait {pre_stop} plus the shutdown grace {grace}")
    (data,) = [v for v in spec["volumes"] if v["name"] == "data"]
    if "gateway" in roles:
        uploads, upload_bytes = int(settings["MP3C_MAX_CONCURRENT_UPLOADS"]), int(settings["MP3C_MAX_UPLOAD_BYTES"])
        limit = quantity_bytes(data["emptyDir"]["sizeLimit"])
        check(limit >= uploads * upload_bytes * 1.1,
              f"{where}: the data folder's sizeLimit {data['emptyDir']['sizeLimit']} is under {uploads} uploads "
              f"(--max-concurrent-uploads) of {upload_bytes} bytes, each spooled with its audio-only copy")
    reload = dep["metadata"].get("annotations", {}).get(RELOADER)
    if reload is not None:
        tls = [v["secret"]["secretName"] for v in spec["volumes"] if v["name"] == "cluster-tls"]
        check(tls == [reload], f"{where}: Reloader watches {reload}, not the cluster certificate's Secret {tls}")
    check(env.get("MP3C_NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
          f"{where}: the node name is not the pod's name")
    check("MP3C_ROLES" in env, f"{where}: no roles")
    for var in CREDENTIAL_ENV:
        check("secretKeyRef" in env.get(var, {}).get("valueFrom", {}), f"{where}: {var} does not come from a Secret")
        check(var not in settings, f"{where}: {var} is in a ConfigMap")
    for var in set(env) | set(settings):
        if var.startswith("MP3C_"):
            check(var in known, f"{where}: the service knows no {var}")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        check(any(d["kind"] == kind and selects(d["spec"].get("podSelector", d["spec"].get("selector", {}))
                                                .get("matchLabels", {}), labels) for d in docs),
              f"{where}: no {kind} selects its pods")
    return settings


def egress_ports(policy):
    return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}


def assert_render(name, docs, known):
    for doc in docs:
        check(doc["metadata"].get("namespace"), f"{name}: {doc['kind']} {doc['metadata']['name']} has no namespace")
        if doc["kind"] == "ConfigMap":
            for key, value in doc.get("data", {}).items():
                check(not URL_WITH_PASSWORD.search(value), f"{name}: ConfigMap key {key} holds a URL with a password")
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    check(deployments, f"{name}: no Deployment")
    roles = set()
    settings = {}
    for dep in deployments:
        settings = assert_deployment(name, dep, docs, known)
        check("MP3C_MAX_CONCURRENT_UPLOADS" in settings, f"{name}: --max-concurrent-uploads is left at the service's default")
        roles |= set(env_of(dep["spec"]["template"]["spec"]["containers"][0])["MP3C_ROLES"]["value"].split(","))
    check(roles == {"gateway", "auth", "converter", "notifier"}, f"{name}: roles carried: {sorted(roles)}")
    headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"
                and d["metadata"]["labels"].get("app.kubernetes.io/component") == "cluster"]
    check(len(headless) == 1, f"{name}: no headless Service for the actor cluster")
    if headless:
        svc = headless[0]
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        seed = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local:{ports['cluster']}"
        check(settings.get("MP3C_CLUSTER_SEEDS") == seed, f"{name}: the seed list is not the headless Service")
        check(svc["spec"].get("publishNotReadyAddresses") is True, f"{name}: seeds leave out starting nodes")
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        body = ingress["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-body-size")
        check(body is not None and int(body) >= int(settings["MP3C_MAX_UPLOAD_BYTES"]),
              f"{name}: the Ingress body limit {body} is under --max-upload-bytes")
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        meta = trigger["metadata"]
        check(trigger["type"] == "rabbitmq" and meta.get("mode") == "QueueLength" and meta.get("protocol") == "http"
              and meta.get("queueName") == "video" and "host" not in meta and "authenticationRef" in trigger,
              f"{name}: the ScaledObject's trigger is not rabbitmq/QueueLength/http on video with a TriggerAuthentication")
        check(not any(d["kind"] == "HorizontalPodAutoscaler" for d in docs), f"{name}: both KEDA and an HPA")
    port = smtp_port(settings.get("MP3C_SMTP_URL"))
    node_policies = [d for d in docs if d["kind"] == "NetworkPolicy" and any(
        selects(d["spec"]["podSelector"].get("matchLabels", {}), dep["spec"]["template"]["metadata"]["labels"])
        for dep in deployments)]
    for policy in (p for p in node_policies if port):
        check(port in egress_ports(policy), f"{name}: NetworkPolicy {policy['metadata']['name']} does not let the "
                                            f"nodes reach the SMTP port {port} of --smtp-url")
    for scaler in (d for d in docs if d["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")):
        # KEDA's own default is zero, an HPA's one.
        keda = scaler["kind"] == "ScaledObject"
        least = scaler["spec"].get("minReplicaCount" if keda else "minReplicas", 0 if keda else 1)
        (target,) = [d for d in deployments if d["metadata"]["name"] == scaler["spec"]["scaleTargetRef"]["name"]]
        carried = env_of(target["spec"]["template"]["spec"]["containers"][0])["MP3C_ROLES"]["value"].split(",")
        for role in sorted(set(carried) - {"converter"} if least == 0 else []):
            check(False, f"{name}: {scaler['kind']} may scale {target['metadata']['name']}, which carries the "
                         f"{role}, to zero")
    for dep in deployments:
        scaled = any(d["kind"] in ("ScaledObject", "HorizontalPodAutoscaler") and
                     d["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"] for d in docs)
        check(not (scaled and "replicas" in dep["spec"]), f"{name}: {dep['metadata']['name']} sets replicas under an autoscaler")


def assert_renders(folder, binary):
    known = known_env(binary)
    renders = {p.stem: load(p) for p in sorted(pathlib.Path(folder).glob("*.yaml"))}
    for name, docs in renders.items():
        assert_render(name, docs, known)
    kinds = {name: {d["kind"] for d in docs} for name, docs in renders.items()}
    # What each values file turns on (see chart/ci/).
    expect = {
        "defaults-values": ({"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"},
                            {"StatefulSet", "ScaledObject", "ServiceMonitor", "PrometheusRule", "Certificate", "Ingress"}),
        "trial-values": ({"StatefulSet", "Ingress"},
                         {"ServiceMonitor", "PrometheusRule"}),
        "keda-values": ({"ScaledObject", "TriggerAuthentication"}, {"Secret", "HorizontalPodAutoscaler"}),
        "monitoring-values": ({"ServiceMonitor", "PrometheusRule", "StatefulSet"}, set()),
        "tls-values": ({"Certificate"}, {"HorizontalPodAutoscaler", "ScaledObject"}),
        "runbook-values": ({"PrometheusRule"}, set()),
        # The same values as monitoring-values, without the Prometheus Operator's API.
        "monitoring-values-no-crds": (set(), {"ServiceMonitor", "PrometheusRule"}),
    }
    for name, (present, absent) in expect.items():
        check(name in kinds, f"no render {name}")
        check(present <= kinds.get(name, set()), f"{name}: missing {sorted(present - kinds.get(name, set()))}")
        check(not absent & kinds.get(name, set()), f"{name}: unexpected {sorted(absent & kinds.get(name, set()))}")
    sets = [d for d in renders.get("trial-values", []) if d["kind"] == "StatefulSet"]
    check(len(sets) == 3 and all(d["spec"].get("volumeClaimTemplates") for d in sets),
          "trial: not three StatefulSets with a PersistentVolumeClaim each")
    check(all(RELOADER in d["metadata"].get("annotations", {}) for d in renders.get("tls-values", [])
              if d["kind"] == "Deployment"), "tls-values: cluster.tls.reloader does not annotate every Deployment")


def dashboards(render, folder):
    maps = {key: value for d in load(render) if d["kind"] == "ConfigMap"
            and d["metadata"]["labels"].get("grafana_dashboard") == "1" for key, value in d["data"].items()}
    files = sorted(pathlib.Path(folder).glob("*.json"))
    check(files, f"no dashboards in {folder}")
    for path in files:
        check(maps.get(path.name, "").strip() == path.read_text().strip(),
              f"dashboard {path.name} is not in a ConfigMap as it is (templated by Helm?)")
    check(len(maps) == len(files), f"{len(maps)} dashboard ConfigMaps for {len(files)} files")


def rules(render, path, values=None):
    """With VALUES, the rule file's relative runbook links are expected at its runbookBaseUrl."""
    (rule,) = [d for d in load(render) if d["kind"] == "PrometheusRule"]
    groups = yaml.safe_load(pathlib.Path(path).read_text())["groups"]
    base = values and yaml.safe_load(pathlib.Path(values).read_text())["monitoring"]["prometheusRule"]["runbookBaseUrl"]
    links = [r["annotations"] for g in groups for r in g["rules"] if "runbook_url" in r.get("annotations", {})]
    check(links and all(a["runbook_url"].startswith(RUNBOOK_PREFIX) for a in links),
          f"{path}: not every runbook_url is {RUNBOOK_PREFIX}<alert>")
    if base:
        for annotations in links:
            annotations["runbook_url"] = base + "#" + annotations["runbook_url"].removeprefix(RUNBOOK_PREFIX)
    check(rule["spec"]["groups"] == groups, f"the PrometheusRule's groups differ from {path}"
                                            + (f" with runbook links at {base}" if base else ""))


def runtime_packages(dockerfile):
    """The packages the last stage's apt-get install names."""
    text = pathlib.Path(dockerfile).read_text().replace("\\\n", " ")
    last_stage = re.split(r"(?m)^FROM ", text)[-1]
    installs = re.findall(r"apt-get install ([^&\n]*)", last_stage)
    return {word for line in installs for word in line.split() if not word.startswith("-")}


def providers(paths):
    """The Debian package of each library file (dpkg knows some by their /usr/lib name only)."""
    candidates = {}
    for path in paths:
        real = str(pathlib.Path(path).resolve())
        for candidate in (path, real, real.replace("/lib/", "/usr/lib/", 1)):
            candidates.setdefault(candidate, path)
    found = subprocess.run(["dpkg-query", "-S", *candidates], capture_output=True, text=True).stdout
    owner = {}
    for line in found.splitlines():
        packages, _, file = line.partition(": ")
        if file in candidates:
            owner.setdefault(candidates[file], packages.split(",")[0].split(":")[0])
    missing = set(paths) - set(owner)
    if missing:
        raise SystemExit(f"no Debian package provides {sorted(missing)}")
    return owner


def depends_closure(packages):
    """The packages these pull in through Depends and Pre-Depends, as installed here."""
    listing = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Depends}, ${Pre-Depends}\n"],
                             check=True, capture_output=True, text=True).stdout
    depends = {}
    for line in listing.splitlines():
        name, status, fields = line.split("\t")
        if status.endswith(" installed"):
            depends[name] = [c.strip() for c in fields.split(",") if c.strip()]
    seen, todo = set(), list(packages)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        for clause in depends.get(package, []):
            names = [alternative.split()[0].split(":")[0] for alternative in clause.split("|")]
            todo.extend([name for name in names if name in depends][:1])
    return seen


def image(dockerfile, binary):
    runtime = runtime_packages(dockerfile)
    print(f"  runtime packages: {' '.join(sorted(runtime))}")
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(["readelf", "-d", binary], check=True,
                                                                 capture_output=True, text=True).stdout)
    ldd = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    paths.update({pathlib.Path(p).name: p for p in re.findall(r"^\s*(/\S+) \(", ldd, re.M)})
    check(ldd.count("not found") == 0, "ldd finds no library for: " + ldd)
    libraries = [p for p in paths.values() if p.startswith("/")]
    owner = providers(libraries)
    direct = {}
    for soname in needed:
        direct[soname] = owner[paths[soname]]
        check(direct[soname] in runtime | BASE_IMAGE_PACKAGES,
              f"{soname} (package {direct[soname]}) is not installed in the runtime stage")
    print(f"  linked directly: {', '.join(f'{s} ({p})' for s, p in direct.items())}")
    closure = depends_closure(runtime | BASE_IMAGE_PACKAGES)
    for path in libraries:
        check(owner[path] in closure, f"{path} ({owner[path]}) is not pulled in by the runtime packages")
    print(f"  all {len(libraries)} libraries ldd lists come with those packages' dependencies")
    for package in runtime:
        check(package in direct.values() or package in NON_LIBRARY_PACKAGES,
              f"runtime package {package} provides no library the binary links")


def build_context(dockerfile, dockerignore):
    """Every folder of the checkout the compiler reads for the binary (the sources, the
    migrations `sqlx::migrate!` embeds, the web page `include_str!` embeds) is copied into the
    build stage and let through .dockerignore, so that the image builds from what the tests built."""
    tops = {"src"}
    for source in pathlib.Path("src").rglob("*.rs"):
        text = source.read_text()
        for embedded in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', text):
            tops.add(os.path.relpath(source.parent / embedded).split(os.sep)[0])
        for folder in re.findall(r'migrate!\(\s*"([^"]+)"', text):
            tops.add(pathlib.Path(folder).parts[0])
    copied = set()
    for line in re.findall(r"^COPY (?!--from)(.+)$", pathlib.Path(dockerfile).read_text(), re.M):
        copied.update(source.rstrip("/") for source in line.split()[:-1])
    let_through = {line[1:].strip().rstrip("/") for line in pathlib.Path(dockerignore).read_text().splitlines()
                   if line.startswith("!")}
    for top in sorted(tops):
        check(top in copied, f"the build stage does not COPY {top}/, which the compiler reads")
        check(top in let_through, f".dockerignore keeps out {top}/, which the compiler reads")
    print(f"  the compiler reads {', '.join(f'{t}/' for t in sorted(tops))}: all copied into the build stage")


def main():
    command, *args = sys.argv[1:]
    commands = {"split": split, "crds": crds, "assert": assert_renders, "dashboards": dashboards, "rules": rules,
                "image": image, "build-context": build_context}
    commands[command](*args)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
