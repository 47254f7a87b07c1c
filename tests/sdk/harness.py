"""The machinery under the SDK conformance suite: a real `certbind serve` process, a
client made of the unmodified official Python SDK, and a call layer that counts and
records every response.

Nothing here patches the SDK. The client is configured only through the options of
`ucloud.client.Client` (region, project_id, keys, base_url, max_retries) and observed
through its public middleware hooks (`client.middleware.request/response`), which see
the raw JSON before the SDK's response schema lower-cases keys and drops fields.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from ucloud.client import Client
from ucloud.core.exc import RetCodeException

SUITE_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUITE_DIR.parents[1]
RECORD_PATH = SUITE_DIR / ".recorded" / "responses.jsonl"

STARTUP_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 10
CLI_TIMEOUT_S = 30
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


# ---------------------------------------------------------------------------------------
# The binary and the server process
# ---------------------------------------------------------------------------------------

def certbind_binary() -> Path:
    """`CERTBIND_BIN` (relative paths are taken from the repo root), else
    target/debug/certbind, built with `cargo build` when it does not exist yet."""
    override = os.environ.get("CERTBIND_BIN")
    path = Path(override or "target/debug/certbind")
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        if override:
            raise FileNotFoundError(f"CERTBIND_BIN={override} does not exist")
        subprocess.run(["cargo", "build"], cwd=REPO_ROOT, check=True)
    return path


class ServerError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    public_key: str
    private_key: str
    project_id: str
    region: str
    base_url: str

    @classmethod
    def from_json(cls, data: dict, base_url: str) -> "Credentials":
        missing = [k for k in ("PublicKey", "PrivateKey", "ProjectId") if not data.get(k)]
        if missing:
            raise ServerError(f"credentials lack {missing}: {data}")
        # The running server's own address wins over whatever BaseUrl a CLI command
        # printed: `account create` cannot know the port of a `--listen ...:0` server.
        return cls(data["PublicKey"], data["PrivateKey"], data["ProjectId"],
                   data.get("Region") or "cn-bj2", base_url)


class CertbindServer:
    """One `certbind serve` on 127.0.0.1:0 with its own data directory."""

    def __init__(self, binary: Path, data_dir: Path):
        self.binary = binary
        self.data_dir = data_dir
        self.stderr_path = data_dir.parent / (data_dir.name + ".stderr.log")
        self.base_url: str | None = None
        self.stdout_lines: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> "CertbindServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stderr = open(self.stderr_path, "wb")
        self._proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "NO_COLOR": "1"},  # the log goes to a file that failures quote
        )
        stderr.close()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        # The reader sets the event on the "listening on" line or at EOF (the process died).
        if not self._ready.wait(STARTUP_TIMEOUT_S) or self.base_url is None:
            code = self._proc.poll()
            self._kill()
            raise ServerError(
                f"certbind serve did not print 'listening on http://127.0.0.1:<port>' within "
                f"{STARTUP_TIMEOUT_S}s (exit code {code})\n--- stdout ---\n"
                + "".join(self.stdout_lines) + "--- stderr ---\n" + self.stderr_text()
            )
        return self

    def _read_stdout(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            self.stdout_lines.append(line)
            match = LISTENING.search(line)
            if match and self.base_url is None:
                self.base_url = match.group(1)
                self._ready.set()
        self._ready.set()

    def stderr_text(self, tail_lines: int | None = None) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        if tail_lines is not None:
            text = "".join(text.splitlines(keepends=True)[-tail_lines:])
        return text

    def credentials(self) -> Credentials:
        path = self.data_dir / "credentials.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ServerError(f"{path} does not exist after 'listening on' was printed") from None
        return Credentials.from_json(data, self.base_url)

    def cli(self, *args: str) -> dict:
        """Runs `certbind <args> --data-dir <dir>` next to the running server and parses
        the JSON object it prints."""
        cmd = [str(self.binary), *args, "--data-dir", str(self.data_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        if done.returncode != 0:
            raise ServerError(f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout}{done.stderr}")
        start, end = done.stdout.find("{"), done.stdout.rfind("}")
        if start < 0 or end < start:
            raise ServerError(f"{' '.join(cmd)} printed no JSON object:\n{done.stdout}")
        return json.loads(done.stdout[start:end + 1])

    def create_account(self, name: str) -> Credentials:
        return Credentials.from_json(self.cli("account", "create", name), self.base_url)

    def create_key(self, account: str, projects: list[str] | None = None) -> Credentials:
        args = ["key", "create", "--account", account]
        if projects:
            args += ["--projects", ",".join(projects)]
        return Credentials.from_json(self.cli(*args), self.base_url)

    def stop(self) -> int:
        """SIGTERM, then wait. A server that ignores SIGTERM is killed and reported."""
        if self._proc is None or self._proc.poll() is not None:
            return self._proc.returncode if self._proc else 0
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill()
            raise ServerError(f"certbind serve did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM") from None
        finally:
            if self._reader:
                self._reader.join(SHUTDOWN_TIMEOUT_S)

    def _kill(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


# ---------------------------------------------------------------------------------------
# Counting and recording
# ---------------------------------------------------------------------------------------

class Recorder:
    """Counts calls and flows for the session summary and appends every response, as
    received, to tests/sdk/.recorded/responses.jsonl (one JSON object a line:
    {"Action": <request action>, "Test": <test id>, "Response": <raw JSON>})."""

    def __init__(self, path: Path = RECORD_PATH):
        self.path = path
        self.calls = 0
        self.flows = 0
        self.current_test = ""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        self._file = open(path, "a", encoding="utf-8")

    def request_sent(self) -> None:
        self.calls += 1

    def record(self, action: str, response: dict) -> None:
        line = {"Action": action, "Test": self.current_test, "Response": response}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------------------------
# The call layer
# ---------------------------------------------------------------------------------------

# Wire action → method of the SDK's ULBClient.
ULB_METHODS = {
    "AddSSLBinding": "add_ssl_binding",
    "BindSSL": "bind_ssl",
    "CreateListener": "create_listener",
    "CreateLoadBalancer": "create_load_balancer",
    "CreateSSL": "create_ssl",
    "CreateULB": "create_ulb",
    "CreateVServer": "create_vserver",
    "DeleteListener": "delete_listener",
    "DeleteLoadBalancer": "delete_load_balancer",
    "DeleteSSL": "delete_ssl",
    "DeleteSSLBinding": "delete_ssl_binding",
    "DeleteULB": "delete_ulb",
    "DeleteVServer": "delete_vserver",
    "DescribeListeners": "describe_listeners",
    "DescribeLoadBalancers": "describe_load_balancers",
    "DescribeSSL": "describe_ssl",
    "DescribeSSLV2": "describe_ssl_v2",
    "DescribeULB": "describe_ulb",
    "DescribeULBSimple": "describe_ulb_simple",
    "DescribeVServer": "describe_vserver",
    "UnbindSSL": "unbind_ssl",
    "UpdateListenerAttribute": "update_listener_attribute",
    "UpdateLoadBalancerAttribute": "update_load_balancer_attribute",
    "UpdateSSLAttribute": "update_ssl_attribute",
    "UpdateSSLBinding": "update_ssl_binding",
    "UpdateULBAttribute": "update_ulb_attribute",
    "UpdateVServerAttribute": "update_vserver_attribute",
}


class Api:
    """One SDK client (one set of credentials) against the server under test.

    * `call(Action, **params)` — the SDK's typed method (`client.ulb().<method>`): the
      request passes the SDK's client-side schema; returns what a real SDK user gets.
    * `invoke(Action, **params)` — the SDK's generic signed request (`Client.invoke`):
      no request schema, so legacy/unknown parameters go out as given; returns the raw
      JSON.
    * `fails(code, Action, **params)` — either path, expecting `RetCodeException(code)`.
    * `last_raw` — the raw JSON of the latest response, exactly as received.
    """

    def __init__(self, creds: Credentials, recorder: Recorder, *, label: str = "api", **overrides):
        config = {
            "region": creds.region,
            "project_id": creds.project_id,
            "public_key": creds.public_key,
            "private_key": creds.private_key,
            "base_url": creds.base_url,
            "max_retries": 0,
        }
        config.update(overrides)
        self.creds = creds
        self.config = config
        self.label = label
        self.recorder = recorder
        self.last_raw: dict | None = None
        self.client = Client(config)
        self.client.middleware.request(self._on_request)
        self.client.middleware.response(self._on_response)
        self.ulb = self.client.ulb()

    @property
    def project_id(self) -> str:
        return self.config["project_id"]

    def with_config(self, label: str, **overrides) -> "Api":
        """A second client for the same server with some options replaced (a wrong key,
        another project, ...)."""
        config = dict(self.config)
        config.update(overrides)
        return Api(self.creds, self.recorder, label=label, **config)

    # -- middleware hooks (public SDK API) -------------------------------------------------

    def _on_request(self, args: dict) -> dict:
        self.recorder.request_sent()
        return args

    def _on_response(self, data, http_resp=None):
        action = ""
        request = getattr(http_resp, "request", None)
        if request is not None and request.data:
            action = request.data.get("Action", "")
        self.last_raw = data
        self.recorder.record(action, data)
        return data

    # -- calls ----------------------------------------------------------------------------

    def call(self, action: str, **params) -> dict:
        method = getattr(self.ulb, ULB_METHODS[action])
        self.last_raw = None
        return method(params)

    def invoke(self, action: str, **params) -> dict:
        self.last_raw = None
        return self.ulb.invoke(action, dict(params))

    def unet(self, action: str, **params) -> dict:
        unet = self.client.unet()
        method = {"DescribeFirewall": unet.describe_firewall}[action]
        return method(params)

    def fails(self, code: int | tuple[int, ...], action: str, *, generic: bool = False,
              **params) -> RetCodeException:
        """Sends the request and insists on RetCode `code` (or one of several where the
        spec leaves the choice open); returns the exception."""
        codes = code if isinstance(code, tuple) else (code,)
        send = self.invoke if generic else self.call
        try:
            resp = send(action, **params)
        except RetCodeException as e:
            assert e.code in codes, (
                f"{action} {params_summary(params)} answered RetCode {e.code} ({e.message!r}); "
                f"expected {' or '.join(map(str, codes))}"
            )
            raw = self.last_raw
            assert raw is not None and type(raw.get("RetCode")) is int, f"RetCode must be a JSON integer: {raw}"
            assert raw.get("Action") == f"{action}Response", raw
            assert isinstance(raw.get("Message"), str) and raw["Message"], f"an error answer needs a Message: {raw}"
            assert e.request_uuid, "errors carry the X-UCLOUD-REQUEST-UUID header (the SDK puts it in the exception)"
            return e
        raise AssertionError(f"{action} {params_summary(params)} succeeded ({resp}); "
                             f"expected RetCode {' or '.join(map(str, codes))}")

    def raw_ok(self, action: str) -> dict:
        """The last answer's raw JSON, checked for the success envelope."""
        raw = self.last_raw
        assert raw is not None, f"no response recorded for {action}"
        assert raw.get("RetCode") == 0 and type(raw.get("RetCode")) is int, raw
        assert raw.get("Action") == f"{action}Response", raw
        return raw


