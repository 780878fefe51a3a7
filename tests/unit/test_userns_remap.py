"""pyboxd --userns-remap without root: the option's syntax, the subordinate id
files, id shifting, and what it puts into config.json."""

import io
import os
import tarfile

import pytest

from pybox.engine import remap
from pybox.engine import spec as specmod
from pybox.errors import ConfigError
from pybox.linux.idmap import map_id

pytestmark = pytest.mark.unit


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_user_ranges_become_contiguous_container_ids(tmp_path):
    subuid = write(tmp_path / "subuid", "other:100000:65536\nroot:200000:1000\nroot:300000:500\n")
    subgid = write(tmp_path / "subgid", "root:400000:65536\n")
    r = remap.parse_option("root", subuid=subuid, subgid=subgid)
    assert r.uid_mappings == [[0, 200000, 1000], [1000, 300000, 500]]
    assert r.gid_mappings == [[0, 400000, 65536]]
    assert r.root == (200000, 400000)
    assert r.describe() == "root:root"


def test_numeric_user_and_group_are_resolved_by_name(tmp_path):
    subuid = write(tmp_path / "subuid", "root:200000:65536\n")
    subgid = write(tmp_path / "subgid", "0:500000:65536\n")  # a line may name the id
    r = remap.parse_option("0:0", subuid=subuid, subgid=subgid)
    assert (r.user, r.group) == ("root", "root")
    assert r.gid_mappings == [[0, 500000, 65536]]


def test_missing_ranges_and_unknown_users_are_clear_errors(tmp_path):
    subuid = write(tmp_path / "subuid", "")
    subgid = write(tmp_path / "subgid", "root:1:1\n")
    with pytest.raises(ConfigError, match="no subuid ranges found for user 'root'"):
        remap.parse_option("root", subuid=subuid, subgid=subgid)
    with pytest.raises(ConfigError, match="user 'no-such-user-pybox' does not exist"):
        remap.parse_option("no-such-user-pybox", subuid=subuid, subgid=subgid)
    assert remap.parse_option("", subuid=subuid, subgid=subgid) is None


def test_a_free_range_skips_every_allocated_one(tmp_path):
    a = write(tmp_path / "a", "x:100000:65536\ny:165536:65536\n")
    b = write(tmp_path / "b", "z:300000:10\n")
    assert remap._free_start([a, b]) == 231072
    assert remap._free_start([write(tmp_path / "c", "")]) == 100000


def test_ids_map_both_ways_and_unmapped_is_none():
    maps = [(0, 100000, 1000), (1000, 300000, 10)]
    assert map_id(maps, 0) == 100000
    assert map_id(maps, 1005) == 300005
    assert map_id(maps, 1010) is None
    assert map_id(maps, 300009, to_host=False) == 1009
    assert map_id(maps, 5, to_host=False) is None


def container(hc=None):
    return {"Id": "c" * 64, "Name": "/remapped",
            "Config": {"Cmd": ["true"], "Image": "busybox"}, "HostConfig": hc or {}}


def test_a_remapped_container_gets_a_user_namespace_with_the_maps(tmp_path):
    idmap = {"uid": [[0, 100000, 65536]], "gid": [[0, 200000, 65536]]}
    config = specmod.build(container(), str(tmp_path), idmap=idmap)
    assert config["linux"]["namespaces"][0] == {"type": "user"}
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000,
                                              "size": 65536}]
    assert config["linux"]["gidMappings"][0]["hostID"] == 200000
    plain = specmod.build(container(), str(tmp_path))
    assert {"type": "user"} not in plain["linux"]["namespaces"]
    assert "uidMappings" not in plain["linux"]


def test_export_of_a_remapped_tree_records_the_containers_owners(tmp_path):
    from pybox.images import layers
    from pybox.images.snapshots import _owner_map

    (tmp_path / "f").write_text("x")
    out = io.BytesIO()
    here = os.stat(tmp_path / "f")
    idmap = {"uid": [[0, here.st_uid, 1]], "gid": [[0, here.st_gid + 7, 1]]}
    layers.write_tree(str(tmp_path), out, owner_map=_owner_map(idmap))
    out.seek(0)
    member = tarfile.open(fileobj=out).getmember("f")
    assert member.uid == 0  # the owner's host uid is the container's root
    assert member.gid == 65534  # not covered by the maps: the overflow id
