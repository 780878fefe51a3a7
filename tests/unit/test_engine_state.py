"""The engine's container record and its state machine (pybox.engine.state,
pybox.engine.store.Container): every named transition, the refused ones, and
the records an earlier pyboxd wrote (tests/unit/engine_records: config.v2.json
files saved by the engine before the record was typed) loaded and saved back
byte for byte, so an upgraded pyboxd keeps its containers and inspect's output.
"""

import os
import shutil

import pytest

from pybox.engine.state import ZERO_TIME, ContainerState, Status
from pybox.engine.store import RECORD, Container, ContainerStore, repair
from pybox.errors import Conflict, InvalidState, NotModified
from pybox.formats import fastjson

RECORDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_records")
KINDS = ("created", "running", "paused", "restarting", "exited")
T1 = "2026-12-07T04:35:05.978170357Z"
T2 = "2026-12-07T04:35:12.888777235Z"


def record(kind):
    with open(os.path.join(RECORDS, f"{kind}.json")) as f:
        return fastjson.loads(f.read())


def container(kind, directory="/nonexistent"):
    rec = record(kind)
    return Container(repair(rec, rec["Id"]), directory)


def state(kind):
    return container(kind).state


# -- the file on disk ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_a_stored_record_loads_and_saves_back_byte_for_byte(tmp_path, kind):
    with open(os.path.join(RECORDS, f"{kind}.json"), "rb") as f:
        raw = f.read()
    cid = fastjson.loads(raw)["Id"]
    os.makedirs(tmp_path / cid)
    shutil.copy(os.path.join(RECORDS, f"{kind}.json"), tmp_path / cid / RECORD)
    store = ContainerStore(str(tmp_path))
    (c,) = store.load()
    assert c.id == cid and c.state.status == kind
    assert fastjson.dumps(c.to_docker()).encode() == raw
    c.save()
    assert (tmp_path / cid / RECORD).read_bytes() == raw
    assert store.get(c.name) is c and store.get(cid[:12]) is c


def test_the_typed_fields_read_the_record():
    c = container("restarting")
    rec = record("restarting")
    assert c.name == rec["Name"].lstrip("/") and c.docker_name == rec["Name"]
    assert c.restart_count == rec["RestartCount"]
    assert c.manual_stop is False and c.exit_on_next is False
    assert c.log_path == rec["LogPath"] and c.hosts_path == rec["HostsPath"]
    assert c.config is not None and c.config["Image"] == rec["Config"]["Image"]
    st = c.state
    assert (st.status, st.running, st.restarting, st.exit_code) == ("restarting", False, True, 3)
    assert st.pending_restart and st.listed_running
    # docker's shape at the edge
    assert c.record["State"]["ExitCode"] == 3 and c.record["State"]["Restarting"] is True
    assert "Health" not in c.record["State"]


def test_the_docker_view_shares_docker_vocabulary_objects():
    c = container("created")
    c.record["NetworkSettings"]["Networks"]["x"] = {}
    assert "x" in c.network_settings["Networks"]


def test_a_field_first_set_is_appended_as_a_dict_appended_it():
    rec = record("created")
    assert "ManualStop" not in rec
    c = Container(repair(rec, rec["Id"]), "/nonexistent")
    assert "ManualStop" not in c.to_docker()
    c.manual_stop = True
    keys = list(c.to_docker())
    assert keys[-1] == "ManualStop" and keys[:-1] == list(rec)
    c.state.health_starting()
    assert list(c.to_docker()["State"])[-1] == "Health"


def test_odd_stored_values_are_read_safely():
    st = ContainerState.from_docker({"Status": "running", "Running": "yes", "Pid": "12",
                                     "ExitCode": None, "Health": 5, "Extra": [1]})
    assert st.running is True and st.pid == 0 and st.exit_code == 0 and st.health is None
    assert st.to_docker() == {"Status": "running", "Running": True, "Pid": 0, "ExitCode": 0,
                              "Health": 5, "Extra": [1]}


# -- the transitions ----------------------------------------------------------------------
def test_start_from_created():
    st = state("created")
    st.start(42, T1)
    assert st.to_docker() == {
        "Status": "running", "Running": True, "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": 42, "ExitCode": 0, "Error": "",
        "StartedAt": T1, "FinishedAt": ZERO_TIME}
    assert st.docker_status() == "running"


@pytest.mark.parametrize("kind", ["exited", "restarting"])
def test_start_again(kind):
    st = state(kind)
    st.start(7, T2)
    assert (st.status, st.running, st.restarting, st.pid, st.exit_code, st.finished_at) == \
        ("running", True, False, 7, 0, ZERO_TIME)


def test_pause_and_resume():
    st = state("running")
    st.pause()
    assert (st.status, st.paused, st.running) == ("paused", True, True)
    assert st.docker_status() == "paused"
    st.resume()
    assert (st.status, st.paused) == ("running", False)


@pytest.mark.parametrize("kind", ["running", "paused"])
def test_exit(kind):
    st = state(kind)
    st.exit(137, True, "", T2)
    assert (st.status, st.running, st.paused, st.pid, st.exit_code, st.oom_killed,
            st.finished_at) == ("exited", False, False, 0, 137, True, T2)
    assert st.docker_status() == "exited"


def test_exit_then_restart_policy():
    st = state("running")
    st.exit(3, False, "", T2)
    st.schedule_restart()
    assert (st.status, st.restarting, st.running) == ("restarting", True, False)
    assert st.docker_status() == "restarting" and st.pending_restart
    st.give_up_restart()
    assert (st.status, st.restarting) == ("exited", False)