def params_summary(params: dict) -> str:
    shown = {k: (v if len(str(v)) < 60 else str(v)[:57] + "...") for k, v in params.items()}
    return json.dumps(shown, ensure_ascii=False)


# ---------------------------------------------------------------------------------------
# Reading state back
# ---------------------------------------------------------------------------------------

def describe_all_ssl(api: Api, action: str = "DescribeSSL", limit: int = 100) -> list[dict]:
    """Pages through DescribeSSL[V2] the way terraform and certimate do."""
    items: list[dict] = []
    offset = 0
    while True:
        page = api.call(action, Limit=limit, Offset=offset)
        data = page.get("DataSet") or []
        items.extend(data)
        assert page.get("TotalCount", -1) >= len(items), page
        if len(data) < limit:
            break
        offset += limit
    return items


def one_ssl(api: Api, ssl_id: str, action: str = "DescribeSSL") -> dict:
    resp = api.call(action, SSLId=ssl_id)
    data = resp.get("DataSet") or []
    assert len(data) == 1 and data[0]["SSLId"] == ssl_id, f"{action}(SSLId={ssl_id}) → {api.last_raw}"
    assert resp.get("TotalCount") == 1, api.last_raw
    return data[0]


def ssl_absent(api: Api, ssl_id: str) -> None:
    """Unknown SSLId ⇒ RetCode 0, TotalCount 0, DataSet [] (terraform/CLI depend on it)."""
    for action in ("DescribeSSL", "DescribeSSLV2"):
        resp = api.call(action, SSLId=ssl_id)
        raw = api.raw_ok(action)
        assert resp.get("DataSet") == [] and raw.get("DataSet") == [], raw
        assert raw.get("TotalCount") == 0, raw


