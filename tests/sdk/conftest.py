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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture of the test runs, module-scoped ones included.
    _recorder.current_test = item.nodeid
    item._calls_before = _recorder.calls


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        # The server's side of the story, next to the test's own output.
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, CertbindServer):
                report.sections.append((f"certbind stderr (tail, {value.data_dir})", value.stderr_text(tail_lines=60)))
    # A flow is a test that sent at least one request (its fixtures' requests included).
    if report.when == "teardown" and _recorder.calls > getattr(item, "_calls_before", _recorder.calls):
        _recorder.flows += 1
    return report


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="module")
def server(certbind_bin, tmp_path_factory):
    srv = _start(certbind_bin, tmp_path_factory.mktemp("certbind"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server.credentials(), _recorder, label="owner")


@pytest.fixture
def fresh_server(certbind_bin, tmp_path):
    srv = _start(certbind_bin, tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def fresh_api(fresh_server) -> Api:
    return Api(fresh_server.credentials(), _recorder, label="owner")


@pytest.fixture
def world(fresh_api, certs) -> World:
    return World(fresh_api, certs)