def test_a_failed_first_start_stays_created():
    st = state("created")
    st.start_failed("exec: \"nope\": executable file not found", 127, T2)
    assert (st.status, st.running, st.pid, st.exit_code, st.finished_at) == \
        ("created", False, 0, 127, T2)
    assert st.error.startswith("exec")


def test_a_failed_start_after_a_run_is_exited():
    st = state("exited")
    st.start_failed("boom", 128, T2)
    assert (st.status, st.error, st.exit_code) == ("exited", "boom", 128)


@pytest.mark.parametrize("kind", KINDS)
def test_removing_and_dead(kind):
    st = state(kind)
    st.mark_removing()
    assert st.status == "removing" and st.docker_status() == "removing"
    st.mark_dead()
    assert (st.status, st.dead) == ("dead", True)


def test_recovery_marks_dead_with_why():
    st = state("running")
    st.mark_dead("its filesystem is missing")
    assert (st.status, st.dead, st.running, st.paused, st.restarting, st.pid, st.error) == \
        ("dead", True, False, False, False, 0, "its filesystem is missing")
    assert st.docker_status() == "dead"


def test_adopt_a_container_its_record_said_was_created():
    st = state("created")
    st.adopt(99, False, T1)
    assert (st.status, st.running, st.pid, st.started_at, st.finished_at) == \
        ("running", True, 99, T1, ZERO_TIME)


def test_adopt_a_running_container_found_paused():
    st = state("running")
    started = st.started_at
    st.adopt(99, True, None)
    assert (st.status, st.paused, st.pid, st.started_at) == ("paused", True, 99, started)


def test_settle():
    st = ContainerState.from_docker({"Status": "exited", "Paused": True})
    st.settle()
    assert st.paused is False


# -- what a transition or a verb may not do -----------------------------------------------
@pytest.mark.parametrize(("kind", "transition"), [
    ("created", "pause"), ("exited", "pause"), ("paused", "pause"),
    ("restarting", "pause"), ("created", "resume"), ("exited", "resume"),
    ("running", "schedule_restart"), ("created", "schedule_restart"),
    ("restarting", "schedule_restart"),
])
def test_illegal_transitions(kind, transition):
    st = state(kind)
    before = st.to_docker()
    with pytest.raises(InvalidState):
        getattr(st, transition)()
    assert st.to_docker() == before


def test_nothing_starts_a_container_being_removed():
    st = state("exited")
    st.mark_removing()
    with pytest.raises(InvalidState):
        st.start(1, T1)
    with pytest.raises(InvalidState):
        st.start_failed("x", 128, T1)


def test_the_verbs_checks_say_what_docker_says():
    cid = "c" * 64
    with pytest.raises(NotModified, match="container already started"):
        state("running").check_start(cid, False)
    with pytest.raises(Conflict, match="cannot start a paused container"):
        state("paused").check_start(cid, False)
    with pytest.raises(Conflict, match="is marked for removal"):
        state("exited").check_start(cid, True)
    state("exited").check_start(cid, False)
    with pytest.raises(Conflict, match=f"Container {cid} is not running"):
        state("exited").check_pause(cid)
    with pytest.raises(Conflict, match="is already paused"):
        state("paused").check_pause(cid)
    with pytest.raises(Conflict, match="is not paused"):
        state("running").check_unpause(cid)
    with pytest.raises(Conflict, match="unpause the container before exec"):
        state("paused").check_exec(cid)
    with pytest.raises(Conflict, match="You cannot remove a restarting container"):
        state("restarting").check_remove(cid, False)
    with pytest.raises(Conflict, match="You cannot remove a paused container"):
        state("paused").check_remove(cid, False)
    with pytest.raises(Conflict, match="You cannot remove a running container"):
        state("running").check_remove(cid, False)
    state("running").check_remove(cid, True)


def test_every_status_is_named():
    assert {s.value for s in Status} == {"created", "running", "paused", "restarting",
                                         "exited", "removing", "dead"}


# -- docker's State.Health ----------------------------------------------------------------
def probe(st, code, *, in_start=False, retries=3, keep=5):
    return st.health_probed({"Start": T1, "End": T1, "ExitCode": code, "Output": str(code)},
                            in_start_period=in_start, retries=retries, keep=keep)


def test_health_starts_then_turns_healthy_and_unhealthy_after_the_retries():
    st = state("running")
    st.health_starting()
    assert st.to_docker()["Health"] == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert probe(st, 0) == ("starting", "healthy")
    assert probe(st, 1) == ("healthy", "healthy")
    assert probe(st, 1) == ("healthy", "healthy")
    assert probe(st, 1) == ("healthy", "unhealthy")
    assert st.health["FailingStreak"] == 3
    assert probe(st, 0) == ("unhealthy", "healthy") and st.health["FailingStreak"] == 0


def test_failures_in_the_start_period_do_not_count_until_healthy():
    st = state("running")
    st.health_starting()
    for _ in range(5):
        assert probe(st, 1, in_start=True, retries=1) == ("starting", "starting")
    assert st.health["FailingStreak"] == 0
    probe(st, 0, in_start=True)
    assert probe(st, 1, in_start=True, retries=1) == ("healthy", "unhealthy")


def test_the_health_log_keeps_the_last_entries():
    st = state("running")
    st.health_starting()
    for code in range(8):
        probe(st, code % 2, keep=5)
    assert [e["ExitCode"] for e in st.health["Log"]] == [1, 0, 1, 0, 1]


def test_an_exit_leaves_a_failed_run_unhealthy_and_a_clean_one_as_it_was():
    st = state("created")
    st.health_stopped(1)
    assert st.health is None  # no checks, no Health
    st.health_starting()
    probe(st, 0)
    st.health_stopped(0)
    assert st.health["Status"] == "healthy"
    st.health_stopped(137)
    assert st.health["Status"] == "unhealthy"