def one_vserver(api: Api, ulb_id: str, vserver_id: str) -> dict:
    resp = api.call("DescribeVServer", ULBId=ulb_id, VServerId=vserver_id)
    data = resp.get("DataSet") or []
    assert len(data) == 1 and data[0]["VServerId"] == vserver_id, api.last_raw
    return data[0]


def one_ulb(api: Api, ulb_id: str) -> dict:
    resp = api.call("DescribeULB", ULBId=ulb_id)
    data = resp.get("DataSet") or []
    assert len(data) == 1 and data[0]["ULBId"] == ulb_id, api.last_raw
    return data[0]


def one_listener(api: Api, alb_id: str, listener_id: str) -> dict:
    resp = api.call("DescribeListeners", LoadBalancerId=alb_id, ListenerId=listener_id)
    listeners = resp.get("Listeners") or []
    assert len(listeners) == 1 and listeners[0]["ListenerId"] == listener_id, api.last_raw
    return listeners[0]


def one_alb(api: Api, alb_id: str) -> dict:
    resp = api.call("DescribeLoadBalancers", LoadBalancerIds=[alb_id])
    lbs = resp.get("LoadBalancers") or []
    assert len(lbs) == 1 and lbs[0]["LoadBalancerId"] == alb_id, api.last_raw
    return lbs[0]


