#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Stand-in for the CLIs the deploy scripts drive (kubectl, kind, docker,
podman, buildah, mmdebstrap, curl, gcloud, aws, go, git, kubectl-ate, ...), installed on PATH by
test/e2e under each tool's name.

Every call appends {"tool", "args", "cwd"} as a JSON line to $STUB_LOG.
Nothing reaches a cluster, an engine or the network; the few answers the
scripts read are faked from a small state file ($STUB_STATE):
  - `kubectl kustomize` runs the real kubectl (/usr/bin/kubectl);
  - `kubectl port-forward ... L:R` listens on 127.0.0.1:L until killed
    and prints kubectl's "Forwarding from 127.0.0.1:L -> R";
  - `kubectl get pods ... --output name` lists one worker / atelet pod;
  - `kind get nodes` lists <name>-control-plane and <name>-worker;
    `kind version` says v$STUB_KIND_VERSION (default 0.32.0);
  - `kubectl get --raw /apis/certificates.k8s.io/v1beta1` lists the
    PodCertificateRequest API (NotFound when STUB_NO_PCR=1);
  - `kubectl get actortemplate ... -o jsonpath=...` prints
    $STUB_TEMPLATE_IMAGE (empty: not found);
  - `docker|podman image inspect` prints a registry digest;
  - `podman|buildah push --digestfile F` writes PUSHED_DIGEST (another
    digest than the local one: what the registry stored) into F;
  - `kubectl-ate` keeps each actor's status (create -> SUSPENDED,
    resume -> RUNNING, suspend -> SUSPENDED, delete -> gone) and prints
    it on `get`;
  - `curl --output F` writes the counter's reply (the in-memory count,
    which survives suspend/resume unless STUB_COUNT_RESET=1) or, for
    /status, a helpdesk status document.
