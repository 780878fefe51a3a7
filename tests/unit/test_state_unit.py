"""State directory rules: ids, atomic writes, claim exclusivity."""

import os

import pytest

from pybox.errors import ContainerExists, ContainerNotFound, UsageError
from pybox.formats import times
from pybox.oci import state as st

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("cid", ["abc", "a.b-c_d+e", "0" * 64])
def test_valid_ids(cid):
    assert st.validate_id(cid) == cid


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "a b", "../x", "é"])
def test_invalid_ids(cid):
    with pytest.raises(UsageError):
        st.validate_id(cid)


def test_claim_is_exclusive_and_roundtrips(tmp_path):
    d = st.StateDir(str(tmp_path), "c1")
    d.claim()
    with pytest.raises(ContainerExists):
        st.StateDir(str(tmp_path), "c1").claim()
    assert d.read() is None  # claimed, nothing written yet
    d.write({"id": "c1", "pid": 5})
    assert d.read() == {"id": "c1", "pid": 5}
    assert os.listdir(d.path) == ["state.json"]  # no temp file left
    d.remove()
    with pytest.raises(ContainerNotFound):
        d.read()
    assert st.list_ids(str(tmp_path)) == []


def test_rfc3339():
    t = times.rfc3339_nano()
    assert t.endswith("Z") and t[4] == "-" and t[10] == "T"