def vserver_gone(api: Api, ulb_id: str, vserver_id: str) -> None:
    """Not found = RetCode 4103 or an empty DataSet (terraform accepts both)."""
    try:
        resp = api.call("DescribeVServer", ULBId=ulb_id, VServerId=vserver_id)
    except RetCodeException as e:
        assert e.code == 4103, f"DescribeVServer of a deleted VServer → {e.code} {e.message}"
        return
    assert resp.get("DataSet") == [], api.last_raw


def ulb_gone(api: Api, ulb_id: str) -> None:
    try:
        resp = api.call("DescribeULB", ULBId=ulb_id)
    except RetCodeException as e:
        assert e.code in (4103, 4086), f"DescribeULB of a deleted ULB → {e.code} {e.message}"
        return
    assert resp.get("DataSet") == [], api.last_raw


def certificate_pairs(listener: dict) -> tuple[list[str], set[str]]:
    """(default SSLIds, SNI SSLIds) of an ALB listener as DescribeListeners shows it."""
    certs = listener.get("Certificates") or []
    defaults = [c["SSLId"] for c in certs if c.get("IsDefault")]
    sni = [c["SSLId"] for c in certs if not c.get("IsDefault")]
    assert len(sni) == len(set(sni)), f"duplicate SNI certificate: {certs}"
    return defaults, set(sni)


# ---------------------------------------------------------------------------------------
# A project's topology and what its bindings must look like
# ---------------------------------------------------------------------------------------

# Placeholders for VPC/subnet ids: certbind has no VPC service; CreateLoadBalancer's SDK
# schema requires both, CreateULB sends them in the official regression scenario.
VPC_ID = "uvnet-certbind"
SUBNET_ID = "subnet-certbind"


