"""Fixtures of the SDK conformance suite: a fresh `certbind serve` per module (`server`,
`api`) or per test where isolation matters (`fresh_server`, `fresh_api`, `world`), the
certificate factory, and the session counters/recording. See harness.py."""

from __future__ import annotations

import pytest

from certs import CertFactory
from harness import Api, CertbindServer, Recorder, World, certbind_binary

_recorder: Recorder | None = None


def pytest_sessionstart(session):
    global _recorder
    _recorder = Recorder()


def pytest_sessionfinish(session, exitstatus):
    if _recorder is not None:
        _recorder.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _recorder is not None:
        terminalreporter.write_line(f"sdk suite: {_recorder.flows} flows, {_recorder.calls} calls")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _count_flow(request):
    """A flow is a test that sent at least one request."""
    recorder = _recorder
    recorder.current_test = request.node.nodeid
    before = recorder.calls
    yield
    if recorder.calls > before:
        recorder.flows += 1


@pytest.fixture
def recorder() -> Recorder:
    return _recorder


@pytest.fixture(scope="session")
def certbind_bin():
    return certbind_binary()


@pytest.fixture(scope="session")
def certs() -> CertFactory:
    return CertFactory()


def _start(binary, tmp_dir):
    return CertbindServer(binary, tmp_dir / "data").start()


def _stop(server, request):
    """Stops the server; for a failed test, attaches the tail of the server's stderr."""
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        request.node.add_report_section("call", "certbind stderr (tail)", server.stderr_text(tail_lines=60))
    server.stop()


@pytest.fixture(scope="module")
def server(certbind_bin, tmp_path_factory, request):
    srv = _start(certbind_bin, tmp_path_factory.mktemp("certbind"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server.credentials(), _recorder, label="owner")


@pytest.fixture
def fresh_server(certbind_bin, tmp_path, request):
    srv = _start(certbind_bin, tmp_path)
    yield srv
    _stop(srv, request)


@pytest.fixture
def fresh_api(fresh_server) -> Api:
    return Api(fresh_server.credentials(), _recorder, label="owner")


@pytest.fixture
def world(fresh_api, certs) -> World:
    return World(fresh_api, certs)
