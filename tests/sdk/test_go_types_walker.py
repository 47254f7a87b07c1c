"""Unit tests of the Go-type walker (check_go_types.py) on hand-made responses: each
kind of type mismatch the Go SDK's encoding/json rejects must be reported with its JSON
path, and everything it accepts must pass. No server needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from check_go_types import SCHEMA_PATH, Schema, SchemaError, check_records

SUITE_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUITE_DIR.parents[1]
SPEC = REPO_ROOT.parent / "shared" / "spec" / "ulb-api.md"

# A miniature of go_types.json: one action with every kind of field.
TOY = Schema({
    "envelope": {"RetCode": "int", "Action": "string", "Message": "string"},
    "actions": {
        "DescribeThing": {"fields": {
            "TotalCount": "int",
            "DataSet": "[]Thing",
            "Names": "[]string",
            "Log": "LogSet",
            "Raw": "[]object",
        }},
    },
    "models": {
        "Thing": {"fields": {"Id": "string", "CreateTime": "int", "Enabled": "bool", "Parts": "[]Part"}},
        "Part": {"fields": {"Port": "int", "Tags": "[]string"}},
        "LogSet": {"fields": {"Bucket": "string"}},
    },
})


def messages(response, action="DescribeThing", schema=TOY) -> list[str]:
    return [str(v) for v in schema.check(action, response)[0]]


def ok(**fields) -> dict:
    return {"RetCode": 0, "Action": "DescribeThingResponse", **fields}


# ---------------------------------------------------------------------------------------
# What the Go SDK accepts
# ---------------------------------------------------------------------------------------

def test_well_typed_response_passes_and_counts_fields():
    response = ok(
        TotalCount=1,
        DataSet=[{"Id": "t-1", "CreateTime": 1700000000, "Enabled": False,
                  "Parts": [{"Port": 443, "Tags": ["a", "b"]}]}],
        Names=[], Log={"Bucket": "b"}, Raw=[{"anything": [1, "x"]}],
    )
    violations, checked = TOY.check("DescribeThing", response)
    assert violations == []
    # RetCode, Action, TotalCount, DataSet, Id, CreateTime, Enabled, Parts, Port, Tags, Names, Log, Bucket, Raw
    assert checked == 14


def test_null_absent_and_unknown_fields_pass():
    response = ok(TotalCount=None, DataSet=None, Names=[None], Log=None,
                  Extra={"whatever": "1"}, Unknown="x")
    response["DataSet"] = [None, {"Id": None, "Parts": None, "NotInModel": "1"}]
    assert messages(response) == []
    assert messages({"RetCode": 0}) == []


def test_negative_and_int64_bounds():
    assert messages(ok(TotalCount=-1)) == []
    assert messages(ok(TotalCount=2 ** 63 - 1)) == []
    assert messages(ok(TotalCount=2 ** 63)) == [
        "DescribeThing.TotalCount: expected int, got int 9223372036854775808"]


# ---------------------------------------------------------------------------------------
# What it rejects, each with its JSON path
# ---------------------------------------------------------------------------------------

def test_string_in_int_field():
    assert messages(ok(DataSet=[{"CreateTime": "1700000000"}])) == [
        'DescribeThing.DataSet[0].CreateTime: expected int, got string "1700000000"']


def test_float_in_int_field():
    assert messages(ok(TotalCount=1.5)) == ["DescribeThing.TotalCount: expected int, got float 1.5"]
    # encoding/json parses int fields with ParseInt: 1.0 and 1e3 fail as well.
    assert messages(ok(TotalCount=1.0)) == ["DescribeThing.TotalCount: expected int, got float 1.0"]
    assert messages(ok(TotalCount=json.loads("1e3"))) == ["DescribeThing.TotalCount: expected int, got float 1000.0"]


def test_bool_in_int_field_and_int_in_bool_field():
    assert messages(ok(TotalCount=True)) == ["DescribeThing.TotalCount: expected int, got bool true"]
    assert messages(ok(DataSet=[{"Enabled": 1}])) == ["DescribeThing.DataSet[0].Enabled: expected bool, got int 1"]
    assert messages(ok(DataSet=[{"Enabled": "true"}])) == [
        'DescribeThing.DataSet[0].Enabled: expected bool, got string "true"']


def test_object_where_an_array_belongs():
    assert messages(ok(DataSet={"Id": "t-1"})) == [
        'DescribeThing.DataSet: expected []Thing, got object {"Id": "t-1"}']
    assert messages(ok(Names="a,b")) == ['DescribeThing.Names: expected []string, got string "a,b"']


def test_array_where_an_object_belongs():
    assert messages(ok(Log=[{"Bucket": "b"}])) == [
        'DescribeThing.Log: expected LogSet object, got array [{"Bucket": "b"}]']
    assert messages(ok(Raw=[["x"]])) == ['DescribeThing.Raw[0]: expected object, got array ["x"]']


def test_number_in_string_field_and_in_string_array():
    assert messages(ok(DataSet=[{"Id": 7}], Names=["a", 2])) == [
        "DescribeThing.DataSet[0].Id: expected string, got int 7",
        "DescribeThing.Names[1]: expected string, got int 2",
    ]


def test_nested_models_inside_arrays():
    response = ok(DataSet=[
        {"Id": "t-0", "Parts": [{"Port": 80}]},
        {"Id": "t-1", "Parts": [{"Port": 80}, {"Port": "443", "Tags": [1]}, "part"]},
    ])
    assert messages(response) == [
        'DescribeThing.DataSet[1].Parts[1].Port: expected int, got string "443"',
        "DescribeThing.DataSet[1].Parts[1].Tags[0]: expected string, got int 1",
        'DescribeThing.DataSet[1].Parts[2]: expected Part object, got string "part"',
    ]


def test_envelope_is_checked_for_every_action_even_unknown_ones():
    assert messages({"RetCode": "0", "Action": "DescribeThingResponse"}) == [
        'DescribeThing.RetCode: expected int, got string "0"']
    assert messages({"RetCode": 160, "Action": 1, "Message": ["no"]}, action="NoSuchAction") == [
        "NoSuchAction.Action: expected string, got int 1",
        'NoSuchAction.Message: expected string, got array ["no"]',
    ]


def test_keys_match_case_insensitively_like_encoding_json():
    # encoding/json would put "createtime" into CreateTime and fail on the string.
    assert messages(ok(dataset=[{"createtime": "1"}])) == [
        'DescribeThing.dataset[0].createtime: expected int, got string "1"']


def test_response_that_is_not_an_object():
    assert messages([1, 2]) == ["DescribeThing: expected object, got array [1, 2]"]


def test_long_values_are_shortened():
    [message] = messages(ok(TotalCount="x" * 200))
    assert message.startswith('DescribeThing.TotalCount: expected int, got string "xxx') and message.endswith("...")
    assert len(message) < 120


# ---------------------------------------------------------------------------------------
# The real schema, recorded files and the command line
# ---------------------------------------------------------------------------------------

def test_real_schema_reports_the_spec_example():
    schema = Schema.load()
    response = {"RetCode": 0, "Action": "DescribeSSLResponse", "TotalCount": 1,
                "DataSet": [{"SSLId": "ssl-1", "CreateTime": "1700000000", "BindedTargetSet": []}]}
    assert messages(response, "DescribeSSL", schema) == [
        'DescribeSSL.DataSet[0].CreateTime: expected int, got string "1700000000"']


def test_real_schema_walks_nested_models_and_skips_fields_absent_in_go():
    schema = Schema.load()
    listener = {"ListenerId": "als-1", "ListenerPort": 443,
                "Certificates": [{"SSLId": "ssl-1", "IsDefault": "true"}],
                # Interval is "(absent in Go SDK)": not checked.
                "HealthCheckConfig": {"Enabled": True, "Interval": "5"}}
    response = {"RetCode": 0, "Action": "DescribeLoadBalancersResponse",
                "LoadBalancers": [{"LoadBalancerId": "alb-1", "Firewall": [], "Listeners": [listener]}]}
    assert messages(response, "DescribeLoadBalancers", schema) == [
        "DescribeLoadBalancers.LoadBalancers[0].Firewall: expected FirewallSet object, got array []",
        'DescribeLoadBalancers.LoadBalancers[0].Listeners[0].Certificates[0].IsDefault: expected bool, got string "true"',
    ]


def test_schema_rejects_a_dangling_model_reference():
    with pytest.raises(SchemaError, match="Thing"):
        Schema({"envelope": {}, "actions": {"A": {"fields": {"X": "[]Thing"}}}, "models": {}})


def test_check_records_counts_and_falls_back_to_the_response_action():
    lines = [
        json.dumps({"Action": "DescribeThing", "Test": "t::a", "Response": ok(TotalCount="1")}),
        "",
        json.dumps({"Action": "", "Test": "t::b", "Response": {"RetCode": 0, "Action": "DescribeThingResponse"}}),
        json.dumps({"Action": "Other", "Test": "t::c", "Response": {"RetCode": 160, "Action": "OtherResponse"}}),
    ]
    report = check_records(lines, TOY)
    assert (report.responses, report.fields, len(report.actions)) == (3, 7, 2)
    assert dict(report.envelope_only) == {"Other": 1}
    assert [(str(v), v.test) for v in report.violations] == [
        ('DescribeThing.TotalCount: expected int, got string "1"', "t::a")]
    with pytest.raises(ValueError, match="line 1"):
        check_records(["{not json"], TOY)


def run_cli(tmp_path: Path, records: list[dict]) -> subprocess.CompletedProcess:
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return subprocess.run([sys.executable, str(SUITE_DIR / "check_go_types.py"), str(path)],
                          capture_output=True, text=True, timeout=60)


def test_cli_passes_good_responses_and_prints_the_summary(tmp_path):
    done = run_cli(tmp_path, [{"Action": "CreateSSL", "Test": "t", "Response":
                               {"RetCode": 0, "Action": "CreateSSLResponse", "SSLId": "ssl-1"}}])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "go types: 1 responses, 3 fields checked, 1 actions"


def test_cli_fails_on_a_violation_and_prints_it(tmp_path):
    bad = {"RetCode": 0, "Action": "DescribeSSLResponse", "DataSet": [{"CreateTime": "1"}, {"CreateTime": "2"}]}
    done = run_cli(tmp_path, [{"Action": "DescribeSSL", "Test": "t::x", "Response": bad}])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "DescribeSSL.DataSet[*].CreateTime: expected int, got string — 2 time(s) in 1 test(s)" in done.stdout
    assert 'e.g. DescribeSSL.DataSet[0].CreateTime: expected int, got string "1"  [t::x]' in done.stdout
    assert done.stdout.splitlines()[-1] == "go types: 1 responses, 5 fields checked, 1 actions"


def test_cli_refuses_a_missing_file(tmp_path):
    done = subprocess.run([sys.executable, str(SUITE_DIR / "check_go_types.py"), str(tmp_path / "none.jsonl")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot check" in done.stderr


@pytest.mark.skipif(not SPEC.exists(), reason=f"{SPEC} is not checked out next to the repo")
def test_committed_schema_is_what_the_generator_makes_from_the_spec():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gen-go-types.py"), "--check",
                           "--spec", str(SPEC), "--out", str(SCHEMA_PATH)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