class World:
    """Builds LBs, listeners and certificates through the SDK, keeps the expected
    binding state, and checks the server against it through every read path:
    DescribeVServer, DescribeULB, DescribeListeners, DescribeSSL and DescribeSSLV2.

    Every builder verifies its own effect with a Describe call before returning.
    """

    def __init__(self, api: Api, certs):
        self.api = api
        self.certs = certs
        self.clb_vservers: dict[tuple[str, str], str | None] = {}   # (ulb, vserver) → ssl
        self.alb_listeners: dict[tuple[str, str], dict] = {}        # (alb, listener) → {"default", "sni"}
        self.ssl_ids: list[str] = []
        self.names: dict[str, str] = {}
        self._port = 8000

    def next_port(self) -> int:
        self._port += 1
        return self._port

    # -- builders -------------------------------------------------------------------------

    def ssl(self, bundle=None, name: str | None = None) -> str:
        bundle = bundle or self.certs.chained(f"site{len(self.ssl_ids)}.example.test")
        name = name or f"cert-{len(self.ssl_ids)}"
        ssl_id = self.api.call("CreateSSL", **bundle.create_ssl_params(name))["SSLId"]
        assert ssl_id and ssl_id.startswith("ssl-"), self.api.last_raw
        item = one_ssl(self.api, ssl_id)
        assert item["SSLName"] == name and item["BindedTargetSet"] == [], item
        self.ssl_ids.append(ssl_id)
        self.names[ssl_id] = name
        return ssl_id

    def clb(self, name: str) -> str:
        ulb_id = self.api.call("CreateULB", ULBName=name, Tag="Default", OuterMode="Yes")["ULBId"]
        assert ulb_id and ulb_id.startswith("ulb-"), self.api.last_raw
        assert one_ulb(self.api, ulb_id)["Name"] == name
        self.names[ulb_id] = name
        return ulb_id

    def vserver(self, ulb_id: str, name: str, protocol: str = "HTTPS", port: int | None = None) -> str:
        port = port or self.next_port()
        vs_id = self.api.call(
            "CreateVServer", ULBId=ulb_id, VServerName=name, Protocol=protocol, FrontendPort=port,
            ListenType="RequestProxy", Method="Roundrobin", PersistenceType="None",
        )["VServerId"]
        assert vs_id and vs_id.startswith("vserver-"), self.api.last_raw
        vs = one_vserver(self.api, ulb_id, vs_id)
        assert (vs["VServerName"], vs["Protocol"], vs["FrontendPort"]) == (name, protocol, port), vs
        assert vs["SSLSet"] == [], vs
        self.clb_vservers[(ulb_id, vs_id)] = None
        self.names[vs_id] = name
        return vs_id

    def alb(self, name: str) -> str:
        alb_id = self.api.call("CreateLoadBalancer", Name=name, VPCId=VPC_ID, SubnetId=SUBNET_ID)["LoadBalancerId"]
        assert alb_id and alb_id.startswith("alb-"), self.api.last_raw
        assert one_alb(self.api, alb_id)["Name"] == name
        self.names[alb_id] = name
        return alb_id

    def listener(self, alb_id: str, name: str, default_ssl: str | None, protocol: str = "HTTPS",
                 port: int | None = None) -> str:
        port = port or self.next_port()
        params = dict(LoadBalancerId=alb_id, Name=name, ListenerProtocol=protocol, ListenerPort=port)
        if default_ssl:
            params["Certificates"] = [default_ssl]
        als_id = self.api.call("CreateListener", **params)["ListenerId"]
        assert als_id and als_id.startswith("als-"), self.api.last_raw
        listener = one_listener(self.api, alb_id, als_id)
        assert (listener["Name"], listener["ListenerProtocol"], listener["ListenerPort"]) == (name, protocol, port)
        expected_certs = [{"SSLId": default_ssl, "IsDefault": True}] if default_ssl else []
        assert listener["Certificates"] == expected_certs, listener
        self.alb_listeners[(alb_id, als_id)] = {"default": default_ssl, "sni": set()}
        self.names[als_id] = name
        return als_id

    # -- binding operations (each checks every listener afterwards) ------------------------

    def bind(self, ulb_id: str, vs_id: str, ssl_id: str) -> None:
        self.api.call("BindSSL", ULBId=ulb_id, VServerId=vs_id, SSLId=ssl_id)
        self.api.raw_ok("BindSSL")
        self.clb_vservers[(ulb_id, vs_id)] = ssl_id
        self.verify()

    def unbind(self, ulb_id: str, vs_id: str, ssl_id: str) -> None:
        self.api.call("UnbindSSL", ULBId=ulb_id, VServerId=vs_id, SSLId=ssl_id)
        self.api.raw_ok("UnbindSSL")
        self.clb_vservers[(ulb_id, vs_id)] = None
        self.verify()

    def add_sni(self, alb_id: str, als_id: str, ssl_ids: list[str]) -> None:
        self.api.call("AddSSLBinding", LoadBalancerId=alb_id, ListenerId=als_id, SSLIds=list(ssl_ids))
        self.api.raw_ok("AddSSLBinding")
        self.alb_listeners[(alb_id, als_id)]["sni"].update(ssl_ids)
        self.verify()

    def remove_sni(self, alb_id: str, als_id: str, ssl_ids: list[str]) -> None:
        self.api.call("DeleteSSLBinding", LoadBalancerId=alb_id, ListenerId=als_id, SSLIds=list(ssl_ids))
        self.api.raw_ok("DeleteSSLBinding")
        self.alb_listeners[(alb_id, als_id)]["sni"].difference_update(ssl_ids)
        self.verify()

    def set_default(self, alb_id: str, als_id: str, ssl_id: str) -> None:
        self.api.call("UpdateListenerAttribute", LoadBalancerId=alb_id, ListenerId=als_id, Certificates=[ssl_id])
        self.api.raw_ok("UpdateListenerAttribute")
        self.alb_listeners[(alb_id, als_id)]["default"] = ssl_id
        self.verify()

    def apply(self, action: str, params: dict) -> None:
        """Applies a successful binding call made elsewhere (e.g. by a replayed client
        algorithm) to the expected state, then checks every read path."""
        if action == "BindSSL":
            self.clb_vservers[(params["ULBId"], params["VServerId"])] = params["SSLId"]
        elif action == "UnbindSSL":
            self.clb_vservers[(params["ULBId"], params["VServerId"])] = None
        elif action == "AddSSLBinding":
            self.alb_listeners[(params["LoadBalancerId"], params["ListenerId"])]["sni"].update(params["SSLIds"])
        elif action == "DeleteSSLBinding":
            self.alb_listeners[(params["LoadBalancerId"], params["ListenerId"])]["sni"].difference_update(params["SSLIds"])
        elif action == "UpdateListenerAttribute" and params.get("Certificates"):
            self.alb_listeners[(params["LoadBalancerId"], params["ListenerId"])]["default"] = params["Certificates"][0]
        elif action == "UpdateSSLBinding":
            self.expect_replaced(params["OldSSLId"], params["NewSSLId"],
                                 lb=params.get("LoadBalancerId"), listener=params.get("ListenerId"))
        else:
            raise ValueError(f"World.apply does not model {action}")
        self.verify()

    def expect_replaced(self, old: str, new: str, *, lb: str | None = None, listener: str | None = None) -> None:
        """Applies UpdateSSLBinding's documented scope rules to the expected state."""
        for (ulb_id, vs_id), ssl in self.clb_vservers.items():
            if ssl == old and lb in (None, ulb_id) and listener in (None, vs_id):
                self.clb_vservers[(ulb_id, vs_id)] = new
        for (alb_id, als_id), entry in self.alb_listeners.items():
            if lb not in (None, alb_id) or listener not in (None, als_id):
                continue
            if entry["default"] == old:
                entry["default"] = new
            if old in entry["sni"]:
                entry["sni"].discard(old)
                entry["sni"].add(new)

    # -- verification ---------------------------------------------------------------------

    def observed(self) -> dict:
        """The binding state as the server reports it, in the shape of `expected()`."""
        api = self.api
        state = {"vserver": {}, "ulb_vserver": {}, "listener": {}, "ssl_clb": {}, "ssl_v2": {}}
        for (ulb_id, vs_id) in self.clb_vservers:
            vs = one_vserver(api, ulb_id, vs_id)
            state["vserver"][vs_id] = sorted(s["SSLId"] for s in vs.get("SSLSet") or [])
        for ulb_id in sorted({u for u, _ in self.clb_vservers}):
            for vs in one_ulb(api, ulb_id).get("VServerSet") or []:
                if (ulb_id, vs["VServerId"]) in self.clb_vservers:
                    state["ulb_vserver"][vs["VServerId"]] = sorted(s["SSLId"] for s in vs.get("SSLSet") or [])
        for (alb_id, als_id) in self.alb_listeners:
            defaults, sni = certificate_pairs(one_listener(api, alb_id, als_id))
            state["listener"][als_id] = {"default": defaults, "sni": sorted(sni)}
        for ssl_id in self.ssl_ids:
            item = one_ssl(api, ssl_id, "DescribeSSL")
            state["ssl_clb"][ssl_id] = sorted((t["ULBId"], t["VServerId"]) for t in item.get("BindedTargetSet") or [])
            item = one_ssl(api, ssl_id, "DescribeSSLV2")
            relations = []
            for r in item.get("Relations") or []:
                # CLB bindings have no default/SNI distinction; only ALB roles are compared.
                is_default = bool(r.get("IsDefault")) if r["ListenerId"].startswith("als-") else None
                relations.append((r["LoadBalancerId"], r["ListenerId"], is_default))
            state["ssl_v2"][ssl_id] = sorted(relations, key=repr)
        return state

    def expected(self) -> dict:
        state = {"vserver": {}, "ulb_vserver": {}, "listener": {}, "ssl_clb": {}, "ssl_v2": {}}
        for (ulb_id, vs_id), ssl in self.clb_vservers.items():
            state["vserver"][vs_id] = [ssl] if ssl else []
            state["ulb_vserver"][vs_id] = [ssl] if ssl else []
        for (alb_id, als_id), entry in self.alb_listeners.items():
            state["listener"][als_id] = {"default": [entry["default"]] if entry["default"] else [],
                                        "sni": sorted(entry["sni"])}
        for ssl_id in self.ssl_ids:
            state["ssl_clb"][ssl_id] = sorted(k for k, v in self.clb_vservers.items() if v == ssl_id)
            relations = [(u, v, None) for (u, v), s in self.clb_vservers.items() if s == ssl_id]
            for (alb_id, als_id), entry in self.alb_listeners.items():
                if entry["default"] == ssl_id:
                    relations.append((alb_id, als_id, True))
                if ssl_id in entry["sni"]:
                    relations.append((alb_id, als_id, False))
            state["ssl_v2"][ssl_id] = sorted(relations, key=repr)
        return state

    def verify(self) -> None:
        observed, expected = self.observed(), self.expected()
        for view in expected:
            assert observed[view] == expected[view], (
                f"{view} view differs from the expected bindings\n"
                f"  observed: {observed[view]}\n  expected: {expected[view]}\n  names: {self.names}"
            )