STUB_FAIL="tool:substring;..." makes a call fail (exit 1) when its tool
matches and the joined arguments contain the substring.
"""
import json
import os
import socket
import sys
import time

REAL_KUBECTL = "/usr/bin/kubectl"
DIGEST = "sha256:" + "ab" * 32
PUSHED_DIGEST = "sha256:" + "cd" * 32


def state_load():
    path = os.environ.get("STUB_STATE")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def state_save(state):
    path = os.environ.get("STUB_STATE")
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(path + ".tmp", path)


def should_fail(tool, args):
    joined = " ".join(args)
    for rule in filter(None, os.environ.get("STUB_FAIL", "").split(";")):
        name, _, needle = rule.partition(":")
        if name == tool and needle in joined:
            return True
    return False


def flag_value(args, *names):
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a[len(n) + 1:]
    return None


def port_forward(args):
    ports = [a for a in args if ":" in a and a.split(":")[0].isdigit()]
    local = int(ports[-1].split(":")[0])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", local))
    except OSError as e:
        sys.stderr.write("error: unable to listen on any of the requested ports: %s\n" % e)
        return 1
    s.listen(16)
    # What kubectl prints once it forwards (the scripts wait for it).
    print("Forwarding from 127.0.0.1:%d -> %s" % (local, ports[-1].split(":")[1]), flush=True)
    s.settimeout(1.0)
    deadline = time.monotonic() + 600  # never outlive a broken test
    while time.monotonic() < deadline:
        try:
            c, _ = s.accept()
            c.close()
        except socket.timeout:
            pass
    return 0


PCR_API = {"kind": "APIResourceList", "groupVersion": "certificates.k8s.io/v1beta1",
           "resources": [{"name": "clustertrustbundles", "kind": "ClusterTrustBundle"},
                         {"name": "podcertificaterequests", "kind": "PodCertificateRequest"}]}


def kubectl(args):
    if "kustomize" in args:
        os.execv(REAL_KUBECTL, [REAL_KUBECTL] + args)
    if "--raw" in args and flag_value(args, "--raw") == "/apis/certificates.k8s.io/v1beta1":
        if os.environ.get("STUB_NO_PCR") == "1":
            sys.stderr.write("Error from server (NotFound): the server could not find the "
                             "requested resource\n")
            return 1
        print(json.dumps(PCR_API))
        return 0
    if "get" in args and "actortemplate" in args and "jsonpath" in " ".join(args):
        sys.stdout.write(os.environ.get("STUB_TEMPLATE_IMAGE", ""))
        return 0
    if "port-forward" in args:
        return port_forward(args)
    if "get" in args and "pods" in args and flag_value(args, "--output", "-o") == "name":
        selector = flag_value(args, "--selector", "-l") or ""
        if "worker-pool=" in selector:
            print("pod/%s-deployment-7d9c-x2" % selector.split("=", 1)[1])
        else:
            print("pod/atelet-n7k2q\npod/ate-api-server-deployment-5f-1")
        return 0
    if "logs" in args:
        print('{"level":"INFO","msg":"stub worker log line"}')
    return 0


def kind(args):
    if args[:1] == ["version"]:
        print("kind v%s go1.26.1 linux/amd64" % os.environ.get("STUB_KIND_VERSION", "0.32.0"))
        return 0
    if args[:2] == ["get", "nodes"]:
        name = flag_value(args, "--name") or "kind"
        print("%s-control-plane\n%s-worker" % (name, name))
    return 0


def engine(tool, args):
    if tool != "docker" and (args[:1] == ["push"] or args[:2] == ["manifest", "push"]):
        digest_file = flag_value(args, "--digestfile")
        if digest_file:
            with open(digest_file, "w") as f:
                f.write(PUSHED_DIGEST)
        return 0
    if args[:2] == ["image", "inspect"]:
        ref = args[-1]
        last = ref.rsplit("/", 1)[-1]
        repo = ref.rsplit(":", 1)[0] if ":" in last else ref
        if "{{.Digest}}" in " ".join(args):
            print(DIGEST)
        else:
            print("%s@%s" % (repo, DIGEST))
    return 0


def kubectl_ate(args):
    state = state_load()
    actors = state.setdefault("actors", {})
    words = [a for a in args if not a.startswith("--")]
    verb, actor = words[0], words[2]  # VERB actor(s) ID [...]
    if verb == "create":
        actors[actor] = "STATUS_SUSPENDED"
    elif verb == "resume":
        if actors.get(actor) == "STATUS_SUSPENDED" and state.get("running_once", {}).get(actor):
            state.setdefault("resumed_after_suspend", {})[actor] = True
        actors[actor] = "STATUS_RUNNING"
        state.setdefault("running_once", {})[actor] = True
    elif verb == "suspend":
        actors[actor] = "STATUS_SUSPENDED"
    elif verb == "delete":
        actors.pop(actor, None)
    elif verb == "get":
        print("NAMESPACE   TEMPLATE   ID   STATUS")
        print("ns   tmpl   %s   %s" % (actor, actors.get(actor, "STATUS_UNSPECIFIED")))
    state_save(state)
    return 0


def curl(args):
    out = flag_value(args, "--output", "-o")
    url = args[-1]
    state = state_load()
    if url.endswith("/status"):
        uptime = state.get("uptime", 10.0) + 5.0
        state["uptime"] = uptime
        body = json.dumps({"history_turns": 0, "uptime_seconds": uptime,
                           "model": "gpt-oss:20b-cloud"})
    else:
        count = state.get("count", 0)
        if os.environ.get("STUB_COUNT_RESET") == "1" and state.get("resumed_after_suspend"):
            count, state["resumed_after_suspend"] = 0, {}
        count += 1
        state["count"] = count
        body = "hello from: 169.254.17.2 | preserved memory count: %d\n" % count
    state_save(state)
    if out:
        with open(out, "w") as f:
            f.write(body)
    else:
        sys.stdout.write(body)
    return 0


def main():
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    log = os.environ.get("STUB_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"tool": tool, "args": args, "cwd": os.getcwd()}) + "\n")
    if should_fail(tool, args):
        sys.stderr.write("stub %s: failing on purpose (STUB_FAIL)\n" % tool)
        return 1
    if tool == "kubectl":
        return kubectl(args)
    if tool == "kind":
        return kind(args)
    if tool in ("docker", "podman", "buildah"):
        return engine(tool, args)
    if tool == "kubectl-ate":
        return kubectl_ate(args)
    if tool == "curl":
        return curl(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