def snapshot(api: Api, *, clb: bool = True, alb: bool = True) -> dict:
    """Everything a client can read about the project, for "nothing changed" checks."""
    state = {
        "ssl": sorted((s["SSLId"], s["SSLName"], tuple(sorted((t["ULBId"], t["VServerId"])
                                                               for t in s.get("BindedTargetSet") or [])))
                      for s in describe_all_ssl(api)),
        "ssl_v2": sorted((s["SSLId"], tuple(sorted((r["LoadBalancerId"], r["ListenerId"], bool(r.get("IsDefault")))
                                                   for r in s.get("Relations") or [])))
                         for s in describe_all_ssl(api, "DescribeSSLV2")),
    }
    if clb:
        ulbs = api.call("DescribeULB", Limit=100, Offset=0).get("DataSet") or []
        state["clb"] = {}
        for u in ulbs:
            vss = api.call("DescribeVServer", ULBId=u["ULBId"], Limit=100, Offset=0).get("DataSet") or []
            state["clb"][u["ULBId"]] = sorted(
                (v["VServerId"], v["Protocol"], v["FrontendPort"], tuple(sorted(s["SSLId"] for s in v.get("SSLSet") or [])))
                for v in vss)
    if alb:
        lbs = api.call("DescribeLoadBalancers", Limit="100", Offset="0").get("LoadBalancers") or []
        state["alb"] = {}
        for lb in lbs:
            ls = api.call("DescribeListeners", LoadBalancerId=lb["LoadBalancerId"], Limit=100, Offset=0)
            state["alb"][lb["LoadBalancerId"]] = sorted(
                (l["ListenerId"], l["ListenerProtocol"], l["ListenerPort"],
                 tuple(sorted((c["SSLId"], bool(c.get("IsDefault"))) for c in l.get("Certificates") or [])))
                for l in ls.get("Listeners") or [])
    return state
